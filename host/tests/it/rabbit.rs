//! The RabbitMQ delivery queues against the machine's real broker
//! (`amqp://guest:guest@127.0.0.1:5672`, or `SWITCHYARD_TEST_RABBITMQ`). The tests fail when
//! it is unreachable. Each test works under its own random queue prefix and deletes its
//! queues at the end, whatever happened.
//!
//! The restart test stops and starts the broker (`rabbitmqctl stop_app` / `start_app`), so
//! it holds [`BROKER`] exclusively while the others share it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use switchyard::bus::rabbit::{Leased, RabbitQueues};
use switchyard::bus::{QueueType, QueuedDelivery, RabbitSettings};
use switchyard::store::Notification;
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;

use crate::support::Captured;

/// Shared by the tests that only use the broker; held alone by the one that restarts it.
static BROKER: RwLock<()> = RwLock::const_new(());

const BOTH: [QueueType; 2] = [QueueType::Classic, QueueType::Quorum];

fn broker_url() -> String {
    std::env::var("SWITCHYARD_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn settings(queue_type: QueueType) -> RabbitSettings {
    RabbitSettings {
        url: broker_url(),
        queue_type,
        prefetch: 50,
        // One delivery per message, so these tests can count messages; the parcel tests
        // raise it.
        parcel: 1,
        delivery_limit: 3,
        prefix: format!("sy-test-{}", uuid::Uuid::now_v7().simple()),
        connect_timeout: Duration::from_secs(10),
    }
}

fn delivery(channel: &str, n: usize) -> QueuedDelivery {
    QueuedDelivery {
        delivery_id: format!("d-{channel}-{n}"),
        channel: channel.to_string(),
        attempts: 0,
        retry_base: 0,
        notification: Notification {
            id: format!("n-{n}"),
            kind: "order.created".into(),
            source: "shop".into(),
            attributes: vec![("severity".into(), "low".into())],
            payload: format!(r#"{{"n":{n}}}"#),
            idempotency_key: None,
            created_at: 1_700_000_000_000,
            tenant: None,
        },
    }
}

/// A direct line to the broker, to look at queues the way an operator would.
struct Inspector {
    connection: Connection,
}

impl Inspector {
    async fn connect() -> Inspector {
        let connection = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ at {} is unreachable: {e}", broker_url()));
        Inspector { connection }
    }

    /// Messages ready in `queue` (not counting those handed out and unacked).
    async fn ready(&self, queue: &str) -> u32 {
        let channel = self.connection.create_channel().await.unwrap();
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue} should exist: {e}"));
        declared.message_count()
    }

    /// Takes every message off `queue`.
    async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let channel = self.connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            messages.push(message);
        }
        messages
    }

    async fn publish_raw(&self, queue: &str, body: &[u8]) {
        self.publish_raw_with(
            queue,
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
    }

    async fn publish_raw_with(&self, queue: &str, body: &[u8], properties: BasicProperties) {
        let channel = self.connection.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_ack());
    }

    async fn delete(&self, queue: &str) {
        if let Ok(channel) = self.connection.create_channel().await {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

/// Runs `body` with fresh queues under a random prefix, then deletes every queue it may
/// have made, even when `body` panicked.
async fn with_queues<F, Fut>(settings: RabbitSettings, delays: &[u64], body: F)
where
    F: FnOnce(Arc<RabbitQueues>, RabbitSettings) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let queues = RabbitQueues::connect(&settings)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = tokio::spawn(body(queues, settings.clone())).await;
    let inspector = Inspector::connect().await;
    for channel in ["a", "b", "poison"] {
        let base = format!("{}.{channel}", settings.prefix);
        for delay in delays {
            inspector.delete(&format!("{base}.retry.{delay}")).await;
        }
        inspector.delete(&format!("{base}.dead")).await;
        inspector.delete(&base).await;
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The next delivery, or a failure naming what was awaited.
async fn next(leases: &mut mpsc::Receiver<Leased>, what: &str) -> Leased {
    tokio::time::timeout(Duration::from_secs(15), leases.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("the consumer ended while waiting for {what}"))
}

/// Asserts that nothing arrives for a while.
async fn quiet(leases: &mut mpsc::Receiver<Leased>, for_: Duration) {
    if let Ok(Some(leased)) = tokio::time::timeout(for_, leases.recv()).await {
        panic!("nothing should have arrived, got {:?}", leased.delivery);
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error_without_the_password() {
    // It logs the outage, which must not race with the restart test's log capture.
    let _shared = BROKER.read().await;
    let mut settings = settings(QueueType::Classic);
    settings.url = "amqp://guest:hunter2@127.0.0.1:1/%2f".into();
    settings.connect_timeout = Duration::from_secs(2);
    let error = RabbitQueues::connect(&settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("RabbitMQ at amqp://127.0.0.1:1 is unreachable"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn enqueue_consume_ack_round_trip() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        with_queues(settings(queue_type), &[], |queues, settings| async move {
            let sent: Vec<_> = (0..5)
                .map(|n| delivery("a", n))
                .chain([delivery("b", 9)])
                .collect();
            queues.enqueue(&sent).await.unwrap();

            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());
            let mut got = Vec::new();
            for _ in 0..5 {
                let leased = next(&mut leases, "a delivery on a").await;
                assert_eq!(leased.handouts, 0);
                got.push(leased.delivery.clone());
                leased.ack().await.unwrap();
            }
            got.sort_by(|x, y| x.delivery_id.cmp(&y.delivery_id));
            assert_eq!(got, sent[..5].to_vec(), "{queue_type:?}");
            // Acked is gone for good: nothing comes back, and b's delivery stayed on b.
            quiet(&mut leases, Duration::from_millis(500)).await;
            let inspector = Inspector::connect().await;
            assert_eq!(inspector.ready(&format!("{}.a", settings.prefix)).await, 0);
            assert_eq!(inspector.ready(&format!("{}.b", settings.prefix)).await, 1);

            stop.cancel();
            assert!(
                leases.recv().await.is_none(),
                "the receiver ends after stop"
            );
        })
        .await;
    }
}

#[tokio::test]
async fn retry_in_comes_back_after_the_delay_with_the_updated_attempts() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        with_queues(settings(queue_type), &[1500], |queues, _| async move {
            queues.enqueue(&[delivery("a", 1)]).await.unwrap();
            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());

            let mut leased = next(&mut leases, "the first attempt").await;
            leased.delivery.attempts = 1;
            let retried_at = Instant::now();
            leased.retry_in(Duration::from_millis(1500)).await.unwrap();

            let again = next(&mut leases, "the retry").await;
            let waited = retried_at.elapsed();
            assert!(
                waited >= Duration::from_millis(1400),
                "{queue_type:?}: came back after {waited:?}"
            );
            assert_eq!(again.delivery.attempts, 1);
            assert_eq!(again.delivery.delivery_id, "d-a-1");
            again.ack().await.unwrap();
            quiet(&mut leases, Duration::from_millis(300)).await;
            stop.cancel();
        })
        .await;
    }
}

#[tokio::test]
async fn dead_lands_in_the_dead_queue() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        with_queues(settings(queue_type), &[], |queues, settings| async move {
            queues
                .enqueue(&[delivery("a", 1), delivery("a", 2)])
                .await
                .unwrap();
            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());
            let mut first = next(&mut leases, "the first delivery").await;
            first.delivery.attempts = 7;
            let expected = first.delivery.clone();
            first.dead().await.unwrap();
            next(&mut leases, "the second delivery")
                .await
                .ack()
                .await
                .unwrap();
            quiet(&mut leases, Duration::from_millis(300)).await;
            stop.cancel();

            let inspector = Inspector::connect().await;
            let dead = inspector
                .drain(&format!("{}.a.dead", settings.prefix))
                .await;
            assert_eq!(dead.len(), 1, "{queue_type:?}");
            let body: QueuedDelivery = serde_json::from_slice(&dead[0].delivery.data).unwrap();
            assert_eq!(body, expected);
            assert_eq!(inspector.ready(&format!("{}.a", settings.prefix)).await, 0);
        })
        .await;
    }
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_at_the_limit_while_others_flow() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        with_queues(settings(queue_type), &[], |queues, settings| async move {
            let inspector = Inspector::connect().await;
            let queue = format!("{}.poison", settings.prefix);
            let dead_queue = format!("{queue}.dead");
            // A body that is not a delivery at all goes to the dead-letter queue at once.
            queues.enqueue(&[delivery("poison", 0)]).await.unwrap();
            inspector.publish_raw(&queue, b"{not json").await;
            let good: Vec<_> = (1..=20).map(|n| delivery("poison", n)).collect();
            queues.enqueue(&good).await.unwrap();

            let stop = CancellationToken::new();
            let mut leases = queues.consume("poison", stop.clone());
            let mut poison_handouts = Vec::new();
            let mut acked = HashSet::new();
            while acked.len() < good.len() {
                let leased = next(&mut leases, "deliveries").await;
                if leased.delivery.delivery_id == "d-poison-0" {
                    poison_handouts.push(leased.handouts);
                    // Alternate the two ways a message comes back unsettled: given back,
                    // and dropped by a worker that bailed out.
                    if poison_handouts.len() % 2 == 1 {
                        leased.give_back().await.unwrap();
                    } else {
                        drop(leased);
                    }
                } else {
                    acked.insert(leased.delivery.delivery_id.clone());
                    leased.ack().await.unwrap();
                }
            }
            // The poison message is handed out exactly `delivery_limit` times.
            let deadline = Instant::now() + Duration::from_secs(10);
            while inspector.ready(&dead_queue).await < 2 && Instant::now() < deadline {
                if let Ok(Some(leased)) =
                    tokio::time::timeout(Duration::from_millis(100), leases.recv()).await
                {
                    assert_eq!(leased.delivery.delivery_id, "d-poison-0");
                    poison_handouts.push(leased.handouts);
                    leased.give_back().await.unwrap();
                }
            }
            quiet(&mut leases, Duration::from_millis(500)).await;
            stop.cancel();
            assert_eq!(poison_handouts.len(), 3, "{queue_type:?}: {poison_handouts:?}");
            if queue_type == QueueType::Classic {
                assert_eq!(poison_handouts, vec![0, 1, 2]);
            }

            let dead = inspector.drain(&dead_queue).await;
            assert_eq!(dead.len(), 2, "{queue_type:?}");
            let bodies: Vec<&[u8]> = dead.iter().map(|m| m.delivery.data.as_slice()).collect();
            assert!(bodies.contains(&b"{not json".as_slice()), "{queue_type:?}");
            let poison = dead
                .iter()
                .find_map(|m| serde_json::from_slice::<QueuedDelivery>(&m.delivery.data).ok())
                .expect("the poison delivery is in the dead-letter queue");
            assert_eq!(poison.delivery_id, "d-poison-0");
            let garbage = dead
                .iter()
                .find(|m| m.delivery.data == b"{not json")
                .unwrap();
            let reason = garbage
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-switchyard-dead-reason").cloned());
            assert!(
                matches!(&reason, Some(AMQPValue::LongString(s)) if s.to_string().contains("not a delivery")),
                "{reason:?}"
            );
            assert_eq!(inspector.ready(&queue).await, 0);
        })
        .await;
    }
}

