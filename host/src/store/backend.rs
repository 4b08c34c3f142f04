//! The two databases behind [`Store`](super::Store): the pools, connecting and migrating,
//! and the [`on_pool!`] macro that runs one query body on whichever pool it is given.
//!
//! Most statements are the same text on both: they are written once with `$1, $2, ...`
//! placeholders, which sqlx's SQLite driver binds by number just as PostgreSQL does. Where
//! the dialects differ (locks, `SKIP LOCKED`, JSON functions), the body picks the text with
//! [`Dialect::pick`], so both versions sit side by side.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Connection;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// A connection pool of either database. Cheap to clone.
#[derive(Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which SQL dialect a query body is running for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement for this dialect, where the two differ.
    pub(super) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// Runs `$body` with `$conn` bound to the pool inside `$pool` (a `&Pool`), `$Db` to its
/// sqlx database type (for `QueryBuilder::<$Db>`) and `$dialect` to its [`Dialect`]. The
/// body is compiled once per database, so one text serves both wherever the SQL agrees.
macro_rules! on_pool {
    ($pool:expr, |$conn:ident, $Db:ident, $dialect:ident| $body:expr) => {
        match $pool {
            $crate::store::backend::Pool::Sqlite($conn) => {
                #[allow(dead_code)]
                type $Db = ::sqlx::Sqlite;
                #[allow(unused_variables)]
                let $dialect = $crate::store::backend::Dialect::Sqlite;
                $body
            }
            $crate::store::backend::Pool::Postgres($conn) => {
                #[allow(dead_code)]
                type $Db = ::sqlx::Postgres;
                #[allow(unused_variables)]
                let $dialect = $crate::store::backend::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(super) use on_pool;

/// [`on_pool!`] on `$store`'s writer, for a write: its result also goes to the store's
/// write health (see [`super::health`]) under `$operation`, with what a success proves
/// (a [`Proof`](super::health::Proof) variant). The body is the same as for `on_pool!`:
/// `?` and `return` in it end the write, as they ended the method before.
macro_rules! on_writer {
    ($store:expr, $operation:literal, $proof:ident, |$conn:ident, $Db:ident, $dialect:ident| $body:expr) => {{
        let store: &$crate::store::Store = $store;
        let result: $crate::store::Result<_> =
            async { $crate::store::backend::on_pool!(&store.writer, |$conn, $Db, $dialect| $body) }
                .await;
        store
            .health
            .observe($operation, $crate::store::health::Proof::$proof, result)
    }};
}
pub(super) use on_writer;

/// One migration `switchyard migrate` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// The writer and reader pools for `url`, not yet migrated. For SQLite they are two pools
/// (one writing connection, several read-only ones); for PostgreSQL one pool serves both.
pub(super) async fn connect(url: &str) -> Result<(Pool, Pool)> {
    if url.starts_with("sqlite://") {
        let (writer, reader) = connect_sqlite(url).await?;
        Ok((Pool::Sqlite(writer), Pool::Sqlite(reader)))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PgPoolOptions::new()
            // Every process keeps its accept, routing, leasing and recording tasks apart
            // on their own connections; the API's reads share the rest.
            .max_connections(16)
            .after_release(keep_unless_in_transaction)
            // Not the NOTICEs of `IF NOT EXISTS` and the like: warnings and errors only.
            .connect_with(
                PgConnectOptions::from_str(url)?.options([("client_min_messages", "warning")]),
            )
            .await?;
        Ok((Pool::Postgres(pool.clone()), Pool::Postgres(pool)))
    } else {
        Err(Error::Url(crate::bus::redacted(url)))
    }
}

/// Rows a SQLite connection's thread may read ahead of the task that takes them: one
/// router or poller batch.
const ROW_BUFFER: usize = 2048;

async fn connect_sqlite(url: &str) -> Result<(SqlitePool, SqlitePool)> {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    // The query string (`?mode=...`) is sqlx's, not part of the file name.
    let path = Path::new(path.split_once('?').map_or(path, |(file, _)| file));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|source| Error::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    if path != Path::new(":memory:") {
        make_private(path).map_err(|source| Error::DatabaseFile {
            path: path.display().to_string(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a crash of the process (kill -9): a commit is in the
        // WAL before it returns. Only a power loss can take the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // 16 MiB of page cache. Larger caches cost more at every commit (SQLite walks
        // the cache when a transaction ends), and commits are frequent here.
        .pragma("cache_size", "-16384")
        .pragma("temp_store", "memory")
        // Each connection's statements run on a thread of its own, which hands rows over
        // through a bounded channel and stops when it is full: at sqlx's default of 50, a
        // router batch of 2048 notifications took dozens of thread hand-offs to read.
        .row_buffer_size(ROW_BUFFER);
    // One writer: SQLite serialises writers anyway, and one connection lets the
    // pipeline's batches queue in memory instead of on the database lock.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        // A ping before every checkout is a round trip to the connection's thread; a
        // SQLite connection is a file handle that cannot go stale the way a socket can.
        .test_before_acquire(false)
        .after_release(keep_unless_in_transaction)
        .connect_with(options.clone())
        .await?;
    // The read-only pool opens lazily: its first connection must find the schema the
    // writer is about to migrate.
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_lazy_with(options.read_only(true));
    Ok((writer, reader))
}

/// The pools' `after_release`: a connection that comes back still inside a transaction,
/// even once the rollback its dropped `Transaction` queued has run, is closed instead of
/// reused, and the pool opens a fresh one when it is next needed.
///
/// A `Transaction` dropped without a commit (a statement or the `COMMIT` failed, or the
/// future was cancelled) only queues its `ROLLBACK`, and that can fail too. On SQLite a
/// failed write (`SQLITE_FULL`, `SQLITE_IOERR`) may roll the transaction back by itself;
/// the queued `ROLLBACK` then fails, and sqlx still counts the connection as inside a
/// transaction, so its next `begin` became a `SAVEPOINT` and its next "commit" only a
/// `RELEASE`. Once one of those failed too, every later write stayed inside a transaction
/// that never reached the disk, while callers heard it had committed. Closing the
/// connection ends whatever transaction it was in, whatever sqlx or the database believed.
///
/// A commit costs this one counter read; only a dropped transaction costs a round trip to
/// the connection (to run its rollback), and only a failed rollback a new connection.
fn keep_unless_in_transaction<C: Connection>(
    connection: &mut C,
    _: PoolConnectionMetadata,
) -> BoxFuture<'_, sqlx::Result<bool>> {
    if !connection.is_in_transaction() {
        return Box::pin(std::future::ready(Ok(true)));
    }
    Box::pin(async move {
        // The ping queues behind the dropped transaction's rollback, so it runs that first.
        let clean = connection.ping().await.is_ok() && !connection.is_in_transaction();
        if !clean {
            tracing::debug!("closing a store connection left inside a transaction");
        }
        Ok(clean)
    })
}

/// Creates `dir` (and its parents) as the data directory: readable by its owner only.
/// A directory that exists is left as it is: its owner chose its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes the database file at `path` and its `-wal` and `-shm` files readable and writable
/// by their owner only (0600), whatever the umask: they hold every payload and the
/// sealed secrets. A missing database file is created empty with that mode before SQLite
/// opens it, and SQLite gives the `-wal` and `-shm` files it creates the database file's
/// mode. Files left by an older version with a wider mode are narrowed, or, where this
/// process may not change them, a warning says so.
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        for file in [path.as_os_str(), &wal, &shm] {
            let file = Path::new(file);
            let Ok(metadata) = std::fs::metadata(file) else {
                continue;
            };
            if metadata.permissions().mode() & 0o077 != 0
                && let Err(error) =
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(%error, file = %file.display(), "the database file is readable by others, and could not be made private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Brings the schema up to date; returns the migrations that were not applied before.
/// Both drivers take a database lock while migrating, so processes starting together do
/// not apply a migration twice.
pub(super) async fn migrate(pool: &Pool) -> Result<Vec<AppliedMigration>> {
    on_pool!(pool, |conn, Db, dialect| {
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let before: HashSet<i64> = {
            let mut connection = conn.acquire().await?;
            connection.ensure_migrations_table().await?;
            connection
                .list_applied_migrations()
                .await?
                .into_iter()
                .map(|m| m.version)
                .collect()
        };
        migrator.run(conn).await?;
        Ok(migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
            .map(|m| AppliedMigration {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect())
    })
}
