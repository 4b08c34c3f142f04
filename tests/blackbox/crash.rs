//! `kill -9` in the middle of a burst: nothing accepted is lost, nothing is delivered
//! under two ids, and clients that resend with their Idempotency-Key create no duplicates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, Receiver, eventually, one_hook};

const TOTAL: usize = 10_000;
const BATCH: usize = 100;
const BATCHES: usize = TOTAL / BATCH;
const SENDERS: usize = 4;
/// Kill the hub once this many notifications have been accepted.
const KILL_AFTER: usize = 3_000;

/// The body of batch `b`: seqs `b*100 .. b*100+99`.
fn batch_body(b: usize) -> Value {
    let notifications: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
        .map(|seq| json!({"kind": "burst.item", "payload": {"seq": seq}}))
        .collect();
    json!({ "notifications": notifications })
}

/// Sends batch `b` with its own Idempotency-Key. The ids, in seq order, on a 202; `None`
/// on anything else (an error, a refused connection, a dead hub).
async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    b: usize,
) -> Option<Vec<String>> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", format!("burst-batch-{b}"))
        .body(batch_body(b).to_string())
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    let ids: Vec<String> = body["notifications"]
        .as_array()?
        .iter()
        .map(|n| n["id"].as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    (ids.len() == BATCH).then_some(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn kill_9_mid_burst_loses_nothing_and_keeps_ids() {
    let receiver = Receiver::start().await;
    let mut hub = Hub::started(&one_hook(
        &receiver.url("/hook"),
        "[100ms, 500ms, 1s, 2s, 5s]",
        "",
    ))
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Phase 1: SENDERS connections take batches in turn until all are sent (or failed).
    let url = hub.url("/api/v1/notifications/batch");
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let answers: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
    let pid = hub.pid();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, url, token) = (client.clone(), url.clone(), hub.token.clone());
        let (next, accepted, answers) = (next.clone(), accepted.clone(), answers.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b >= BATCHES {
                    return;
                }
                if let Some(ids) = send_batch(&client, &url, &token, b).await {
                    answers.lock().unwrap().insert(b, ids);
                    let now = accepted.fetch_add(BATCH, Ordering::SeqCst) + BATCH;
                    // The sender that crosses the line kills the hub at once, while the
                    // other connections have batches in flight.
                    if now >= KILL_AFTER && now - BATCH < KILL_AFTER {
                        Hub::sigkill(pid);
                    }
                }
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted_before_kill = accepted.load(Ordering::SeqCst);
    assert!(
        accepted_before_kill >= KILL_AFTER,
        "only {accepted_before_kill} notifications were accepted before the hub went away"
    );
    hub.kill9();
    let answered_before = answers.lock().unwrap().len();
    assert!(
        answered_before < BATCHES,
        "every batch was accepted; the test did not kill mid-burst"
    );
    eprintln!(
        "kill -9 after {KILL_AFTER} accepted; {answered_before} of {BATCHES} batches answered"
    );

    // Phase 2: restart on the same data dir and resend what got no 202, with the same keys.
    hub.start().await;
    let url = hub.url("/api/v1/notifications/batch");
    for b in 0..BATCHES {
        if answers.lock().unwrap().contains_key(&b) {
            continue;
        }
        let ids = send_batch(&client, &url, &hub.token, b)
            .await
            .unwrap_or_else(|| panic!("batch {b} was refused after the restart"));
        answers.lock().unwrap().insert(b, ids);
    }
    let answers = answers.lock().unwrap().clone();

    // The id the API gave for each seq.
    let mut api_id: BTreeMap<usize, String> = BTreeMap::new();
    for (b, ids) in &answers {
        for (i, id) in ids.iter().enumerate() {
            api_id.insert(b * BATCH + i, id.clone());
        }
    }
    assert_eq!(api_id.len(), TOTAL);
    let distinct: BTreeSet<&String> = api_id.values().collect();
    assert_eq!(distinct.len(), TOTAL, "the API gave one id to two seqs");

    // Wait until the receiver has seen every seq.
    let seen_by_seq = eventually(
        Duration::from_secs(600),
        "the receiver to see all 10,000 seqs",
        || {
            let mut by_seq: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for request in receiver.received() {
                let seq = request.json()["data"]["seq"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no data.seq in {request:?}"))
                    as usize;
                by_seq.entry(seq).or_default().push(request.webhook_id());
            }
            std::future::ready((by_seq.len() >= TOTAL).then_some(by_seq))
        },
    )
    .await;

    let deliveries: usize = seen_by_seq.values().map(Vec::len).sum();
    eprintln!(
        "{deliveries} deliveries for {TOTAL} seqs ({} redelivered)",
        deliveries - TOTAL
    );
    let mut problems = Vec::new();
    for (seq, ids) in &seen_by_seq {
        // At-least-once may repeat a delivery, but never under a new id.
        let first = &ids[0];
        if ids.iter().any(|id| id != first) {
            problems.push(format!(
                "seq {seq} was delivered under several ids: {ids:?}"
            ));
        }
        if api_id.get(seq) != Some(first) {
            problems.push(format!(
                "seq {seq} was delivered as {first} but the API answered {:?}",
                api_id.get(seq)
            ));
        }
    }
    let delivered_ids: BTreeSet<&String> = seen_by_seq.values().flatten().collect();
    for (seq, id) in &api_id {
        if !delivered_ids.contains(id) {
            problems.push(format!(
                "seq {seq}: id {id} the API returned was never delivered"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems, the first 20:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}