#[tokio::test]
async fn prefetch_bounds_what_one_consumer_holds() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        let mut settings = settings(queue_type);
        settings.prefetch = 5;
        with_queues(settings, &[], |queues, settings| async move {
            let all: Vec<_> = (0..30).map(|n| delivery("a", n)).collect();
            queues.enqueue(&all).await.unwrap();
            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());
            let mut held = Vec::new();
            for _ in 0..5 {
                held.push(next(&mut leases, "a delivery within the prefetch").await);
            }
            quiet(&mut leases, Duration::from_millis(700)).await;
            let inspector = Inspector::connect().await;
            assert_eq!(inspector.ready(&format!("{}.a", settings.prefix)).await, 25);

            // Settling one makes room for exactly one more.
            held.pop().unwrap().ack().await.unwrap();
            held.push(next(&mut leases, "the next delivery").await);
            quiet(&mut leases, Duration::from_millis(500)).await;
            assert_eq!(inspector.ready(&format!("{}.a", settings.prefix)).await, 24);
            for leased in held {
                leased.ack().await.unwrap();
            }
            stop.cancel();
        })
        .await;
    }
}

/// Stops the broker mid-stream and starts it again: enqueue fails while it is down,
/// consumers come back by themselves, and every delivery is acked at least once, including
/// the ones held unacked when the broker went.
#[tokio::test]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let _alone = BROKER.write().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so every task of the queues logs under this.
    let _logs = tracing::subscriber::set_default(subscriber);
    let mut runs = Vec::new();
    for queue_type in BOTH {
        let mut settings = settings(queue_type);
        settings.connect_timeout = Duration::from_secs(3);
        runs.push(settings);
    }
    let classic = runs.remove(0);
    let quorum = runs.remove(0);
    with_queues(classic, &[], |classic_queues, _| async move {
        with_queues(quorum, &[], |quorum_queues, _| async move {
            restart_scenario(vec![classic_queues, quorum_queues]).await;
        })
        .await;
    })
    .await;
    // One line when the broker went and one when it was back, per set of queues, however
    // many reconnection attempts there were in between.
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logs.matches("RabbitMQ went away").count(), 2, "{logs}");
    assert_eq!(logs.matches("RabbitMQ is back").count(), 2, "{logs}");
    assert!(!logs.contains("consumer stopped"), "{logs}");
}

