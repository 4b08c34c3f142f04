//! A PostgreSQL store whose connections are cut under load: the database server
//! terminates every one of the hub's backends, again and again, while batches pour in.
//! Batches caught mid-transaction are refused with 503 and `Retry-After`; every
//! notification answered 202 is stored, delivered and still there after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::brokers::{TestDatabase, postgres_admin_url};
use crate::disk_full::{
    Sent, assert_none_lost, delivered_and_kept_across_a_restart, readyz, send_batch,
};
use crate::support::{Hub, Receiver, one_hook};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_database_connections_lose_no_accepted_notification() {
    let receiver = Receiver::start().await;
    // A database of the test's own, so the terminations reach only its hub's connections.
    let database = TestDatabase::create("switchyard_cut").await;
    let mut hub = Hub::new(&one_hook(&receiver.url("/hook"), "[100ms, 500ms, 1s]", ""))
        .env("SWITCHYARD_STORE__URL", &database.url());
    hub.start().await;

    // The cutter: every 150 ms, terminate every backend connected to the test's database
    // (only the hub's: the cutter itself is connected to another).
    let admin = sqlx::PgPool::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL answers");
    let cutting = Arc::new(AtomicBool::new(true));
    let cutter = {
        let cutting = cutting.clone();
        let name = database.name.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut cut = 0u64;
            for _ in 0..400 {
                if !cutting.load(Ordering::Relaxed) {
                    break;
                }
                let killed: Vec<(bool,)> = sqlx::query_as(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .fetch_all(&admin)
                .await
                .expect("can terminate the hub's backends");
                cut += killed.len() as u64;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            cut
        })
    };

    // The burst: two senders, each a bounded number of batches.
    let mut senders = Vec::new();
    for sender in 0..2 {
        let hub = &hub;
        senders.push(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let mut unready = 0;
            let started = Instant::now();
            for round in 0..30 {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                match send_batch(hub, &format!("cut.{sender}"), round).await {
                    Sent::Accepted(ids) => accepted.extend(ids),
                    Sent::Refused => {
                        refused += 1;
                        // Right after a refusal the store's last write failed (unless the
                        // other sender's landed since): /readyz says so.
                        if readyz(hub).await == 503 {
                            unready += 1;
                        }
                    }
                }
            }
            (accepted, refused, unready)
        });
    }
    let results = futures::future::join_all(senders).await;
    cutting.store(false, Ordering::Relaxed);
    let cut = cutter.await.expect("the cutter ran");
    admin.close().await;

    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut refused = 0;
    let mut unready = 0;
    for (ids, refusals, unready_after) in results {
        accepted.extend(ids);
        refused += refusals;
        unready += unready_after;
    }
    eprintln!(
        "{cut} backends terminated; {} notifications accepted, {refused} batches refused, \
         /readyz 503 after {unready} of them",
        accepted.len()
    );
    assert!(cut > 0, "the cutter terminated no backend of the hub");
    assert!(
        refused == 0 || unready > 0,
        "/readyz said ready after every one of {refused} refusals for failed commits"
    );

    // With the cuts over, the hub takes batches again.
    let mut round = 1000;
    let mut taken = false;
    let started = Instant::now();
    while !taken && started.elapsed() < Duration::from_secs(60) {
        round += 1;
        match send_batch(&hub, "cut.after", round).await {
            Sent::Accepted(ids) => {
                taken = true;
                accepted.extend(ids);
            }
            Sent::Refused => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(taken, "the hub took no batch once the cuts stopped");

    assert_none_lost(&hub, &accepted).await;
    delivered_and_kept_across_a_restart(&mut hub, &receiver, &accepted).await;
}
