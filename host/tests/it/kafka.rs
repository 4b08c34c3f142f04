//! The Kafka stream against a real Kafka-compatible broker (tansu, started by
//! scripts/test.sh; `SWITCHYARD_TEST_KAFKA` names it, 127.0.0.1:9092 by default). Each test
//! has its own topic and group. The outage test starts a private tansu of its own, so it can
//! stop and restart it. An unreachable broker fails these tests; they never skip.

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchyard::bus::KafkaSettings;
use switchyard::bus::kafka::{Error, KafkaConsumer, KafkaProducer, StreamBatch};
use switchyard::store::Notification;

use crate::tansu::PrivateBroker;

fn broker() -> String {
    std::env::var("SWITCHYARD_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

fn settings(brokers: &str, partitions: i32) -> KafkaSettings {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    KafkaSettings {
        brokers: brokers.to_string(),
        topic: format!("it-notifications-{unique}"),
        partitions,
        group: format!("it-routers-{unique}"),
        // Small packs, so that every test sees records of several notifications.
        pack: 8,
        connect_timeout: Duration::from_secs(10),
    }
}

fn notification(index: usize) -> Notification {
    Notification {
        id: uuid::Uuid::now_v7().to_string(),
        kind: "order.created".to_string(),
        source: "shop".to_string(),
        attributes: vec![
            ("index".to_string(), index.to_string()),
            ("region".to_string(), "eu-west".to_string()),
        ],
        // Non-ASCII and escapes, to see the JSON travel intact.
        payload: format!(r#"{{"order":{index},"note":"naïve \"quoted\" ✓"}}"#),
        idempotency_key: index.is_multiple_of(2).then(|| format!("key-{index}")),
        created_at: 1_700_000_000_000 + index as i64,
        tenant: index.is_multiple_of(3).then(|| "acme".to_string()),
    }
}

fn notifications(count: usize) -> Vec<Notification> {
    (0..count).map(notification).collect()
}

/// Reads batches until `count` notifications arrived, or fails after a minute (a group join
/// on a fresh topic takes a few seconds).
async fn read(consumer: &KafkaConsumer, count: usize) -> Vec<StreamBatch> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut batches = Vec::new();
    let mut got = 0;
    while got < count {
        assert!(
            Instant::now() < deadline,
            "only {got} of {count} notifications arrived within a minute"
        );
        let batch = consumer
            .next_batch(count - got, Duration::from_secs(1))
            .await
            .expect("next_batch");
        got += batch.notifications.len();
        if !batch.is_empty() {
            batches.push(batch);
        }
    }
    assert_eq!(got, count, "more notifications than published");
    batches
}

/// Asserts nothing more arrives for a while.
async fn assert_nothing_more(consumer: &KafkaConsumer) {
    let batch = consumer
        .next_batch(100, Duration::from_secs(5))
        .await
        .expect("next_batch");
    assert!(
        batch.is_empty(),
        "expected nothing more, got {} notifications and {} malformed",
        batch.notifications.len(),
        batch.malformed
    );
}

fn all(batches: Vec<StreamBatch>) -> Vec<Notification> {
    batches
        .into_iter()
        .flat_map(|batch| batch.notifications)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_keeps_order_and_content() {
    // One partition: the stream's order is then the publish order.
    let settings = settings(&broker(), 1);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    let consumer = KafkaConsumer::connect(&settings).await.expect("consumer");
    let sent = notifications(500);
    // Two publishes, to see the order hold across them too.
    producer.publish(&sent[..200]).await.expect("publish");
    producer.publish(&sent[200..]).await.expect("publish");
    let batches = read(&consumer, sent.len()).await;
    assert!(batches.iter().all(|batch| batch.malformed == 0));
    assert_eq!(all(batches), sent);
    assert_nothing_more(&consumer).await;
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_is_created_with_its_partitions_and_each_arrives_once() {
    let settings = settings(&broker(), 3);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    producer.ping().await.expect("ping");

    let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .expect("probe client");
    let topic = settings.topic.clone();
    let partitions = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let metadata = probe
            .fetch_metadata(Some(topic.as_str()), Duration::from_secs(10))
            .expect("metadata");
        metadata.topics()[0].partitions().len()
    })
    .await
    .unwrap();
    assert_eq!(partitions, 3);

    let sent = notifications(300);
    producer.publish(&sent).await.expect("publish");
    let consumer = KafkaConsumer::connect(&settings).await.expect("consumer");
    let mut received = all(read(&consumer, sent.len()).await);
    received.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = sent.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(received, expected);
    // A second connect finds the topic there and leaves it as it is.
    KafkaProducer::connect(&settings)
        .await
        .expect("connect to an existing topic");
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_not_committed_is_read_again_by_the_next_member() {
    let settings = settings(&broker(), 1);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    let sent = notifications(20);
    producer.publish(&sent).await.expect("publish");

    let first = KafkaConsumer::connect(&settings).await.expect("consumer");
    assert_eq!(all(read(&first, sent.len()).await), sent);
    // Gone without a commit, as a crash would leave it.
    drop(first);

    let second = KafkaConsumer::connect(&settings).await.expect("consumer");
    assert_eq!(all(read(&second, sent.len()).await), sent);
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_commit_the_next_member_resumes_after_the_batch() {
    let settings = settings(&broker(), 1);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    let before = notifications(20);
    producer.publish(&before).await.expect("publish");

    let first = KafkaConsumer::connect(&settings).await.expect("consumer");
    let batches = read(&first, before.len()).await;
    for batch in &batches {
        first.commit(batch).await.expect("commit");
    }
    assert_eq!(all(batches), before);
    first.close().await;

    let after: Vec<_> = (100..105).map(notification).collect();
    producer.publish(&after).await.expect("publish");
    let second = KafkaConsumer::connect(&settings).await.expect("consumer");
    assert_eq!(all(read(&second, after.len()).await), after);
    assert_nothing_more(&second).await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_a_notification_is_skipped_and_counted() {
    let settings = settings(&broker(), 1);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .expect("raw producer");
    let good = notifications(2);
    producer.publish(&good[..1]).await.expect("publish");
    for value in [&b"not json"[..], br#"{"id":"x","kind":"only part"}"#] {
        raw.send(
            FutureRecord::to(&settings.topic).key("junk").payload(value),
            Duration::from_secs(10),
        )
        .await
        .expect("raw send");
    }
    // And one with no value at all.
    raw.send(
        FutureRecord::<str, [u8]>::to(&settings.topic).key("empty"),
        Duration::from_secs(10),
    )
    .await
    .expect("raw send");
    producer.publish(&good[1..]).await.expect("publish");

    let consumer = KafkaConsumer::connect(&settings).await.expect("consumer");
    let batches = read(&consumer, good.len()).await;
    let malformed: usize = batches.iter().map(|batch| batch.malformed).sum();
    assert_eq!(malformed, 3);
    for batch in &batches {
        consumer.commit(batch).await.expect("commit");
    }
    assert_eq!(all(batches), good);
    consumer.close().await;

    // The skipped messages were committed with the batch: nobody reads them again.
    let next = KafkaConsumer::connect(&settings).await.expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let batch = next
            .next_batch(100, Duration::from_secs(1))
            .await
            .expect("next_batch");
        assert!(batch.is_empty(), "a committed message came back");
    }
    next.close().await;
}

/// A port nothing listens on.
fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_dead_address_fails_in_time_with_a_clear_error() {
    let address = dead_address();
    let mut settings = settings(&address, 1);
    settings.connect_timeout = Duration::from_secs(2);

    let started = Instant::now();
    let Err(error) = KafkaProducer::connect(&settings).await else {
        panic!("a producer connected to a dead address");
    };
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "Kafka brokers {address} did not answer within 2s: "
        )),
        "{message}"
    );

    let started = Instant::now();
    let Err(error) = KafkaConsumer::connect(&settings).await else {
        panic!("a consumer connected to a dead address");
    };
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_fails_publishes_in_time_and_both_sides_recover() {
    let mut broker = PrivateBroker::start();
    let mut settings = settings(&broker.address(), 1);
    settings.connect_timeout = Duration::from_secs(3);
    let producer = KafkaProducer::connect(&settings).await.expect("producer");
    let consumer = KafkaConsumer::connect(&settings).await.expect("consumer");
    let before = notifications(5);
    producer.publish(&before).await.expect("publish");
    let batches = read(&consumer, before.len()).await;
    for batch in &batches {
        consumer.commit(batch).await.expect("commit");
    }

    broker.stop();
    let started = Instant::now();
    let error = producer
        .publish(&notifications(3))
        .await
        .expect_err("a publish to a stopped broker succeeded");
    // The publish timeout is the connect timeout (3s); librdkafka reports a little later.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error,
            Error::Publish {
                failed: 3,
                total: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(producer.ping().await.is_err(), "ping with the broker down");
    // The router keeps waiting, never hangs past its wait.
    let started = Instant::now();
    let batch = consumer
        .next_batch(10, Duration::from_secs(2))
        .await
        .expect("next_batch with the broker down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(batch.is_empty());

    broker.resume();
    // The same producer and consumer carry on once the broker is back.
    let after = notifications(4);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.publish(&after).await {
            Ok(()) => break,
            Err(error) => {
                assert!(Instant::now() < deadline, "no recovery: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    producer.ping().await.expect("ping after recovery");
    // The failed publish may have landed after all (at least once); what was acknowledged
    // must arrive, in order, after what was committed.
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !after
        .iter()
        .all(|n| received.iter().any(|r: &Notification| r.id == n.id))
    {
        assert!(Instant::now() < deadline, "the consumer did not recover");
        let batch = consumer
            .next_batch(100, Duration::from_secs(1))
            .await
            .expect("next_batch");
        received.extend(batch.notifications);
    }
    let ids: HashSet<_> = before.iter().map(|n| n.id.clone()).collect();
    assert!(
        received.iter().all(|n| !ids.contains(&n.id)),
        "a committed batch came back"
    );
    let acknowledged: Vec<_> = received
        .into_iter()
        .filter(|n| after.iter().any(|a| a.id == n.id))
        .collect();
    assert_eq!(acknowledged, after);
    consumer.close().await;
}

/// Throughput on this machine, not a pass/fail test:
/// `cargo test -p switchyard --test it kafka::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    const TOTAL: usize = 100_000;
    let slice: usize = std::env::var("KAFKA_SLICE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2048);
    let concurrency: usize = std::env::var("KAFKA_CONCURRENCY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(4);
    let mut settings = settings(&broker(), 4);
    // The default pack; KAFKA_PACK=1 measures one notification per record.
    settings.pack = std::env::var("KAFKA_PACK")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(64);
    let producer = std::sync::Arc::new(KafkaProducer::connect(&settings).await.expect("producer"));
    let sent = std::sync::Arc::new(notifications(TOTAL));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let producer = producer.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in sent.chunks(slice).skip(worker).step_by(concurrency) {
                producer.publish(chunk).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "publish: {TOTAL} notifications in {elapsed:.2?} = {:.0}/s (slices of {slice}, {concurrency} at a time, packs of {})",
        TOTAL as f64 / elapsed.as_secs_f64(),
        settings.pack
    );

    let consumer = KafkaConsumer::connect(&settings).await.expect("consumer");
    // The first batch includes the group join; time from there.
    let first = consumer
        .next_batch(4096, Duration::from_secs(30))
        .await
        .expect("next_batch");
    consumer.commit(&first).await.expect("commit");
    let started = Instant::now();
    let mut got = first.notifications.len();
    while got < TOTAL {
        let batch = consumer
            .next_batch(4096, Duration::from_secs(10))
            .await
            .expect("next_batch");
        assert!(!batch.is_empty(), "the stream stalled at {got}");
        consumer.commit(&batch).await.expect("commit");
        got += batch.notifications.len();
    }
    let elapsed = started.elapsed();
    println!(
        "consume + commit: {} notifications in {elapsed:.2?} = {:.0}/s (batches of up to 4096)",
        TOTAL - first.notifications.len(),
        (TOTAL - first.notifications.len()) as f64 / elapsed.as_secs_f64()
    );
    consumer.close().await;
}