async fn restart_scenario(all: Vec<Arc<RabbitQueues>>) {
    const BEFORE: usize = 300;
    const AFTER: usize = 200;
    let stop = CancellationToken::new();
    let mut acked: Vec<HashSet<String>> = vec![HashSet::new(); all.len()];
    let mut held: Vec<Vec<Leased>> = (0..all.len()).map(|_| Vec::new()).collect();
    let mut streams = Vec::new();
    for queues in &all {
        let batch: Vec<_> = (0..BEFORE).map(|n| delivery("a", n)).collect();
        queues.enqueue(&batch).await.unwrap();
        streams.push(queues.consume("a", stop.clone()));
    }
    // Ack some, and hold a few unacked across the outage.
    for (i, leases) in streams.iter_mut().enumerate() {
        for n in 0..100 {
            let leased = next(leases, "a delivery before the restart").await;
            if n % 10 == 0 {
                held[i].push(leased);
            } else {
                acked[i].insert(leased.delivery.delivery_id.clone());
                leased.ack().await.unwrap();
            }
        }
    }

    rabbitmqctl("stop_app").await;
    let down: Vec<_> = (0..5).map(|n| delivery("a", 10_000 + n)).collect();
    for queues in &all {
        let error = queues
            .enqueue(&down)
            .await
            .expect_err("enqueue fails while the broker is down");
        assert!(error.to_string().contains("RabbitMQ at"), "{error}");
        assert!(queues.ping().await.is_err());
    }
    // Settling what was held fails: the broker hands those out again.
    for held in held.iter_mut() {
        for leased in held.drain(..) {
            assert!(leased.ack().await.is_err());
        }
    }
    rabbitmqctl("start_app").await;

    for (i, queues) in all.iter().enumerate() {
        let batch: Vec<_> = (BEFORE..BEFORE + AFTER).map(|n| delivery("a", n)).collect();
        // The broker may take a moment to accept publishes after start_app; the caller
        // retries, as the router does.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match queues.enqueue(&batch).await {
                Ok(()) => break,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("enqueue after restart: {error}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => panic!("enqueue never worked again: {error}"),
            }
        }
        queues.ping().await.unwrap();
        let leases = &mut streams[i];
        while acked[i].len() < BEFORE + AFTER {
            let leased = tokio::time::timeout(Duration::from_secs(60), leases.recv())
                .await
                .expect("the consumer resumes after the restart")
                .expect("the consumer keeps going");
            let id = leased.delivery.delivery_id.clone();
            if leased.ack().await.is_ok() {
                acked[i].insert(id);
            }
        }
        let expected: HashSet<String> = (0..BEFORE + AFTER)
            .map(|n| delivery("a", n).delivery_id)
            .collect();
        assert_eq!(acked[i], expected);
    }
    stop.cancel();
}

