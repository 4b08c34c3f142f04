//! The hub under test: `switchyard serve` from this same binary, run as a child process in
//! a temporary data dir, so the bench measures the real front door, store and workers
//! (and their memory) apart from the load generator's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// How long the hub may take to answer `/readyz` (compiling the plugins on a cold cache
/// is the slow part).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the hub may take to exit after SIGTERM before it is killed: its own grace for
/// calls in flight is 30 s by default.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Variables that would point the child at another config, store, routes file or port
/// than the bench's. Other `SWITCHYARD_*` variables pass through, so the hub can be tuned
/// from the command line (`SWITCHYARD_DELIVERY__CONCURRENCY=128 switchyard bench`).
const NOT_PASSED: &[&str] = &[
    "SWITCHYARD_CONFIG",
    "SWITCHYARD_DATA_DIR",
    "SWITCHYARD_LISTEN",
    "SWITCHYARD_PUBLIC_URL",
    "SWITCHYARD_ROUTES",
    "SWITCHYARD_STORE__URL",
];

/// The `SWITCHYARD_*` variables the child inherits from the bench's environment.
pub fn passed_through_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| name.starts_with("SWITCHYARD_") && !NOT_PASSED.contains(&&**name))
        .collect()
}

/// The hub's settings: everything in `dir` (the store too, unless `store` names one),
/// listening on `listen`.
struct Settings<'a> {
    exe: PathBuf,
    dir: &'a Path,
    store: Option<&'a str>,
    listen: String,
}

impl Settings<'_> {
    /// A command running this binary with `args` as the hub would be run: in the data dir
    /// (so no stray `./switchyard.yaml` is read) with the bench's settings.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .current_dir(self.dir)
            .stdin(Stdio::null());
        for name in NOT_PASSED {
            command.env_remove(name);
        }
        command
            .env("SWITCHYARD_DATA_DIR", self.dir)
            .env("SWITCHYARD_LISTEN", &self.listen)
            // The receiver is on 127.0.0.1, which plugins may not reach by default.
            .env("SWITCHYARD_PLUGINS__ALLOW_LOOPBACK", "true");
        if let Some(store) = self.store {
            command.env("SWITCHYARD_STORE__URL", store);
        }
        command
    }
}

/// A running `switchyard serve`.
pub struct HubProcess {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The API token the bench sends with.
    pub token: String,
    /// The child's stdout and stderr.
    pub log: PathBuf,
}

impl HubProcess {
    /// Creates a token in a fresh store in `dir` (whose `routes.yaml` is already written),
    /// or in `store` when given, starts the hub there, and waits until it is ready.
    pub async fn start(
        dir: &Path,
        store: Option<&str>,
        client: &reqwest::Client,
    ) -> anyhow::Result<HubProcess> {
        let settings = Settings {
            exe: std::env::current_exe().context("cannot find this program's own binary")?,
            dir,
            store,
            listen: format!("127.0.0.1:{}", free_port()?),
        };

        let output = settings
            .command(&["token", "create", "bench"])
            .output()
            .await
            .context("could not run `switchyard token create`")?;
        if !output.status.success() {
            bail!(
                "`switchyard token create` failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let token = String::from_utf8(output.stdout)
            .context("`switchyard token create` printed a token that is not UTF-8")?
            .trim()
            .to_owned();

        let log = dir.join("hub.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("could not create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = settings
            .command(&["serve"])
            .stdout(out)
            .stderr(err)
            // If the bench dies, the hub must not outlive it.
            .kill_on_drop(true)
            .spawn()
            .context("could not start `switchyard serve`")?;
        let pid = child.id().context("the hub exited at once")?;
        let mut hub = HubProcess {
            child,
            pid,
            url: format!("http://{}", settings.listen),
            token,
            log,
        };
        hub.wait_ready(client).await?;
        Ok(hub)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        let readyz = format!("{}/readyz", self.url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the hub exited before it was ready ({status}); its log, {}, ends:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            let ready = client
                .get(&readyz)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the hub was not ready after {READY_TIMEOUT:?}; its log is {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails if the hub has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "the hub exited during the run ({status}); its log, {}, ends:\n{}",
                self.log.display(),
                log_tail(&self.log, 20)
            ),
        }
    }

    /// Stops the hub as an operator would, with SIGTERM, and waits for it to exit; kills
    /// it if it takes longer than [`STOP_TIMEOUT`].
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        #[cfg(unix)]
        {
            // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own child,
            // which has not been reaped (try_wait above found it running), so the id
            // cannot have been reused.
            let pid = libc::pid_t::try_from(self.pid).context("the hub's pid is out of range")?;
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        #[cfg(not(unix))]
        self.child.start_kill()?;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!(
                    "the hub did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed; \
                     see {}",
                    self.log.display()
                )
            }
        }
    }
}

/// A port that was free a moment ago. The hub binds it right after; another process
/// taking it in between would make the hub fail to start, clearly.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("could not find a free port for the hub")?;
    Ok(listener.local_addr()?.port())
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Peak resident set size (VmHWM) of a process in bytes, from `/proc`; `None` where there
/// is no `/proc`.
pub fn peak_rss(pid: Option<u32>) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size now (VmRSS) of process `pid` in bytes; `None` where there is no
/// `/proc`.
pub fn rss(pid: u32) -> Option<u64> {
    status_kib(Some(pid), "VmRSS:")
}

/// A `... kB` field of a process's `/proc/.../status`, in bytes.
fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, all threads) a process has used so far, from `/proc`; `None`
/// where there is no `/proc`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// CPU time used so far by each live thread of a process: (thread id, thread name, time).
/// Empty where there is no `/proc`.
pub fn thread_cpu(pid: u32) -> Vec<(u32, String, Duration)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let time = stat_cpu(&std::fs::read_to_string(task.path().join("stat")).ok()?)?;
            Some((tid, name.trim().to_owned(), time))
        })
        .collect()
}

/// CPU time the whole machine has spent busy (all cores, anything but idle and I/O wait)
/// so far, from `/proc/stat`; `None` where there is none. Less the hub's and the bench's,
/// it tells how much other work shared the cores during the run.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; guest time is already in user.
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_secs_f64(
        busy as f64 / clock_ticks_per_second(),
    ))
}

/// utime + stime from the text of a `/proc/.../stat` file.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name, field 2, is in parentheses and may hold spaces: count fields from
    // the last `)`. utime and stime are fields 14 and 15, so 12th and 13th after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks_per_second(),
    ))
}

#[cfg(unix)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(not(unix))]
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory_and_cpu() {
        if !Path::new("/proc/self/status").exists() {
            return;
        }
        assert!(peak_rss(None).unwrap() > 0);
        assert!(rss(std::process::id()).unwrap() > 0);
        assert!(cpu_time(None).is_some());
        assert!(machine_busy().is_some());
        let threads = thread_cpu(std::process::id());
        assert!(threads.iter().any(|(tid, _, _)| *tid == std::process::id()));
    }
}
