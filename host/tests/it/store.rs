//! The store's repository, on both databases: every test runs once on SQLite (a file in a
//! temporary directory) and once on PostgreSQL (a fresh database on the machine's server,
//! `postgres://postgres@127.0.0.1:5432/test` unless `SWITCHYARD_TEST_POSTGRES` names
//! another, created for the test and dropped after it). A test that needs PostgreSQL fails
//! when the server is unreachable; it never skips.

use std::time::Duration;

use sqlx::Connection as _;
use switchyard::routing::endpoints::LiveDirectory;
use switchyard::store::{
    AcceptBatch, Accepted, AcceptedItem, AttemptOutcome, AttemptRecord, DeadLetterFilter,
    EndpointRefused, EndpointRow, NewDelivery, NewPortalSession, NextStep, Notification,
    NotificationFilter, Page, RequestKey, RoutingCommit, Scope, Scopes, Store, now_ms,
};
use tokio_util::sync::CancellationToken;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const DAY_MS: i64 = 24 * 3600 * 1000;
const WINDOW_MS: i64 = DAY_MS;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test once per backend: `store::NAME::sqlite` and `store::NAME::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(super::Backend::Postgres).await
                }
            }
        )*
    };
}

on_both_backends!(
    accept_and_idempotency_keys,
    stream_and_compare_and_set_routing,
    rival_routers_route_a_batch_once,
    lease_release_and_record_attempts,
    concurrent_leases_never_overlap,
    replay_of_dead_letters,
    listing_and_filtering,
    insert_routed_is_idempotent_and_never_leased,
    retention_deletes_only_settled_old_notifications,
    other_repositories,
    tenants_and_endpoints,
    a_quiet_directory_reads_nothing_again,
    endpoints_land_only_on_a_live_tenant_within_its_cap,
);

/// A store for one test, and what it takes to clean up after it.
struct TestStore {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    async fn open(backend: Backend) -> TestStore {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                TestStore {
                    store: Store::open(&url).await.unwrap(),
                    url,
                    _dir: Some(dir),
                    _database: None,
                }
            }
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                let url = database.url.clone();
                TestStore {
                    store: Store::open(&url).await.unwrap(),
                    url,
                    _dir: None,
                    _database: Some(database),
                }
            }
        }
    }

    /// Another handle on the same database, as a second process would open it.
    async fn second_process(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

/// A PostgreSQL database made for one test; dropped (with any connections left) on drop.
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> TestDatabase {
        let server =
            std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL at {server} is unreachable ({error}); the store tests need it: \
                 start it or set SWITCHYARD_TEST_POSTGRES"
                )
            });
        let name = format!("switchyard_store_{}", uuid::Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        TestDatabase {
            server,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop has no runtime to await on; a thread of its own gets one, and the join makes
        // the database go before the test ends.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&server).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test database {}: {error}", self.name);
        }
    }
}

fn notification(kind: &str, source: &str, key: Option<&str>, created_at: i64) -> Notification {
    Notification {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.into(),
        source: source.into(),
        attributes: vec![("severity".into(), "critical".into())],
        payload: format!(r#"{{"kind":"{kind}","note":"ünïcode ✓"}}"#),
        idempotency_key: key.map(Into::into),
        created_at,
        tenant: None,
    }
}

/// One request's notifications, all from one source (as a front door hands them over), whose
/// own keys belong to that source.
fn batch(notifications: Vec<Notification>) -> AcceptBatch {
    AcceptBatch {
        request_key: None,
        key_owner: switchyard::store::notification_key_owner(None, &notifications[0].source),
        notifications,
    }
}

/// Accepts `notifications` as one request and returns their ids.
async fn accept(store: &Store, notifications: Vec<Notification>) -> Vec<String> {
    let answers = store
        .accept(&[batch(notifications)], WINDOW_MS)
        .await
        .unwrap();
    match &answers[..] {
        [Accepted::Stored(items)] => items.iter().map(|item| item.id.clone()).collect(),
        other => panic!("expected one Stored answer, got {other:?}"),
    }
}

fn delivery(notification_id: &str, channel: &str, next_at: i64) -> NewDelivery {
    NewDelivery {
        id: uuid::Uuid::now_v7().to_string(),
        notification_id: notification_id.into(),
        channel: channel.into(),
        route: "all".into(),
        lease_owner: None,
        next_at,
    }
}

fn attempt(delivery_id: &str, attempt: u32, next: NextStep) -> AttemptRecord {
    let (outcome, status, detail) = match next {
        NextStep::Done => (AttemptOutcome::Delivered, Some(200), None),
        NextStep::RetryAt(_) => (AttemptOutcome::Retry, Some(503), None),
        NextStep::Dead => (
            AttemptOutcome::Failed,
            None,
            Some("gone for good".to_string()),
        ),
    };
    AttemptRecord {
        delivery_id: delivery_id.into(),
        attempt,
        started_at: now_ms(),
        duration_ms: 12,
        outcome,
        status,
        detail,
        transforms: Vec::new(),
        next,
    }
}

/// Routes everything accepted so far: `deliveries` and the cursor move together.
async fn route(store: &Store, deliveries: &[NewDelivery]) -> i64 {
    let from = store.stream_position("router").await.unwrap();
    let entries = store.stream_read(from, 10_000).await.unwrap();
    let to = entries.last().map_or(from, |entry| entry.seq);
    let commit = store
        .commit_routing("router", from, to, deliveries)
        .await
        .unwrap();
    assert_eq!(commit, RoutingCommit::Committed);
    to
}

async fn state_of(store: &Store, notification_id: &str, delivery_id: &str) -> String {
    store
        .deliveries_of(notification_id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == delivery_id)
        .unwrap_or_else(|| panic!("no delivery {delivery_id}"))
        .state
}

async fn accept_and_idempotency_keys(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let request_key = |fingerprint: &str| RequestKey {
        scope: "request:token-1".into(),
        key: "req-1".into(),
        fingerprint: fingerprint.into(),
    };

    // A request with a key: stored, and remembered with its answer.
    let first = vec![
        notification("order.created", "shop", Some("order-1"), now),
        notification("order.paid", "shop", None, now),
    ];
    let answers = store
        .accept(
            &[AcceptBatch {
                request_key: Some(request_key("body-a")),
                key_owner: "shop".into(),
                notifications: first.clone(),
            }],
            WINDOW_MS,
        )
        .await
        .unwrap();
    let stored = vec![
        AcceptedItem {
            id: first[0].id.clone(),
            duplicate: false,
        },
        AcceptedItem {
            id: first[1].id.clone(),
            duplicate: false,
        },
    ];
    assert_eq!(answers, [Accepted::Stored(stored.clone())]);
    assert_eq!(
        store.notification(&first[0].id).await.unwrap().as_ref(),
        Some(&first[0])
    );

    // The same key and body again: the first answer, nothing new. A different body under
    // the same key is refused.
    let again = vec![notification("order.created", "shop", None, now)];
    let answers = store
        .accept(
            &[
                AcceptBatch {
                    request_key: Some(request_key("body-a")),
                    key_owner: "shop".into(),
                    notifications: again.clone(),
                },
                AcceptBatch {
                    request_key: Some(request_key("body-b")),
                    key_owner: "shop".into(),
                    notifications: again.clone(),
                },
            ],
            WINDOW_MS,
        )
        .await
        .unwrap();
    assert_eq!(answers, [Accepted::Replayed(stored), Accepted::KeyReused]);
    assert_eq!(store.notification(&again[0].id).await.unwrap(), None);

    // A notification's own key, per source: a repeat from the same source is a duplicate
    // of the first, also within one call; another source's same key is not.
    let repeat = notification("order.created", "shop", Some("order-1"), now);
    let elsewhere = notification("order.created", "crm", Some("order-1"), now);
    let twice_a = notification("order.created", "crm", Some("order-2"), now);
    let twice_b = notification("order.created", "crm", Some("order-2"), now);
    let answers = store
        .accept(
            &[
                batch(vec![repeat.clone()]),
                batch(vec![elsewhere.clone()]),
                batch(vec![twice_a.clone()]),
                batch(vec![twice_b.clone()]),
            ],
            WINDOW_MS,
        )
        .await
        .unwrap();
    assert_eq!(
        answers,
        [
            Accepted::Stored(vec![AcceptedItem {
                id: first[0].id.clone(),
                duplicate: true
            }]),
            Accepted::Stored(vec![AcceptedItem {
                id: elsewhere.id.clone(),
                duplicate: false
            }]),
            Accepted::Stored(vec![AcceptedItem {
                id: twice_a.id.clone(),
                duplicate: false
            }]),
            Accepted::Stored(vec![AcceptedItem {
                id: twice_a.id.clone(),
                duplicate: true
            }]),
        ]
    );
    let stream: Vec<String> = store
        .stream_read(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.notification.id)
        .collect();
    assert_eq!(
        stream,
        [
            first[0].id.clone(),
            first[1].id.clone(),
            elsewhere.id.clone(),
            twice_a.id.clone()
        ]
    );

    // Forgotten keys (the window passed) no longer dedupe.
    assert!(store.purge_idempotency_keys(-60_000).await.unwrap() >= 4);
    let later = notification("order.created", "shop", Some("order-1"), now);
    let answers = store
        .accept(&[batch(vec![later.clone()])], WINDOW_MS)
        .await
        .unwrap();
    assert_eq!(
        answers,
        [Accepted::Stored(vec![AcceptedItem {
            id: later.id.clone(),
            duplicate: false
        }])]
    );
}

async fn stream_and_compare_and_set_routing(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let ids = accept(
        &store,
        vec![
            notification("a", "s", None, now),
            notification("b", "s", None, now),
            notification("c", "s", None, now),
        ],
    )
    .await;
    assert_eq!(store.stream_position("router").await.unwrap(), 0);
    let entries = store.stream_read(0, 2).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].seq < entries[1].seq);
    assert_eq!(entries[0].notification.id, ids[0]);
    assert_eq!(entries[1].notification.kind, "b");
    let second = entries[1].seq;

    let routed = [delivery(&ids[0], "ch", now), delivery(&ids[1], "ch", now)];
    let commit = store
        .commit_routing("router", 0, second, &routed)
        .await
        .unwrap();
    assert_eq!(commit, RoutingCommit::Committed);
    assert_eq!(store.stream_position("router").await.unwrap(), second);

    // A router that read from 0 too comes second: nothing of its batch is stored, and it
    // learns where to read from.
    let late = [delivery(&ids[2], "ch", now)];
    let commit = store
        .commit_routing("router", 0, second + 1, &late)
        .await
        .unwrap();
    assert_eq!(commit, RoutingCommit::Superseded { position: second });
    assert!(store.deliveries_of(&ids[2]).await.unwrap().is_empty());
    assert_eq!(store.stream_position("router").await.unwrap(), second);

    let rest = store.stream_read(second, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].notification.id, ids[2]);
    let commit = store
        .commit_routing("router", second, rest[0].seq, &late)
        .await
        .unwrap();
    assert_eq!(commit, RoutingCommit::Committed);
    assert_eq!(store.deliveries_of(&ids[2]).await.unwrap().len(), 1);
    // Other consumers keep their own cursors.
    assert_eq!(store.stream_position("audit").await.unwrap(), 0);
}

async fn rival_routers_route_a_batch_once(backend: Backend) {
    let store = TestStore::open(backend).await;
    let other = store.second_process().await;
    let now = now_ms();
    let ids = accept(&store, vec![notification("a", "s", None, now)]).await;
    let last = store.stream_read(0, 10).await.unwrap()[0].seq;
    for round in 0..5 {
        let from = store.stream_position("router").await.unwrap();
        let mine = [delivery(&ids[0], &format!("mine-{round}"), now)];
        let theirs = [delivery(&ids[0], &format!("theirs-{round}"), now)];
        let (a, b) = tokio::join!(
            store.commit_routing("router", from, last + round, &mine),
            other.commit_routing("router", from, last + round, &theirs),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let winners = outcomes
            .iter()
            .filter(|o| **o == RoutingCommit::Committed)
            .count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        assert!(outcomes.contains(&RoutingCommit::Superseded {
            position: last + round
        }));
    }
    // One delivery per round: the losers stored nothing.
    assert_eq!(store.deliveries_of(&ids[0]).await.unwrap().len(), 5);
    other.close().await;
}

async fn lease_release_and_record_attempts(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let sent = notification("incident.opened", "pager", None, now);
    let ids = accept(&store, vec![sent.clone()]).await;
    let due = delivery(&ids[0], "ops", now - 1);
    let later = delivery(&ids[0], "ops", now + 3_600_000);
    let elsewhere = delivery(&ids[0], "sms", now - 1);
    let held_by_other = NewDelivery {
        lease_owner: Some("other-process".into()),
        ..delivery(&ids[0], "ops", now + 3_600_000)
    };
    route(
        &store,
        &[
            due.clone(),
            later.clone(),
            elsewhere.clone(),
            held_by_other.clone(),
        ],
    )
    .await;

    // Only what is due, of the channel asked for.
    let lease_until = now + 60_000;
    let leased = store.lease_due("ops", "me", lease_until, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].id, due.id);
    assert_eq!(leased[0].channel, "ops");
    assert_eq!(leased[0].attempts, 0);
    assert_eq!(leased[0].notification, sent);
    // Leased: not due again until the lease runs out, unless released.
    assert!(
        store
            .lease_due("ops", "me", lease_until, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .release(std::slice::from_ref(&due.id), now_ms())
        .await
        .unwrap();
    let leased = store.lease_due("ops", "me", lease_until, 10).await.unwrap();
    assert_eq!(leased.len(), 1);

    // A retry: due again at its time, with the attempt recorded.
    store
        .record_attempts(&[attempt(&due.id, 1, NextStep::RetryAt(now_ms() - 1))])
        .await
        .unwrap();
    let detail = store.deliveries_of(&ids[0]).await.unwrap();
    let retried = detail.iter().find(|d| d.id == due.id).unwrap();
    assert_eq!(retried.state, "pending");
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP status 503"));
    assert!(retried.next_at.is_some());
    assert_eq!(retried.attempt_log.len(), 1);
    assert_eq!(retried.attempt_log[0].status, Some(503));
    assert_eq!(retried.attempt_log[0].outcome, "retry");
    let leased = store.lease_due("ops", "me", lease_until, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempts, 1);

    // Delivered: settled, with both attempts in order.
    store
        .record_attempts(&[attempt(&due.id, 2, NextStep::Done)])
        .await
        .unwrap();
    let detail = store.deliveries_of(&ids[0]).await.unwrap();
    let delivered = detail.iter().find(|d| d.id == due.id).unwrap();
    assert_eq!(delivered.state, "delivered");
    assert_eq!(delivered.attempts, 2);
    assert_eq!(delivered.next_at, None);
    assert_eq!(delivered.last_error, None);
    let log: Vec<u32> = delivered.attempt_log.iter().map(|a| a.attempt).collect();
    assert_eq!(log, [1, 2]);
    assert!(
        store
            .lease_due("ops", "me", lease_until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Dead: out of the queue, into the dead letters.
    let leased = store.lease_due("sms", "me", lease_until, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    store
        .record_attempts(&[attempt(&elsewhere.id, 1, NextStep::Dead)])
        .await
        .unwrap();
    assert_eq!(state_of(&store, &ids[0], &elsewhere.id).await, "dead");
    let dead = store
        .list_dead_letters(&DeadLetterFilter {
            limit: 10,
            ..DeadLetterFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery_id, elsewhere.id);
    assert_eq!(dead[0].kind, "incident.opened");
    assert_eq!(dead[0].last_error.as_deref(), Some("gone for good"));
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    assert!(
        store
            .lease_due("sms", "me", lease_until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let pending = store.pending_by_channel().await.unwrap();
    assert_eq!(pending, [("ops".to_string(), 2)]);

    // Another process's lease: an SQLite store has one process, so at start-up such a
    // lease is a dead process's leftover and is released; PostgreSQL is shared by live
    // processes, so their leases are left to run out.
    let released = store.release_foreign_leases("me").await.unwrap();
    let leased = store.lease_due("ops", "me", lease_until, 10).await.unwrap();
    match backend {
        Backend::Sqlite => {
            assert_eq!(released, 1);
            assert_eq!(leased.len(), 1);
            assert_eq!(leased[0].id, held_by_other.id);
        }
        Backend::Postgres => {
            assert_eq!(released, 0);
            assert!(leased.is_empty());
        }
    }
}

async fn concurrent_leases_never_overlap(backend: Backend) {
    let store = TestStore::open(backend).await;
    let other = store.second_process().await;
    let now = now_ms();
    let ids = accept(&store, vec![notification("a", "s", None, now)]).await;
    let deliveries: Vec<NewDelivery> = (0..300).map(|_| delivery(&ids[0], "ch", now - 1)).collect();
    route(&store, &deliveries).await;

    let mut leased = Vec::new();
    loop {
        let until = now_ms() + 60_000;
        let (a, b) = tokio::join!(
            store.lease_due("ch", "one", until, 40),
            other.lease_due("ch", "two", until, 40),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        if a.is_empty() && b.is_empty() {
            break;
        }
        leased.extend(a.into_iter().chain(b).map(|d| d.id));
    }
    assert_eq!(leased.len(), 300, "every delivery leased exactly once");
    leased.sort();
    leased.dedup();
    assert_eq!(leased.len(), 300);
    other.close().await;
}

async fn replay_of_dead_letters(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let ids = accept(&store, vec![notification("a", "s", None, now)]).await;
    let doomed = delivery(&ids[0], "ch", now - 1);
    route(&store, std::slice::from_ref(&doomed)).await;
    assert_eq!(store.replay(&doomed.id).await.unwrap(), None, "not dead");
    assert_eq!(store.replay("no-such-delivery").await.unwrap(), None);

    store.lease_due("ch", "me", now + 60_000, 10).await.unwrap();
    store
        .record_attempts(&[
            attempt(&doomed.id, 1, NextStep::RetryAt(now - 1)),
            attempt(&doomed.id, 2, NextStep::Dead),
        ])
        .await
        .unwrap();
    assert_eq!(state_of(&store, &ids[0], &doomed.id).await, "dead");

    assert_eq!(
        store.replay(&doomed.id).await.unwrap().as_deref(),
        Some("ch")
    );
    assert_eq!(state_of(&store, &ids[0], &doomed.id).await, "pending");
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);
    // Back in the queue, due now, its retry schedule starting over from here.
    let leased = store
        .lease_due("ch", "me", now_ms() + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempts, 2);
    assert_eq!(leased[0].retry_base, 2);
}

async fn listing_and_filtering(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let old = now - 10_000;
    let ids = accept(
        &store,
        vec![
            notification("order.created", "shop", None, old),
            notification("order.paid", "shop", None, old),
            notification("user.created", "crm", None, now),
            notification("orderly", "crm", None, now),
            notification("order.created", "crm", None, now),
        ],
    )
    .await;
    // The ids of a page, and the ids expected, by their index in `ids`.
    let kinds = |page: &[(i64, Notification)]| -> Vec<String> {
        page.iter().map(|(_, n)| n.id.clone()).collect()
    };
    let pick =
        |indexes: &[usize]| -> Vec<String> { indexes.iter().map(|&i| ids[i].clone()).collect() };
    let list = |filter: NotificationFilter| {
        let store = &store;
        let limit = if filter.limit == 0 { 10 } else { filter.limit };
        async move {
            store
                .list_notifications(&NotificationFilter { limit, ..filter })
                .await
                .unwrap()
        }
    };

    let all = list(NotificationFilter::default()).await;
    assert_eq!(kinds(&all), pick(&[4, 3, 2, 1, 0]));
    assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
    assert_eq!(
        all[4].1.attributes,
        vec![("severity".to_string(), "critical".to_string())]
    );

    let exact = list(NotificationFilter {
        kind: Some("order.created".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&exact), pick(&[4, 0]));
    let family = list(NotificationFilter {
        kind: Some("order.*".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&family), pick(&[4, 1, 0]));
    let by_source = list(NotificationFilter {
        source: Some("crm".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&by_source), pick(&[4, 3, 2]));
    let recent = list(NotificationFilter {
        since: Some(now),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.len(), 3);

    // Pages: two at a time, each continuing before the last one's position.
    let page1 = list(NotificationFilter {
        limit: 2,
        ..Default::default()
    })
    .await;
    let page2 = list(NotificationFilter {
        before_seq: Some(page1[1].0),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&page1), pick(&[4, 3]));
    assert_eq!(kinds(&page2), pick(&[2, 1]));

    // By delivery state, and the dead letters by channel and page.
    let dead: Vec<NewDelivery> = vec![
        delivery(&ids[0], "ops", now - 1),
        delivery(&ids[1], "ops", now - 1),
        delivery(&ids[2], "sms", now - 1),
    ];
    let alive = delivery(&ids[3], "ops", now + 3_600_000);
    let mut routed = dead.clone();
    routed.push(alive);
    route(&store, &routed).await;
    for channel in ["ops", "sms"] {
        store
            .lease_due(channel, "me", now + 60_000, 10)
            .await
            .unwrap();
    }
    for (i, d) in dead.iter().enumerate() {
        // One at a time, so their times of death differ.
        store
            .record_attempts(&[attempt(&d.id, 1, NextStep::Dead)])
            .await
            .unwrap();
        if i < dead.len() - 1 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let with_dead = list(NotificationFilter {
        delivery_state: Some("dead".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&with_dead), pick(&[2, 1, 0]));
    let with_pending = list(NotificationFilter {
        delivery_state: Some("pending".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(kinds(&with_pending), pick(&[3]));

    let letters = |filter: DeadLetterFilter| {
        let store = &store;
        async move { store.list_dead_letters(&filter).await.unwrap() }
    };
    let all_dead = letters(DeadLetterFilter {
        limit: 10,
        ..Default::default()
    })
    .await;
    let dead_ids: Vec<&str> = all_dead.iter().map(|d| d.delivery_id.as_str()).collect();
    assert_eq!(
        dead_ids,
        [
            dead[2].id.as_str(),
            dead[1].id.as_str(),
            dead[0].id.as_str()
        ]
    );
    let ops = letters(DeadLetterFilter {
        channel: Some("ops".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(ops.len(), 2);
    assert!(ops.iter().all(|d| d.channel == "ops"));
    let first = letters(DeadLetterFilter {
        limit: 1,
        ..Default::default()
    })
    .await;
    let next = letters(DeadLetterFilter {
        before: Some((first[0].dead_at, first[0].delivery_id.clone())),
        limit: 10,
        ..Default::default()
    })
    .await;
    let next_ids: Vec<&str> = next.iter().map(|d| d.delivery_id.as_str()).collect();
    assert_eq!(next_ids, [dead[1].id.as_str(), dead[0].id.as_str()]);
    assert!(store.accepted_since(now).await.unwrap() >= 3);
}

async fn insert_routed_is_idempotent_and_never_leased(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let notifications = vec![
        notification("order.created", "shop", None, now),
        notification("order.paid", "shop", None, now),
    ];
    let deliveries = vec![
        delivery(&notifications[0].id, "ops", now - 1),
        delivery(&notifications[1].id, "ops", now - 1),
    ];
    store
        .insert_routed(&notifications, &deliveries, true)
        .await
        .unwrap();
    // The router repeats the batch after a crash: nothing changes, nothing fails.
    store
        .insert_routed(&notifications, &deliveries, true)
        .await
        .unwrap();
    assert_eq!(store.stream_read(0, 10).await.unwrap().len(), 2);
    assert_eq!(store.stream_position("router").await.unwrap(), 0);
    assert_eq!(
        store.notification(&notifications[0].id).await.unwrap(),
        Some(notifications[0].clone())
    );
    let shown = store.deliveries_of(&notifications[0].id).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].state, "pending");
    assert!(shown[0].next_at.is_some());

    // The broker carries them: the store's queue never hands them out, nor counts them.
    assert!(
        store
            .lease_due("ops", "me", now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.pending_by_channel().await.unwrap().is_empty());

    // Attempts, dead letters and replays work as on any delivery, and a retry or a
    // replay never moves one into the store's queue.
    let first = &deliveries[0].id;
    store
        .record_attempts(&[attempt(first, 1, NextStep::RetryAt(now - 1))])
        .await
        .unwrap();
    assert!(
        store
            .lease_due("ops", "me", now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_attempts(&[attempt(first, 2, NextStep::Dead)])
        .await
        .unwrap();
    let dead = store
        .list_dead_letters(&DeadLetterFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].delivery_id, first);
    assert_eq!(store.replay(first).await.unwrap().as_deref(), Some("ops"));
    assert_eq!(
        state_of(&store, &notifications[0].id, first).await,
        "pending"
    );
    assert!(
        store
            .lease_due("ops", "me", now_ms() + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_attempts(&[attempt(first, 3, NextStep::Done)])
        .await
        .unwrap();
    let shown = store.deliveries_of(&notifications[0].id).await.unwrap();
    assert_eq!(shown[0].state, "delivered");
    assert_eq!(shown[0].attempt_log.len(), 3);
    // A repeat after it was delivered leaves it delivered.
    store
        .insert_routed(&notifications, &deliveries, true)
        .await
        .unwrap();
    assert_eq!(
        state_of(&store, &notifications[0].id, first).await,
        "delivered"
    );
}

async fn retention_deletes_only_settled_old_notifications(backend: Backend) {
    let store = TestStore::open(backend).await;
    let now = now_ms();
    let old = now - 10 * DAY_MS;
    let ids = accept(
        &store,
        vec![
            notification("delivered", "s", None, old),
            notification("dead", "s", None, old),
            notification("still-pending", "s", None, old),
            notification("unrouted-kind", "s", None, old),
            notification("recent", "s", None, now),
        ],
    )
    .await;
    let delivered = delivery(&ids[0], "ch", now - 1);
    let dead = delivery(&ids[1], "ch", now - 1);
    let pending = delivery(&ids[2], "ch", now + 3_600_000);
    let recent = delivery(&ids[4], "ch", now - 1);
    route(
        &store,
        &[
            delivered.clone(),
            dead.clone(),
            pending.clone(),
            recent.clone(),
        ],
    )
    .await;
    // Accepted after the router's last commit: not routed yet, so kept however old.
    let unread = accept(&store, vec![notification("not-yet-routed", "s", None, old)]).await;
    store.lease_due("ch", "me", now + 60_000, 10).await.unwrap();
    store
        .record_attempts(&[
            attempt(&delivered.id, 1, NextStep::Done),
            attempt(&dead.id, 1, NextStep::Dead),
            attempt(&recent.id, 1, NextStep::Done),
        ])
        .await
        .unwrap();

    // The periodic task: its first pass runs at once.
    let stop = CancellationToken::new();
    let task = tokio::spawn(switchyard::store::retention::run_retention(
        store.store.clone(),
        Duration::from_secs(24 * 3600),
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.notification(&ids[0]).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the pass finish its windows before looking at the rest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    task.await.unwrap();

    for gone in [&ids[0], &ids[1], &ids[3]] {
        assert_eq!(store.notification(gone).await.unwrap(), None);
        assert!(store.deliveries_of(gone).await.unwrap().is_empty());
    }
    for kept in [&ids[2], &ids[4], &unread[0]] {
        assert!(store.notification(kept).await.unwrap().is_some(), "{kept}");
    }
    assert_eq!(store.deliveries_of(&ids[2]).await.unwrap().len(), 1);
    assert_eq!(
        store.deliveries_of(&ids[4]).await.unwrap()[0]
            .attempt_log
            .len(),
        1
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);

    // Windows walk the whole stream, past notifications that must stay.
    let mut after = 0;
    let mut windows = 0;
    while let Some(window) = store
        .delete_settled_window(now - DAY_MS, after)
        .await
        .unwrap()
    {
        assert_eq!(window.deleted, 0, "nothing more to delete");
        after = window.last_seq;
        windows += 1;
        assert!(windows < 10);
    }
}

async fn other_repositories(backend: Backend) {
    let store = TestStore::open(backend).await;

    // Tokens: stored as digests with their scopes, revocable once.
    let scopes = Scopes::of([Scope::Send, Scope::Admin]);
    let token = store.create_token("ci", scopes, None).await.unwrap();
    let active = store.active_tokens().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name, "ci");
    assert_eq!(active[0].digest.len(), 32);
    assert_eq!(active[0].scopes, scopes);
    assert!(store.revoke_token(&token.id).await.unwrap());
    assert!(!store.revoke_token(&token.id).await.unwrap());
    assert!(store.active_tokens().await.unwrap().is_empty());

    // Admins and their failed sign-ins.
    assert!(store.create_admin_user("ada", "$argon2id$x").await.unwrap());
    assert!(!store.create_admin_user("ada", "$argon2id$y").await.unwrap());
    assert_eq!(store.admin_user_count().await.unwrap(), 1);
    assert_eq!(
        store
            .admin_user("ada")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$x"
    );
    store.record_login_failure("ada", 100, 0).await.unwrap();
    store.record_login_failure("ada", 200, 150).await.unwrap();
    assert_eq!(store.login_failures_since("ada", 0).await.unwrap(), 1);
    store.clear_login_failures("ada").await.unwrap();
    assert_eq!(store.login_failures_since("ada", 0).await.unwrap(), 0);

    // Uploaded plugins, versioned.
    assert_eq!(
        store
            .add_plugin_version("echo", "channel", "aa", b"one", "ada")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .add_plugin_version("echo", "channel", "bb", b"three", "ada")
            .await
            .unwrap(),
        2
    );
    assert!(store.activate_plugin_version("echo", 1).await.unwrap());
    assert!(!store.activate_plugin_version("echo", 9).await.unwrap());
    assert!(store.set_plugin_enabled("echo", false).await.unwrap());
    let plugins = store.uploaded_plugins().await.unwrap();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].active_version, 1);
    assert!(!plugins[0].enabled);
    let sizes: Vec<i64> = plugins[0].versions.iter().map(|v| v.size).collect();
    assert_eq!(sizes, [5, 3]);
    assert_eq!(
        store.plugin_component("echo", 2).await.unwrap().as_deref(),
        Some(&b"three"[..])
    );

    // Sealed channel secrets, and an all-or-nothing re-seal.
    store
        .set_channel_secret("ops", "key", b"sealed-1", "k1")
        .await
        .unwrap();
    store
        .set_channel_secret("ops", "key", b"sealed-2", "k1")
        .await
        .unwrap();
    assert_eq!(
        store.channel_secret("ops", "key").await.unwrap(),
        Some((b"sealed-2".to_vec(), "k1".to_string()))
    );
    let changed = store
        .reseal_channel_secrets(|sealed| {
            Ok::<_, switchyard::store::Error>(Some((sealed.ciphertext.clone(), "k2".into())))
        })
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        store.channel_secret_key_ids().await.unwrap(),
        [("k2".to_string(), 1)]
    );
    assert_eq!(store.channel_secrets_listing().await.unwrap().len(), 1);
    assert!(store.delete_channel_secret("ops", "key").await.unwrap());
    store.ping().await.unwrap();

    // Migrating an up-to-date store applies nothing.
    assert!(Store::migrate(&store.url).await.unwrap().is_empty());
}

/// The SQLite database, its `-wal` and its `-shm` are readable by their owner only, even
/// under a umask that lets everyone read new files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;

    // 022 is the usual umask, and the one under which SQLite's own default (0644) would
    // show: set it, so the test means the same wherever it runs.
    // SAFETY: umask(2) only swaps the process's file-mode mask.
    unsafe { libc::umask(0o022) };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let path = data_dir.join("store.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // A write, so the WAL and its index exist.
    accept(
        &store,
        vec![notification("modes.test", "api", None, now_ms())],
    )
    .await;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {mode:o}");
    }
    let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the data dir has mode {mode:o}");
    store.close().await;

    // A database an older version left readable by all is narrowed when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "reopened, the database has mode {mode:o}"
    );
    store.close().await;
}

/// A small tmpfs for one test, unmounted (lazily, if need be) when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("can run mount");
        assert!(
            status.success(),
            "could not mount a tmpfs (the test runs as root)"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmount = |lazy: bool| {
            let mut command = std::process::Command::new("umount");
            if lazy {
                command.arg("-l");
            }
            command
                .arg(self.0.path())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !unmount(false) {
            unmount(true);
        }
    }
}

/// Fills the filesystem of `dir` until a write fails; returns the filler's path.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..10_000 {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    let page = vec![7u8; 4096];
    for _ in 0..16 {
        if file.write_all(&page).is_err() {
            break;
        }
    }
    path
}

/// On a full disk, failed commits never leave the writer inside a transaction: every
/// write the store says committed is there after a reopen, on each writer path (accept,
/// routing, attempts), and writes land again once there is room. `check_writes` says
/// they fail meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_never_wedges_the_writer() {
    let tmpfs = Tmpfs::mount("4m");
    let url = format!("sqlite://{}", tmpfs.0.path().join("store.db").display());
    let store = Store::open(&url).await.unwrap();
    let padding = "p".repeat(2048);
    let big_batch = || {
        (0..100)
            .map(|_| {
                let mut n = notification("disk.full", "api", None, now_ms());
                n.payload = format!(r#"{{"padding":"{padding}"}}"#);
                n
            })
            .collect::<Vec<_>>()
    };
    let mut committed: Vec<String> = accept(&store, big_batch()).await;

    let filler = fill(tmpfs.0.path());
    let mut failures = 0;
    let mut routed_to = 0;
    let mut delivery_ids = Vec::new();
    for _ in 0..200 {
        match store.accept(&[batch(big_batch())], WINDOW_MS).await {
            Ok(answers) => match &answers[..] {
                [Accepted::Stored(items)] => committed.extend(items.iter().map(|i| i.id.clone())),
                other => panic!("{other:?}"),
            },
            Err(_) => failures += 1,
        }
        // The other writer paths on the same connection: routing and attempts.
        let from = store.stream_position("router").await.unwrap();
        if let Ok(entries) = store.stream_read(from, 50).await
            && let Some(last) = entries.last().map(|e| e.seq)
        {
            let deliveries: Vec<NewDelivery> = entries
                .iter()
                .map(|e| delivery(&e.notification.id, "hook", now_ms()))
                .collect();
            if let Ok(RoutingCommit::Committed) = store
                .commit_routing("router", from, last, &deliveries)
                .await
            {
                routed_to = last;
                delivery_ids.extend(deliveries.iter().map(|d| d.id.clone()));
            }
        }
        if failures >= 20 {
            break;
        }
    }
    assert!(failures > 0, "no commit failed on a full disk");
    assert!(
        store.check_writes(Duration::ZERO).await.is_err(),
        "check_writes says writes land on a full disk"
    );

    std::fs::remove_file(filler).unwrap();
    let mut landed = false;
    for _ in 0..50 {
        if let Ok(answers) = store.accept(&[batch(big_batch())], WINDOW_MS).await {
            if let [Accepted::Stored(items)] = &answers[..] {
                committed.extend(items.iter().map(|i| i.id.clone()));
            }
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(landed, "no commit landed once there was room");
    store.check_writes(Duration::ZERO).await.unwrap();
    let recorded: Vec<AttemptRecord> = delivery_ids
        .iter()
        .map(|id| attempt(id, 1, NextStep::Done))
        .collect();
    store.record_attempts(&recorded).await.unwrap();
    store.close().await;

    // What a new process finds: everything the store said it committed.
    let store = Store::open(&url).await.unwrap();
    let mut lost = 0;
    for id in &committed {
        if store.notification(id).await.unwrap().is_none() {
            lost += 1;
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} notifications whose accept committed are gone",
        committed.len()
    );
    assert_eq!(store.stream_position("router").await.unwrap(), routed_to);
    let delivered = store
        .list_notifications(&NotificationFilter {
            delivery_state: Some("delivered".into()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(delivered, delivery_ids.len(), "recorded attempts are gone");
    store.close().await;
}

fn endpoint_row(id: &str, tenant: &str) -> EndpointRow {
    let now = now_ms();
    EndpointRow {
        id: id.into(),
        tenant_id: tenant.into(),
        description: "ünïcode ✓".into(),
        url: Some("https://example.com/hook".into()),
        plugin: "webhook".into(),
        config: serde_json::json!({"headers": {"x-a": "1"}}),
        allowed_hosts: vec!["example.com".into()],
        kinds: vec!["invoice.*".into()],
        attributes: [("region".to_owned(), vec!["eu".to_owned()])].into(),
        transforms: vec!["pick".into()],
        rate_limit: Some("5/s".into()),
        retry_schedule: Some(vec!["1s".into()]),
        enabled: true,
        disabled_reason: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        secret_names: Vec::new(),
    }
}

/// Tenants and endpoints: kept, changed, read back by the directories' change feed, and
/// deleted softly with their pending deliveries dead-lettered and their tokens revoked.
async fn tenants_and_endpoints(backend: Backend) {
    let store = TestStore::open(backend).await;
    let page = Page {
        after: None,
        limit: 10,
    };
    assert!(store.create_tenant("acme", "Acme").await.unwrap());
    assert!(!store.create_tenant("acme", "Again").await.unwrap());
    assert!(store.create_tenant("globex", "Globex").await.unwrap());
    assert_eq!(store.list_tenants(&page).await.unwrap().len(), 2);
    assert!(store.rename_tenant("acme", "Acme Corp").await.unwrap());
    assert_eq!(
        store.tenant("acme").await.unwrap().unwrap().name,
        "Acme Corp"
    );

    let row = endpoint_row("e1", "acme");
    store.insert_endpoint(&row, 100).await.unwrap().unwrap();
    assert_eq!(
        store.endpoint("acme", "e1").await.unwrap(),
        Some(row.clone())
    );
    // Another tenant's id never finds it.
    assert_eq!(store.endpoint("globex", "e1").await.unwrap(), None);
    assert_eq!(
        store.list_endpoints("acme", &page).await.unwrap(),
        vec![row.clone()]
    );

    // Failure streaks keep their start; disabling happens once; enabling clears both.
    store.set_endpoint_failing("e1", Some(1000)).await.unwrap();
    store.set_endpoint_failing("e1", Some(2000)).await.unwrap();
    let read = store.endpoint("acme", "e1").await.unwrap().unwrap();
    assert_eq!(read.failing_since, Some(1000));
    assert!(store.disable_endpoint("e1", "failing").await.unwrap());
    assert!(!store.disable_endpoint("e1", "failing").await.unwrap());
    let mut enabled = read.clone();
    enabled.enabled = true;
    enabled.rate_limit = None;
    assert!(store.update_endpoint(&enabled).await.unwrap());
    let read = store.endpoint("acme", "e1").await.unwrap().unwrap();
    assert!(read.enabled);
    assert_eq!(
        (&read.disabled_reason, read.failing_since, &read.rate_limit),
        (&None, None, &None)
    );
    let mut wrong_tenant = read.clone();
    wrong_tenant.tenant_id = "globex".into();
    assert!(!store.update_endpoint(&wrong_tenant).await.unwrap());

    // Rotation grace: ended only once past.
    let future = now_ms() + 60_000;
    assert!(
        store
            .set_previous_secret_until("e1", Some(future), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_previous_secret_until("e1", None, true)
            .await
            .unwrap()
    );
    assert!(store.expired_previous_secrets().await.unwrap().is_empty());
    assert!(
        store
            .set_previous_secret_until("e1", Some(1), false)
            .await
            .unwrap()
    );
    assert_eq!(store.expired_previous_secrets().await.unwrap(), ["e1"]);
    assert!(
        store
            .set_previous_secret_until("e1", None, true)
            .await
            .unwrap()
    );

    // The change feed.
    let changes = store.tenancy_changes(0).await.unwrap();
    assert_eq!(changes.tenants.len(), 2);
    assert_eq!(changes.endpoints.len(), 1);
    assert!(
        store
            .tenancy_changes(now_ms() + 1000)
            .await
            .unwrap()
            .endpoints
            .is_empty()
    );

    // Deliveries to the endpoint: listed, due, recovered, buried on deletion.
    let mut acme_note = notification("invoice.paid", "api", None, now_ms());
    acme_note.tenant = Some("acme".into());
    let ids = accept(&store, vec![acme_note]).await;
    let channel = "endpoint:e1";
    let due = delivery(&ids[0], channel, now_ms() - 1);
    let dead = delivery(&ids[0], "endpoint:e2", now_ms());
    route(&store, &[due.clone(), dead.clone()]).await;
    assert_eq!(
        store
            .notification(&ids[0])
            .await
            .unwrap()
            .unwrap()
            .tenant
            .as_deref(),
        Some("acme")
    );
    let mut due_channels = store.due_endpoint_channels(10).await.unwrap();
    due_channels.sort();
    assert_eq!(due_channels, ["endpoint:e1", "endpoint:e2"]);
    let listed = store
        .endpoint_deliveries(channel, None, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].state.as_str()),
        ("invoice.paid", "pending")
    );
    assert!(
        store
            .endpoint_deliveries(channel, None, Some("dead"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.delivery_place(&due.id).await.unwrap(),
        Some((channel.to_owned(), ids[0].clone()))
    );
    let leased = store
        .lease_due("endpoint:e2", "me", now_ms() + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    store
        .record_attempts(&[attempt(&dead.id, 1, NextStep::Dead)])
        .await
        .unwrap();
    assert_eq!(
        store
            .recover_channel("endpoint:e2", now_ms() + 60_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.recover_channel("endpoint:e2", 0).await.unwrap(), 1);
    assert_eq!(state_of(&store, &ids[0], &dead.id).await, "pending");

    let token = store
        .create_token("acme portal", Scopes::of([Scope::Read]), Some("acme"))
        .await
        .unwrap();
    assert_eq!(
        store.active_tokens().await.unwrap()[0].tenant.as_deref(),
        Some("acme")
    );
    assert!(store.delete_endpoint("acme", "e1").await.unwrap());
    assert!(!store.delete_endpoint("acme", "e1").await.unwrap());
    assert_eq!(state_of(&store, &ids[0], &due.id).await, "dead");
    let deleted = store.tenancy_changes(0).await.unwrap();
    assert!(deleted.endpoints[0].deleted_at.is_some());
    assert_eq!(store.delete_tenant("acme").await.unwrap(), Some(vec![]));
    assert_eq!(store.delete_tenant("acme").await.unwrap(), None);
    assert!(store.tenant("acme").await.unwrap().is_none());
    assert!(
        store
            .active_tokens()
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != token.id),
        "a deleted tenant's tokens are revoked"
    );
    // Its id can be taken again.
    assert!(store.create_tenant("acme", "New Acme").await.unwrap());

    // Deleted rows are purged once old enough; live ones stay.
    store
        .insert_endpoint(&endpoint_row("e9", "globex"), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.purge_deleted_tenancy(0).await.unwrap(), 0);
    assert_eq!(
        store.purge_deleted_tenancy(now_ms() + 1).await.unwrap(),
        1,
        "deleted endpoint e1 (tenant acme's row was taken again)"
    );
    let left = store.tenancy_changes(0).await.unwrap();
    assert_eq!(left.endpoints.len(), 1);
    assert_eq!(left.tenants.len(), 2);
    assert!(store.tenant("acme").await.unwrap().is_some());
}

/// An endpoint is stored only for a live tenant with room for it, even when creates run in
/// parallel (each would pass a count made before the others' inserts); deleting a tenant
/// ends its portal sessions, so none outlives it into a later tenant with its id.
async fn endpoints_land_only_on_a_live_tenant_within_its_cap(backend: Backend) {
    const CAP: usize = 5;
    let store = TestStore::open(backend).await;
    assert_eq!(
        store
            .insert_endpoint(&endpoint_row("e0", "nobody"), CAP)
            .await
            .unwrap(),
        Err(EndpointRefused::NoTenant)
    );
    assert!(store.create_tenant("acme", "Acme").await.unwrap());
    let creates = (0..12).map(|i| {
        let store = store.store.clone();
        tokio::spawn(async move {
            store
                .insert_endpoint(&endpoint_row(&format!("e{i}"), "acme"), CAP)
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(creates).await;
    let stored = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Ok(()))))
        .count();
    let full = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Err(EndpointRefused::Full))))
        .count();
    assert_eq!((stored, full), (CAP, 12 - CAP), "{outcomes:?}");
    let page = Page {
        after: None,
        limit: 100,
    };
    assert_eq!(
        store.list_endpoints("acme", &page).await.unwrap().len(),
        CAP
    );

    let now = now_ms();
    assert!(
        store
            .open_portal_session(&NewPortalSession {
                link_id: "link-1",
                session_digest: "digest-1",
                tenant_id: "acme",
                tenant_born: 1,
                now,
                expires_at: now + 3_600_000,
                link_expires_at: now + 600_000,
            })
            .await
            .unwrap()
    );
    assert!(
        store
            .portal_session("digest-1", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.delete_tenant("acme").await.unwrap().is_some());
    assert_eq!(
        store.portal_session("digest-1", now_ms()).await.unwrap(),
        None,
        "a deleted tenant's portal session still works"
    );
    assert_eq!(
        store
            .insert_endpoint(&endpoint_row("late", "acme"), CAP)
            .await
            .unwrap(),
        Err(EndpointRefused::NoTenant)
    );
}

/// The directory reads each change a few times (its overlap) and then no more: a quiet hub
/// does not read its tenants and endpoints again every second.
async fn a_quiet_directory_reads_nothing_again(backend: Backend) {
    let store = TestStore::open(backend).await;
    assert!(store.create_tenant("acme", "Acme").await.unwrap());
    store
        .insert_endpoint(&endpoint_row("e1", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let directory = LiveDirectory::load(store.store.clone()).await.unwrap();
    let attributes: &[(&str, &str)] = &[("region", "eu")];
    assert_eq!(
        directory
            .read()
            .targets("acme", "invoice.paid", attributes)
            .len(),
        1
    );
    let first = directory.endpoint("endpoint:e1").unwrap();
    // Still inside the overlap: read again, in case a late commit stamped earlier.
    assert_eq!(directory.refresh().await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    assert_eq!(directory.refresh().await.unwrap(), 2);
    assert_eq!(directory.refresh().await.unwrap(), 0, "nothing changed");
    // Read again unchanged, the endpoint is the same `Arc`: what delivery built from it
    // (its grants) stands.
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &directory.endpoint("endpoint:e1").unwrap()
    ));

    let mut renamed = endpoint_row("e1", "acme");
    renamed.description = "changed".into();
    renamed.updated_at = now_ms();
    assert!(store.update_endpoint(&renamed).await.unwrap());
    assert_eq!(directory.refresh().await.unwrap(), 1);
    let changed = directory.endpoint("endpoint:e1").unwrap();
    assert_eq!(changed.row.description, "changed");
    assert!(!std::sync::Arc::ptr_eq(&first, &changed));
}