async fn rabbitmqctl(command: &'static str) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl")
            .arg(command)
            .output()
            .unwrap_or_else(|e| panic!("running rabbitmqctl {command}: {e}"))
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "rabbitmqctl {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Throughput through the real broker. Run with
/// `cargo test --release -p switchyard --test it rabbit::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput() {
    let _alone = BROKER.write().await;
    const TOTAL: usize = 50_000;
    const BATCH: usize = 1_000;
    // One delivery per message, and the default parcel.
    for (queue_type, parcel) in BOTH.into_iter().flat_map(|t| [(t, 1), (t, 32)]) {
        let mut settings = settings(queue_type);
        settings.prefetch = 1_000;
        settings.parcel = parcel;
        with_queues(settings, &[], move |queues, _| async move {
            let all: Vec<_> = (0..TOTAL).map(|n| delivery("a", n)).collect();
            let started = Instant::now();
            for batch in all.chunks(BATCH) {
                queues.enqueue(batch).await.unwrap();
            }
            let enqueue = started.elapsed();

            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());
            let started = Instant::now();
            let acks = tokio::task::JoinSet::new();
            let mut acks = acks;
            let mut seen: HashMap<String, ()> = HashMap::with_capacity(TOTAL);
            while seen.len() < TOTAL {
                let leased = next(&mut leases, "deliveries").await;
                seen.insert(leased.delivery.delivery_id.clone(), ());
                acks.spawn(async move { leased.ack().await.unwrap() });
                while acks.try_join_next().is_some() {}
            }
            while acks.join_next().await.is_some() {}
            let consume = started.elapsed();
            stop.cancel();
            println!(
                "{queue_type:?}, parcels of {parcel}: enqueue {TOTAL} in batches of {BATCH}: {:.0}/s; consume+ack: {:.0}/s",
                TOTAL as f64 / enqueue.as_secs_f64(),
                TOTAL as f64 / consume.as_secs_f64()
            );
        })
        .await;
    }
}

