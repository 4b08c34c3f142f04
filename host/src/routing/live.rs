//! The route table a running hub uses, kept in step with its file.
//!
//! Readers take the current table without locking ([`ArcSwap`]); the pipeline can also
//! wait for changes on a [`watch`] channel. A file that fails its check never replaces a
//! good table: the hub keeps routing with the last good one and says why it refused.
//!
//! The watcher polls: it reads and hashes the file every second. That works on every
//! filesystem (network mounts, container volumes, editors that save by rename), and a
//! routes file is small enough that reading it each second costs nothing. Comparing
//! content rather than mtime also catches two saves within the mtime's resolution.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BuiltinCatalog, PluginCatalog, Problem, RouteTable, RoutesError};

/// What the watcher last saw in the file, so it acts on changes only and reports a refused
/// file once rather than every second.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content([u8; 32]),
    Unreadable(String),
}

/// The current route table and the file it comes from.
pub struct LiveRoutes {
    path: PathBuf,
    plugins: Arc<dyn PluginCatalog>,
    current: ArcSwap<RouteTable>,
    changes: watch::Sender<Arc<RouteTable>>,
    /// Held while a reload or a replace runs, so they apply in order.
    seen: Mutex<Seen>,
    poll_interval: Duration,
}

impl LiveRoutes {
    /// Loads the file at `path`, which must exist and pass its check against `plugins`.
    pub fn open(
        path: impl Into<PathBuf>,
        plugins: Arc<dyn PluginCatalog>,
    ) -> Result<LiveRoutes, RoutesError> {
        let path = path.into();
        let text = read(&path)?;
        let table = parse(&text, &path, plugins.as_ref())?;
        Ok(LiveRoutes::with_catalog(path, table, plugins))
    }

    /// Puts `table`, already loaded from `path`, in force; later reloads check against the
    /// built-in plugins.
    pub fn new(path: impl Into<PathBuf>, table: RouteTable) -> LiveRoutes {
        LiveRoutes::with_catalog(path, table, Arc::new(BuiltinCatalog))
    }

    /// Puts `table`, already loaded from `path`, in force; later reloads check against
    /// `plugins`.
    pub fn with_catalog(
        path: impl Into<PathBuf>,
        table: RouteTable,
        plugins: Arc<dyn PluginCatalog>,
    ) -> LiveRoutes {
        // The table's own text stands for the file: if the file already differs, the
        // watcher's first look reloads it.
        let seen = Seen::Content(digest(table.text()));
        let table = Arc::new(table);
        LiveRoutes {
            path: path.into(),
            plugins,
            current: ArcSwap::new(table.clone()),
            changes: watch::Sender::new(table),
            seen: Mutex::new(seen),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// How often [`LiveRoutes::watch`] looks at the file; one second unless changed.
    pub fn poll_every(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The routes file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table in force.
    pub fn current(&self) -> Arc<RouteTable> {
        self.current.load_full()
    }

    /// A receiver that sees every table put in force from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.changes.subscribe()
    }

    /// Re-reads the file and puts it in force if it passes its check. On error the current
    /// table stays, and the error says why.
    pub fn reload(&self) -> Result<Arc<RouteTable>, RoutesError> {
        let mut seen = self.lock();
        let result = read(&self.path).and_then(|text| {
            *seen = Seen::Content(digest(&text));
            parse(&text, &self.path, self.plugins.as_ref())
        });
        self.apply(result)
    }

    /// Checks `text` and, if it passes, writes it to the file atomically (a temporary
    /// file renamed over it) and puts it in force. On error nothing changes.
    pub fn replace(&self, text: &str) -> Result<Arc<RouteTable>, RoutesError> {
        let mut seen = self.lock();
        let table = parse(text, &self.path, self.plugins.as_ref())?;
        write_atomically(&self.path, text).map_err(|error| {
            RoutesError::new(
                &self.path.display().to_string(),
                vec![Problem::whole_file(format!("cannot write: {error}"))],
            )
        })?;
        // The watcher must not reload what was just written.
        *seen = Seen::Content(digest(text));
        let table = Arc::new(table);
        self.put_in_force(table.clone());
        tracing::info!(
            routes = %self.path.display(),
            "routes replaced: {}",
            table.summary()
        );
        Ok(table)
    }

    /// Watches the file, reloading when its content changes, until the task is aborted.
    /// A refused file is logged (once per distinct content) and the old table kept.
    pub fn watch(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.poll_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let live = self.clone();
                // Reading the file blocks; keep it off the async workers.
                if let Err(error) = tokio::task::spawn_blocking(move || live.poll()).await {
                    tracing::error!(%error, "routes watcher check failed");
                }
            }
        })
    }

    /// One look at the file: reload if its content changed since the last look.
    fn poll(&self) {
        let mut seen = self.lock();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) => {
                let now = Seen::Unreadable(error.kind().to_string());
                if *seen != now {
                    tracing::warn!(
                        routes = %self.path.display(),
                        %error,
                        "cannot read the routes file; keeping the current routes"
                    );
                    *seen = now;
                }
                return;
            }
        };
        let now = Seen::Content(digest(&text));
        if *seen == now {
            return;
        }
        *seen = now;
        let _ = self.apply(parse(&text, &self.path, self.plugins.as_ref()));
    }

    /// Puts a parsed table in force, or logs why it was refused.
    fn apply(
        &self,
        result: Result<RouteTable, RoutesError>,
    ) -> Result<Arc<RouteTable>, RoutesError> {
        match result {
            Ok(table) => {
                let table = Arc::new(table);
                self.put_in_force(table.clone());
                tracing::info!(
                    routes = %self.path.display(),
                    "routes reloaded: {}",
                    table.summary()
                );
                for warning in table.warnings() {
                    tracing::warn!("{warning}");
                }
                Ok(table)
            }
            Err(error) => {
                tracing::error!(
                    routes = %self.path.display(),
                    "routes file refused; keeping the current routes:\n{error}"
                );
                Err(error)
            }
        }
    }

    fn put_in_force(&self, table: Arc<RouteTable>) {
        self.current.store(table.clone());
        self.changes.send_replace(table);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock leaves nothing half-done: `seen` is only a hint.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn read(path: &Path) -> Result<String, RoutesError> {
    std::fs::read_to_string(path).map_err(|error| {
        RoutesError::new(
            &path.display().to_string(),
            vec![Problem::whole_file(format!("cannot read: {error}"))],
        )
    })
}

fn parse(text: &str, path: &Path, plugins: &dyn PluginCatalog) -> Result<RouteTable, RoutesError> {
    RouteTable::parse(
        text,
        &path.display().to_string(),
        &|name| std::env::var(name).ok(),
        plugins,
    )
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Writes `text` to a temporary file beside `path` and renames it over `path`, so a reader
/// (the watcher, an editor, a crash) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "routes.yaml".to_owned());
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        // The file may hold secrets written in it; keep whatever access it had.
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable; not every platform can sync a directory.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
