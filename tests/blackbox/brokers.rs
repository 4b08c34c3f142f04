//! The production backbone for real: hubs on Kafka (the tansu broker the test command
//! starts), RabbitMQ, PostgreSQL and Redis, as `serve --roles` processes sharing the work.
//!
//! Every test gets its own topic, consumer group, queue prefix and database, so tests run
//! side by side; the one that stops RabbitMQ holds the others off while it does.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::support::{
    Answer, Hub, Receiver, Reply, eventually, free_port, one_hook, webhook_channel,
};
use crate::tansu::PrivateBroker;

/// Tests that need RabbitMQ up hold this for reading; the restart test holds it for writing.
pub(crate) static RABBITMQ: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

pub(crate) const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379";
const LONG: Duration = Duration::from_secs(180);

fn kafka_brokers() -> String {
    std::env::var("SWITCHYARD_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// The PostgreSQL database the tests may create their own databases from.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn random_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// A PostgreSQL database of a test's own, named `<prefix>_<random>`; dropped, connections
/// and all, when the value is, however the test ends.
pub(crate) struct TestDatabase {
    pub(crate) name: String,
}

impl TestDatabase {
    pub(crate) async fn create(prefix: &str) -> TestDatabase {
        let name = random_name(prefix);
        let admin = sqlx::PgPool::connect(&postgres_admin_url())
            .await
            .expect("PostgreSQL answers (127.0.0.1:5432, or SWITCHYARD_TEST_POSTGRES)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("can create a test database");
        admin.close().await;
        TestDatabase { name }
    }

    /// Its URL: the admin URL's server, this database.
    pub(crate) fn url(&self) -> String {
        let admin = postgres_admin_url();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be gone: a small runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cleanup");
            runtime.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&postgres_admin_url()).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&admin).await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// One test's share of the backbone: its topic, group, queues and database. Dropping it
/// (after the test's hubs, which are declared later) deletes the queues, then the database.
pub(crate) struct Backbone {
    kafka: String,
    topic: String,
    group: String,
    pub(crate) prefix: String,
    database: TestDatabase,
    /// The channels whose queues the test's hubs make.
    channels: Vec<String>,
}

impl Drop for Backbone {
    fn drop(&mut self) {
        let queues: Vec<String> = self
            .channels
            .iter()
            .flat_map(|c| {
                [
                    format!("{}.{c}", self.prefix),
                    format!("{}.{c}.dead", self.prefix),
                ]
            })
            .collect();
        // Drop cannot await, and the test's runtime may be gone: a small runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cleanup");
            runtime.block_on(async {
                let connection = lapin::Connection::connect(
                    RABBITMQ_URL,
                    lapin::ConnectionProperties::default(),
                )
                .await;
                if let Ok(channel) = match &connection {
                    Ok(connection) => connection.create_channel().await,
                    Err(_) => return,
                } {
                    for queue in queues {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl Backbone {
    /// A fresh topic, group, queue prefix and PostgreSQL database.
    pub(crate) async fn fresh() -> Backbone {
        Backbone {
            kafka: kafka_brokers(),
            topic: random_name("notifications"),
            group: random_name("routers"),
            prefix: random_name("q"),
            database: TestDatabase::create("switchyard_bb").await,
            channels: vec!["hook".to_owned()],
        }
    }

    pub(crate) fn store_url(&self) -> String {
        self.database.url()
    }

    /// `hub`, set up to use this backbone in `roles`.
    fn hub(&self, routes: &str, roles: &str) -> Hub {
        self.hub_on_kafka(routes, roles, &self.kafka)
    }

    fn hub_on_kafka(&self, routes: &str, roles: &str, kafka: &str) -> Hub {
        Hub::new(routes)
            .env("SWITCHYARD_ROLES", roles)
            .env("SWITCHYARD_STORE__URL", &self.store_url())
            .env("SWITCHYARD_STREAM__URL", &format!("kafka://{kafka}"))
            .env("SWITCHYARD_STREAM__TOPIC", &self.topic)
            .env("SWITCHYARD_STREAM__GROUP", &self.group)
            .env("SWITCHYARD_STREAM__PARTITIONS", "4")
            .env("SWITCHYARD_QUEUES__URL", RABBITMQ_URL)
            .env("SWITCHYARD_QUEUES__PREFIX", &self.prefix)
            .env("SWITCHYARD_REDIS__URL", REDIS_URL)
    }
}

/// Sends `count` notifications, 100 to a request, each request with its own
/// Idempotency-Key, through `hubs` in turn; resends a request until it gets its 202 (a
/// 503 says the stream is down: retry). Returns the accepted ids.
async fn send_burst(hubs: &[(String, String)], count: usize, tag: &str) -> BTreeSet<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut ids = BTreeSet::new();
    for (batch, start) in (0..count).step_by(100).enumerate() {
        let notifications: Vec<Value> = (start..(start + 100).min(count))
            .map(|seq| json!({"kind": "burst.item", "payload": {"seq": seq}}))
            .collect();
        let body = json!({ "notifications": notifications }).to_string();
        let (url, token) = &hubs[batch % hubs.len()];
        let answer: Value = eventually(LONG, "a 202 for a batch", || {
            let request = client
                .post(format!("{url}/api/v1/notifications/batch"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("idempotency-key", format!("{tag}-{batch}"))
                .body(body.clone());
            async move {
                let response = request.send().await.ok()?;
                if response.status() != 202 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return None;
                }
                serde_json::from_slice(&response.bytes().await.ok()?).ok()
            }
        })
        .await;
        for notification in answer["notifications"].as_array().unwrap() {
            ids.insert(notification["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// Waits until every delivery of notification `id` is in `state`; returns the
/// notification. With a Kafka stream the API shows a notification once the router has
/// stored it, a moment after the 202, so a 404 first is expected.
async fn settled(hub: &Hub, id: &str, state: &str) -> Value {
    eventually(LONG, &format!("notification {id} {state}"), || async {
        let answer = hub.get(&format!("/api/v1/notifications/{id}")).await;
        if answer.status != 200 {
            return None;
        }
        let notification = answer.json();
        let deliveries = notification["deliveries"].as_array()?;
        (!deliveries.is_empty() && deliveries.iter().all(|d| d["state"] == state))
            .then_some(notification)
    })
    .await
}

/// Waits until the receiver has seen every id in `ids`; returns how many requests it got.
async fn wait_for_all(receiver: &Receiver, ids: &BTreeSet<String>) -> usize {
    eventually(
        LONG,
        &format!("{} notifications delivered", ids.len()),
        || {
            let received = receiver.received();
            let seen: BTreeSet<String> = received.iter().map(|r| r.webhook_id()).collect();
            let missing = ids.difference(&seen).count();
            std::future::ready((missing == 0).then_some(received.len()))
        },
    )
    .await
}

/// Deliveries a hub made, from its `/metrics`.
async fn delivered_by(hub: &Hub) -> u64 {
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|line| line.starts_with("switchyard_deliveries_delivered_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// What [`delivered_by`] says of each hub, once the two add up to at least `expected`. A
/// delivery is counted when its attempt is recorded, which the recorder does in batches a
/// little after the receiver has the request.
async fn delivered_by_both(one: &Hub, two: &Hub, expected: u64) -> (u64, u64) {
    eventually(
        Duration::from_secs(30),
        "the hubs' delivered counters",
        || async {
            let counts = (delivered_by(one).await, delivered_by(two).await);
            (counts.0 + counts.1 >= expected).then_some(counts)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_travel_through_kafka_and_rabbitmq_with_retries_and_dead_letters() {
    let _rabbitmq = RABBITMQ.read().await;
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[200ms, 200ms]", "");
    let mut hub = backbone.hub(&routes, "api,router,worker");
    hub.start().await;

    // Delivered, signed, and recorded in the shared store.
    let id = hub
        .send(json!({"kind": "order.created", "payload": {"n": 1}}))
        .await;
    let notification = settled(&hub, &id, "delivered").await;
    assert_eq!(notification["deliveries"][0]["attempts"], 1);
    let first = &receiver.wait_for(1).await[0];
    assert_eq!(first.webhook_id(), id);
    assert!(first.signature_is_valid());

    // A receiver failing twice: the retries come back through the delay queues.
    receiver.script([Reply::status(503), Reply::status(503)]);
    let id = hub
        .send(json!({"kind": "order.created", "payload": {"n": 2}}))
        .await;
    let notification = settled(&hub, &id, "delivered").await;
    assert_eq!(
        notification["deliveries"][0]["attempts"], 3,
        "{notification:#}"
    );

    // Failing three times: the schedule runs out and it is dead-lettered; replay delivers it.
    receiver.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let id = hub
        .send(json!({"kind": "order.created", "payload": {"n": 3}}))
        .await;
    let notification = settled(&hub, &id, "dead").await;
    let delivery_id = notification["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = hub
        .post_json(
            &format!("/api/v1/dead-letters/{delivery_id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(replay.status, 200, "{replay}");
    settled(&hub, &id, "delivered").await;

    // The same Idempotency-Key twice: one notification.
    let send_once = || {
        Answer::of(
            hub.api(reqwest::Method::POST, "/api/v1/notifications")
                .header("content-type", "application/json")
                .header("idempotency-key", "once")
                .body(json!({"kind": "order.created", "payload": {"n": 4}}).to_string()),
        )
    };
    let (first, again) = (send_once().await, send_once().await);
    assert_eq!((first.status, again.status), (202, 202), "{first} {again}");
    let (first, again) = (first.json(), again.json());
    assert_eq!(first["id"], again["id"]);
    settled(&hub, first["id"].as_str().unwrap(), "delivered").await;
    let copies = receiver
        .received()
        .iter()
        .filter(|r| r.webhook_id() == first["id"].as_str().unwrap())
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_and_the_queues_are_chosen_independently() {
    let _rabbitmq = RABBITMQ.read().await;
    for (stream, queues) in [("kafka", "embedded"), ("embedded", "rabbitmq")] {
        let backbone = Backbone::fresh().await;
        let receiver = Receiver::start().await;
        let routes = one_hook(&receiver.url("/hook"), "[100ms]", "");
        let mut hub = backbone.hub(&routes, "api,router,worker");
        if stream == "embedded" {
            hub = hub.env("SWITCHYARD_STREAM__URL", "embedded");
        }
        if queues == "embedded" {
            hub = hub.env("SWITCHYARD_QUEUES__URL", "embedded");
        }
        hub.start().await;
        let hubs = [(hub.url(""), hub.token.clone())];
        let ids = send_burst(&hubs, 300, stream).await;
        let requests = wait_for_all(&receiver, &ids).await;
        assert_eq!(requests, 300, "{stream} stream, {queues} queues");
        // A retry goes back through whichever queue carries the delivery.
        receiver.script([Reply::status(503)]);
        let id = hub.send(json!({"kind": "one.retry", "payload": {}})).await;
        let notification = settled(&hub, &id, "delivered").await;
        assert_eq!(
            notification["deliveries"][0]["attempts"], 2,
            "{stream} stream, {queues} queues: {notification:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_burst_loses_nothing() {
    let _rabbitmq = RABBITMQ.read().await;
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[100ms, 500ms, 1s]", "");
    let mut front = backbone.hub(&routes, "api,router");
    front.start().await;
    let mut worker = backbone.hub(&routes, "worker");
    worker.start().await;

    let hubs = [(front.url(""), front.token.clone())];
    let sending = tokio::spawn(async move { send_burst(&hubs, 10_000, "kill").await });
    eventually(LONG, "3000 deliveries before the kill", || {
        std::future::ready((receiver.count() >= 3000).then_some(()))
    })
    .await;
    worker.kill9();
    worker.start().await;

    let ids = sending.await.unwrap();
    assert_eq!(ids.len(), 10_000);
    let requests = wait_for_all(&receiver, &ids).await;
    // A redelivery after the crash repeats the same notification id, never a new one.
    let seen: BTreeSet<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
    assert_eq!(seen, ids, "every delivered id is one that was accepted");
    eprintln!(
        "10000 accepted, {} requests received, {} redelivered",
        requests,
        requests - ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_a_burst() {
    let _rabbitmq = RABBITMQ.read().await;
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[100ms, 500ms, 1s]", "");
    let mut one = backbone.hub(&routes, "api,router,worker");
    one.start().await;
    let mut two = backbone.hub(&routes, "api,router,worker");
    two.start().await;

    let hubs = [
        (one.url(""), one.token.clone()),
        (two.url(""), two.token.clone()),
    ];
    let ids = send_burst(&hubs, 10_000, "shared").await;
    assert_eq!(ids.len(), 10_000);
    let requests = wait_for_all(&receiver, &ids).await;
    assert_eq!(
        requests, 10_000,
        "no process crashed, so nothing is delivered twice"
    );
    let (by_one, by_two) = delivered_by_both(&one, &two, 10_000).await;
    assert_eq!(by_one + by_two, 10_000);
    assert!(
        by_one > 0 && by_two > 0,
        "both processes delivered: {by_one} and {by_two}"
    );

    // The idempotency window holds across processes: one client (one token) sending the
    // same request to each gets one notification. So does a notification's own key.
    let send = |url: String, key: &'static str, body: Value| {
        let request = reqwest::Client::new()
            .post(format!("{url}/api/v1/notifications"))
            .bearer_auth(&one.token)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string());
        Answer::of(request)
    };
    let body = json!({"kind": "once.only", "payload": {}});
    let first = send(one.url(""), "across", body.clone()).await;
    let again = send(two.url(""), "across", body).await;
    assert_eq!((first.status, again.status), (202, 202), "{first} {again}");
    assert_eq!(first.json()["id"], again.json()["id"]);
    // Notification keys are scoped by source, and Redis outlives the test: a key of its own.
    let key = random_name("n");
    let keyed = json!({"kind": "once.only", "idempotency_key": key, "payload": {}});
    let first = send(one.url(""), "keyed-1", keyed.clone()).await;
    let again = send(two.url(""), "keyed-2", keyed).await;
    assert_eq!(first.json()["id"], again.json()["id"], "{first} {again}");
    assert_eq!(again.json()["duplicate"], true, "{again}");
    let once = first.json()["id"].as_str().unwrap().to_owned();
    settled(&one, &once, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_hold_across_processes() {
    let _rabbitmq = RABBITMQ.read().await;
    let mut backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    // The rate limit is counted in Redis by channel name: a name of this test's own.
    let channel = random_name("limited");
    backbone.channels.push(channel.clone());
    let routes = format!(
        "channels:\n{}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    to: [{channel}]\n",
        webhook_channel(
            &channel,
            &receiver.url("/hook"),
            "[1s]",
            "    rate_limit: 20/s\n"
        )
    );
    let mut one = backbone.hub(&routes, "api,router,worker");
    one.start().await;
    let mut two = backbone.hub(&routes, "worker");
    two.start().await;

    let hubs = [(one.url(""), one.token.clone())];
    let ids = send_burst(&hubs, 200, "rate").await;
    let started = std::time::Instant::now();
    wait_for_all(&receiver, &ids).await;
    let took = started.elapsed();
    // 200 at 20/s is ten seconds however many processes deliver; each alone at 20/s would
    // finish in five.
    assert!(
        took >= Duration::from_secs(8),
        "200 deliveries at 20/s took only {took:?}"
    );
    let (by_one, by_two) = delivered_by_both(&one, &two, 200).await;
    assert!(
        by_one > 0 && by_two > 0,
        "both processes delivered: {by_one} and {by_two}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_stopped_and_started_mid_stream_loses_nothing() {
    let _rabbitmq = RABBITMQ.write().await;
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[100ms, 500ms, 1s]", "");
    let mut hub = backbone.hub(&routes, "api,router,worker");
    hub.start().await;

    let hubs = [(hub.url(""), hub.token.clone())];
    let sending = tokio::spawn(async move { send_burst(&hubs, 3_000, "restart").await });
    eventually(LONG, "500 deliveries before the stop", || {
        std::future::ready((receiver.count() >= 500).then_some(()))
    })
    .await;
    rabbitmqctl("stop_app");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl("start_app");
    rabbitmqctl("await_startup");

    let ids = sending.await.unwrap();
    assert_eq!(ids.len(), 3_000);
    wait_for_all(&receiver, &ids).await;
    let seen: BTreeSet<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
    assert_eq!(seen, ids);
    // The hub came back by itself and says so once, not per retry.
    let logs = hub.logs();
    let unreachable = logs.matches("RabbitMQ").count();
    assert!(unreachable < 50, "the log is flooded:\n{logs}");
}

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(command)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {command} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accept_answers_503_while_kafka_is_down_and_recovers_without_a_restart() {
    let _rabbitmq = RABBITMQ.read().await;
    let mut tansu = PrivateBroker::start();
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[100ms]", "");
    let mut hub = backbone.hub_on_kafka(&routes, "api,router,worker", &tansu.address());
    hub.start().await;
    let before = hub
        .send(json!({"kind": "before.outage", "payload": {}}))
        .await;
    settled(&hub, &before, "delivered").await;

    tansu.stop();
    let answer = eventually(
        Duration::from_secs(60),
        "a 503 while Kafka is down",
        || async {
            let answer = hub
                .post_json(
                    "/api/v1/notifications",
                    &json!({"kind": "during.outage", "payload": {}}),
                )
                .await;
            (answer.status == 503).then_some(answer)
        },
    )
    .await;
    assert!(
        answer.header("retry-after").is_some(),
        "a 503 says when to retry: {answer}"
    );
    let problem = answer.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("retry"),
        "{problem}"
    );

    // Knock a few more times: each refusal is a 503, not more log lines.
    for _ in 0..3 {
        let answer = hub
            .post_json("/api/v1/notifications", &json!({"kind": "during.outage"}))
            .await;
        assert_eq!(answer.status, 503, "{answer}");
    }

    tansu.resume();
    let hubs = [(hub.url(""), hub.token.clone())];
    let ids = send_burst(&hubs, 200, "after").await;
    wait_for_all(&receiver, &ids).await;
    let logs = hub.logs();
    let complaints = logs
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .count();
    assert!(
        complaints < 40,
        "the log is flooded ({complaints} lines):\n{logs}"
    );
}

#[tokio::test]
async fn a_dead_broker_at_start_is_a_clear_error() {
    let dead = format!("127.0.0.1:{}", free_port());
    let cases: [(&str, String, &str); 3] = [
        (
            "SWITCHYARD_QUEUES__URL",
            format!("amqp://guest:secret@{dead}/%2f"),
            "RabbitMQ",
        ),
        ("SWITCHYARD_REDIS__URL", format!("redis://{dead}"), "Redis"),
        ("SWITCHYARD_STREAM__URL", format!("kafka://{dead}"), "Kafka"),
    ];
    for (name, value, broker) in cases {
        let mut hub = Hub::new(&one_hook("http://127.0.0.1:9/hook", "[1s]", ""))
            .env(name, &value)
            .env(
                "SWITCHYARD_REDIS__URL",
                if broker == "Redis" { &value } else { REDIS_URL },
            );
        hub.spawn();
        let status = hub.wait_exit(Duration::from_secs(60)).await;
        assert!(!status.success());
        let stderr = hub.stderr();
        assert!(stderr.contains(broker), "{name}: {stderr}");
        assert!(
            stderr.contains(&dead),
            "the error names the address: {stderr}"
        );
        assert!(
            !stderr.contains("secret"),
            "the password is masked: {stderr}"
        );
    }
}