/// Many deliveries for one channel travel in parcels; each is settled on its own, and a
/// parcel is acked only when all of its deliveries are.
#[tokio::test]
async fn parcels_carry_many_deliveries_and_each_is_settled_on_its_own() {
    let _shared = BROKER.read().await;
    for queue_type in BOTH {
        let mut settings = settings(queue_type);
        settings.parcel = 8;
        with_queues(settings, &[60_000], |queues, settings| async move {
            let inspector = Inspector::connect().await;
            let queue = format!("{}.a", settings.prefix);
            let sent: Vec<_> = (0..20).map(|n| delivery("a", n)).collect();
            queues.enqueue(&sent).await.unwrap();
            // 20 deliveries in parcels of at most 8: three messages.
            assert_eq!(inspector.ready(&queue).await, 3, "{queue_type:?}");

            let stop = CancellationToken::new();
            let mut leases = queues.consume("a", stop.clone());
            let mut held = Vec::new();
            for _ in 0..20 {
                held.push(next(&mut leases, "a delivery of a parcel").await);
            }
            let mut ids: Vec<_> = held
                .iter()
                .map(|l| l.delivery.delivery_id.clone())
                .collect();
            ids.sort();
            let mut expected: Vec<_> = sent.iter().map(|d| d.delivery_id.clone()).collect();
            expected.sort();
            assert_eq!(ids, expected, "{queue_type:?}");

            // Settle all but one, each its own way: nothing is acked back to the broker
            // while the last delivery of its parcel is still in hand.
            held.sort_by(|x, y| x.delivery.delivery_id.cmp(&y.delivery.delivery_id));
            let last = held.pop().unwrap();
            let retried = held.pop().unwrap();
            let dead = held.pop().unwrap();
            let given_back = held.pop().unwrap();
            let given_back_id = given_back.delivery.delivery_id.clone();
            for leased in held {
                leased.ack().await.unwrap();
            }
            retried.retry_in(Duration::from_secs(60)).await.unwrap();
            dead.dead().await.unwrap();
            given_back.give_back().await.unwrap();
            // The given-back one comes back alone, counted.
            let again = next(&mut leases, "the given-back delivery").await;
            assert_eq!(again.delivery.delivery_id, given_back_id, "{queue_type:?}");
            if queue_type == QueueType::Classic {
                assert_eq!(again.handouts, 1);
            }
            again.ack().await.unwrap();
            quiet(&mut leases, Duration::from_millis(300)).await;
            assert_eq!(
                inspector.ready(&format!("{queue}.retry.60000")).await,
                1,
                "{queue_type:?}"
            );
            assert_eq!(inspector.ready(&format!("{queue}.dead")).await, 1);

            // The last one settles its parcel; then nothing is left to come back.
            last.ack().await.unwrap();
            stop.cancel();
            while leases.recv().await.is_some() {}
            assert_eq!(inspector.ready(&queue).await, 0, "{queue_type:?}");
        })
        .await;
    }
}

