//! The embedded store on a disk that fills up: a hub whose data dir is a small tmpfs
//! refuses notifications with 503 and `Retry-After` while its commits fail, says it is not
//! ready meanwhile, and takes them again once there is room. Every notification it
//! answered 202 for is stored, delivered and still there after a restart; none is lost.
//!
//! The test mounts a real tmpfs, so it runs as root (as the tests do here).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Answer, EXIT_TIMEOUT, Hub, Receiver, eventually, one_hook};

/// Notifications per batch, and the padding each carries: large enough that a few batches
/// need the WAL to grow, so a full disk shows at once.
const BATCH: usize = 100;
const PADDING: usize = 1024;

/// A tmpfs mounted for one test, unmounted (lazily, if something still holds it) when
/// dropped, even when the test fails. Declare it before the hub using it, so the hub is
/// killed first.
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub(crate) fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-tmpfs-")
            .tempdir()
            .expect("can create a mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("can run mount");
        assert!(
            status.success(),
            "could not mount a tmpfs at {} ({status}); this test runs as root",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        let unmounted = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still has a file open there (a hub that has not exited yet): detach
            // the mount now; the kernel frees it when the last file closes.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

/// Fills the filesystem under `dir` with one file until a write fails with ENOSPC; the
/// file goes away when dropped (and with the tmpfs, whatever happens).
struct Filler {
    path: PathBuf,
}

impl Filler {
    fn fill(dir: &Path) -> Filler {
        let path = dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("can create the filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        // Bounded: the tmpfs is a few MiB, so this ends long before the count does.
        for _ in 0..100_000 {
            if let Err(error) = file.write_all(&chunk) {
                assert_eq!(
                    error.raw_os_error(),
                    Some(libc::ENOSPC),
                    "filling the tmpfs: {error}"
                );
                break;
            }
        }
        // The last partial chunk: byte by byte is too slow, 4 KiB pages are what tmpfs uses.
        let page = vec![0x5a_u8; 4096];
        for _ in 0..16 {
            if file.write_all(&page).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
        Filler { path }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A batch of [`BATCH`] notifications of `kind`.
pub(crate) fn batch_body(kind: &str, round: usize) -> Value {
    let padding = "x".repeat(PADDING);
    let notifications: Vec<Value> = (0..BATCH)
        .map(|i| json!({"kind": kind, "payload": {"round": round, "n": i, "padding": padding}}))
        .collect();
    json!({ "notifications": notifications })
}

/// What the hub said to one batch.
pub(crate) enum Sent {
    /// 202, with the ids it gave.
    Accepted(Vec<String>),
    /// 503, with the problem's `Retry-After` (asserted present and a number of seconds).
    Refused,
}

/// Sends one batch; asserts the answer is a 202 with an id per notification or a 503
/// problem carrying `Retry-After`.
pub(crate) async fn send_batch(hub: &Hub, kind: &str, round: usize) -> Sent {
    let answer = hub
        .post_json("/api/v1/notifications/batch", &batch_body(kind, round))
        .await;
    match answer.status {
        202 => {
            let ids: Vec<String> = answer.json()["notifications"]
                .as_array()
                .unwrap_or_else(|| panic!("a 202 lists the notifications: {answer}"))
                .iter()
                .map(|n| n["id"].as_str().expect("each has an id").to_owned())
                .collect();
            assert_eq!(ids.len(), BATCH, "{answer}");
            Sent::Accepted(ids)
        }
        503 => {
            answer.problem(503);
            let retry_after = answer.header("retry-after");
            assert!(
                retry_after
                    .as_deref()
                    .is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s > 0)),
                "a 503 must say when to retry (Retry-After in seconds): {answer}"
            );
            Sent::Refused
        }
        _ => panic!("a batch got neither 202 nor 503: {answer}"),
    }
}

/// `/readyz`'s status.
pub(crate) async fn readyz(hub: &Hub) -> u16 {
    Answer::of(hub.anonymous(reqwest::Method::GET, "/readyz"))
        .await
        .status
}

/// Asserts that `GET /api/v1/notifications/{id}` finds every id in `accepted`: nothing
/// answered 202 was lost. Prints how many were accepted and how many are not stored.
pub(crate) async fn assert_none_lost(hub: &Hub, accepted: &BTreeSet<String>) {
    let lost = missing(hub, accepted).await;
    eprintln!(
        "accepted (202): {}; not stored: {}",
        accepted.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} notifications answered 202 are not stored, such as {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(3)]
    );
}

/// The ids in `accepted` that `GET /api/v1/notifications/{id}` does not find.
async fn missing(hub: &Hub, accepted: &BTreeSet<String>) -> Vec<String> {
    let mut missing = Vec::new();
    for id in accepted {
        let answer = hub.get(&format!("/api/v1/notifications/{id}")).await;
        match answer.status {
            200 => {}
            404 => missing.push(id.clone()),
            _ => panic!("GET notification {id}: {answer}"),
        }
    }
    missing
}

/// Waits until `receiver` has had every id in `accepted` (as `webhook-id`); panics with
/// how many never came.
async fn wait_delivered(receiver: &Receiver, accepted: &BTreeSet<String>) {
    eventually(
        Duration::from_secs(120),
        &format!("{} accepted notifications delivered", accepted.len()),
        || {
            let delivered: BTreeSet<String> =
                receiver.received().iter().map(|r| r.webhook_id()).collect();
            let undelivered = accepted.difference(&delivered).count();
            std::future::ready((undelivered == 0).then_some(()))
        },
    )
    .await;
}

/// Waits until every id in `accepted` reached `receiver`, then restarts `hub` (SIGTERM and
/// start) and asserts that each is still stored: what got a 202 outlives the process.
pub(crate) async fn delivered_and_kept_across_a_restart(
    hub: &mut Hub,
    receiver: &Receiver,
    accepted: &BTreeSet<String>,
) {
    wait_delivered(receiver, accepted).await;
    hub.sigterm();
    let status = hub.wait_exit(EXIT_TIMEOUT).await;
    assert!(status.success(), "the hub exited with {status}");
    hub.start().await;
    let lost = missing(hub, accepted).await;
    assert!(
        lost.is_empty(),
        "{} of {} accepted notifications are gone after a restart",
        lost.len(),
        accepted.len()
    );
}

/// The hub's log lines (both runs, stdout and stderr) that contain `text`.
pub(crate) fn log_lines(hub: &Hub, text: &str) -> usize {
    hub.logs().lines().filter(|l| l.contains(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_with_503_and_loses_no_accepted_notification() {
    let receiver = Receiver::start().await;
    // Room for the database and the plugins' compiled cache, and little else.
    let tmpfs = Tmpfs::mount("48m");
    let mut hub = Hub::new(&one_hook(&receiver.url("/hook"), "[100ms, 500ms, 1s]", ""));
    let routes = hub.routes_path();
    hub = hub
        .env("SWITCHYARD_DATA_DIR", &tmpfs.path().display().to_string())
        .env("SWITCHYARD_ROUTES", &routes.display().to_string());
    hub.start().await;

    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut round = 0;
    for _ in 0..3 {
        round += 1;
        match send_batch(&hub, "disk.before", round).await {
            Sent::Accepted(ids) => accepted.extend(ids),
            Sent::Refused => panic!("a batch was refused before the disk filled"),
        }
    }

    // The disk fills. Batches keep coming; the hub may take some while the WAL has room
    // it can reuse, then refuses them.
    let filler = Filler::fill(tmpfs.path());
    let mut refused = 0;
    let mut unready_while_refusing = 0;
    let mut accepted_while_full = 0;
    let started = Instant::now();
    while refused < 10 && round < 400 && started.elapsed() < Duration::from_secs(90) {
        round += 1;
        match send_batch(&hub, "disk.full", round).await {
            Sent::Accepted(ids) => {
                accepted_while_full += ids.len();
                accepted.extend(ids);
            }
            Sent::Refused => {
                refused += 1;
                if readyz(&hub).await == 503 {
                    unready_while_refusing += 1;
                }
            }
        }
    }
    eprintln!(
        "while full: {refused} batches refused, {accepted_while_full} notifications accepted, \
         /readyz 503 after {unready_while_refusing} of the refusals"
    );
    assert!(refused > 0, "no batch was refused on a full disk");

    // Room again: the hub takes batches once more, by itself.
    drop(filler);
    let mut recovered = 0;
    let started = Instant::now();
    while recovered < 3 && round < 1000 && started.elapsed() < Duration::from_secs(60) {
        round += 1;
        match send_batch(&hub, "disk.after", round).await {
            Sent::Accepted(ids) => {
                recovered += 1;
                accepted.extend(ids);
            }
            Sent::Refused => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(
        recovered, 3,
        "the hub did not take batches again once there was room"
    );
    eventually(Duration::from_secs(30), "/readyz 200 again", || async {
        (readyz(&hub).await == 200).then_some(())
    })
    .await;

    // Nothing answered 202 is lost: readable, delivered, and there after a restart.
    assert_none_lost(&hub, &accepted).await;
    assert!(
        unready_while_refusing > 0,
        "/readyz said ready every time right after a 503 for a failed commit"
    );
    delivered_and_kept_across_a_restart(&mut hub, &receiver, &accepted).await;

    // One line when the failures started and one when they stopped, not one per request.
    let failing = log_lines(&hub, "store writes are failing");
    let recovered_lines = log_lines(&hub, "store writes succeed again");
    eprintln!("log: {failing} lines saying writes fail, {recovered_lines} saying they land again");
    assert!(
        failing >= 1 && recovered_lines >= 1,
        "the hub did not log the outage ({failing}) and its end ({recovered_lines})"
    );
    assert!(
        failing <= recovered_lines + 1 && failing < refused,
        "one line per outage, not per request: {failing} for {refused} refusals"
    );
}