/// A parcel that was handed out before (its consumer died holding it) is split into single
/// deliveries before a worker sees any of it, so a poison delivery meets its limit alone.
#[tokio::test]
async fn a_returned_parcel_is_split_into_single_deliveries() {
    let _shared = BROKER.read().await;
    let mut settings = settings(QueueType::Classic);
    settings.parcel = 8;
    with_queues(settings, &[], |queues, settings| async move {
        let inspector = Inspector::connect().await;
        let queue = format!("{}.a", settings.prefix);
        let parcel: Vec<_> = (0..3).map(|n| delivery("a", n)).collect();
        // Through the queues first, which declares them.
        queues.enqueue(&[delivery("a", 99)]).await.unwrap();
        let mut headers = FieldTable::default();
        headers.insert("x-switchyard-handouts".into(), AMQPValue::LongLongInt(1));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        inspector
            .publish_raw_with(&queue, &serde_json::to_vec(&parcel).unwrap(), properties)
            .await;

        let stop = CancellationToken::new();
        let mut leases = queues.consume("a", stop.clone());
        next(&mut leases, "the first delivery")
            .await
            .ack()
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let leased = next(&mut leases, "a delivery of the split parcel").await;
            // Each carries the parcel's count, so the limit still applies.
            assert_eq!(leased.handouts, 1);
            got.push(leased.delivery.clone());
            leased.ack().await.unwrap();
        }
        got.sort_by(|x, y| x.delivery_id.cmp(&y.delivery_id));
        assert_eq!(got, parcel);
        quiet(&mut leases, Duration::from_millis(300)).await;
        stop.cancel();
        while leases.recv().await.is_some() {}
        assert_eq!(inspector.ready(&queue).await, 0);
    })
    .await;
}
