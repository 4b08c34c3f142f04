//! What the routing decision for a tenant's notification costs, with a small directory and
//! with a large one.
//!
//! Run with `cargo bench -p switchyard --bench endpoints`.
//!
//! Both directories give every tenant the same ten endpoints (`bench::tenants::SHAPE`:
//! kind globs and attribute filters, two of which take the notification), so the only
//! difference is how many tenants and endpoints the directory holds:
//!
//! - `small`: 1 tenant, 10 endpoints.
//! - `large`: 10,000 tenants, 100,000 endpoints.
//! - in between, for `endpoints_targets` only: 100 tenants (1,000 endpoints) and 1,000
//!   (10,000).
//!
//! Benchmarks:
//!
//! - `endpoints_targets/{small,1000,10000,large}`: `Directory::targets` for one
//!   notification, each for the next tenant of a fixed random sequence (in `small` always
//!   the one tenant), so a large directory is read at scattered places, as the router
//!   reads it when notifications come for many tenants.
//! - `endpoints_targets/large_one_tenant`: the large directory, every notification for the
//!   same tenant: the same work as `large` with that tenant's endpoints in the CPU's
//!   caches, which tells the cost of the directory's size from the cost of cold memory.
//! - `route_batch/{yaml_only,small,large}`: the router's decision for a batch of 2048
//!   notifications: the YAML table's targets, then the tenant's endpoints, each credited to
//!   `tenant:<id>`, under one read of the directory's lock, with the router's own
//!   `pipeline::router::targets`; `yaml_only` sends the same batch with no tenant, the
//!   path of every notification before tenants existed. The store's read and commit of the batch,
//!   which cost far more, are not included.

use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::bench::tenants;
use switchyard::pipeline::router::targets;
use switchyard::routing::endpoints::LiveDirectory;
use switchyard::routing::{BuiltinCatalog, RouteTable};
use switchyard::store::{Notification, Store};

/// Where the endpoints would deliver; never called here.
const URL: &str = "http://127.0.0.1:9/hook";
/// The router's batch.
const BATCH: usize = 2048;
/// Tenants in the random sequence the notifications are sent for.
const SEQUENCE: usize = 8192;

/// The bench's routes file: one webhook channel and a route that takes every kind (with
/// `yaml.*`, as `switchyard bench --tenants` writes it, tenant notifications would match
/// no route; `*` makes every notification also go to the YAML channel, the costlier case).
const ROUTES: &str = r#"
channels:
  bench:
    plugin: webhook
    config: { url: "http://127.0.0.1:9/hook" }
    secrets: { signing_key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
    allowed_hosts: ["127.0.0.1"]
routes:
  - name: everything
    match: { kind: "*" }
    to: [bench]
"#;

struct Case {
    name: &'static str,
    directory: Arc<LiveDirectory>,
    /// The tenants the notifications are for, in order.
    sequence: Vec<String>,
    /// Kept for the store the directory was loaded from.
    _dir: tempfile::TempDir,
}

fn case(
    tokio: &tokio::runtime::Runtime,
    name: &'static str,
    tenant_count: u32,
    per_tenant: u32,
) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let directory = tokio.block_on(async {
        // An empty store: the directory is filled from rows below, not read from it.
        let store = Store::open(&url).await.unwrap();
        LiveDirectory::load(store).await.unwrap()
    });
    let changes = tenants::changes(tenant_count, per_tenant, URL);
    let started = Instant::now();
    directory.apply(changes);
    let filled = started.elapsed();
    {
        let read = directory.read();
        assert_eq!(read.tenant_count(), tenant_count as usize);
        assert_eq!(read.endpoint_count(), (tenant_count * per_tenant) as usize);
    }
    eprintln!(
        "{name}: {tenant_count} tenants, {} endpoints; the directory took {filled:.2?} to fill",
        tenant_count * per_tenant
    );
    // A fixed sequence (an LCG), the same every run.
    let mut state: u64 = 0x5eed;
    let sequence = (0..SEQUENCE)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tenants::tenant_id(((state >> 33) % u64::from(tenant_count)) as u32)
        })
        .collect();
    Case {
        name,
        directory,
        sequence,
        _dir: dir,
    }
}

/// `count` notifications of the bench's kind and attributes, for the tenants of `sequence`
/// from `offset` on (none with `None`).
fn notifications(sequence: Option<&[String]>, offset: usize, count: usize) -> Vec<Notification> {
    (0..count)
        .map(|i| Notification {
            id: uuid::Uuid::now_v7().to_string(),
            kind: tenants::KIND.to_owned(),
            source: "rest".to_owned(),
            attributes: tenants::attributes(),
            payload: "{}".to_owned(),
            idempotency_key: None,
            created_at: 0,
            tenant: sequence.map(|s| s[(offset + i) % s.len()].clone()),
        })
        .collect()
}

fn endpoints(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cases = vec![
        case(&tokio, "small", 1, 10),
        case(&tokio, "1000", 100, 10),
        case(&tokio, "10000", 1_000, 10),
        case(&tokio, "large", 10_000, 10),
    ];
    let large = cases.len() - 1;
    let one_tenant = Case {
        name: "large_one_tenant",
        directory: cases[large].directory.clone(),
        sequence: vec![cases[large].sequence[0].clone(); SEQUENCE],
        _dir: tempfile::tempdir().unwrap(),
    };
    cases.push(one_tenant);
    let attributes = tenants::attributes();
    let table = RouteTable::parse(ROUTES, "bench routes", &|_| None, &BuiltinCatalog).unwrap();

    let mut group = c.benchmark_group("endpoints_targets");
    group.throughput(Throughput::Elements(1));
    for case in &cases {
        let directory = case.directory.read();
        for tenant in &case.sequence {
            assert_eq!(
                directory.targets(tenant, tenants::KIND, &attributes).len(),
                2
            );
        }
        let mut next = 0;
        group.bench_function(case.name, |b| {
            b.iter(|| {
                let tenant = &case.sequence[next % SEQUENCE];
                next += 1;
                directory.targets(std::hint::black_box(tenant), tenants::KIND, &attributes)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("route_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    // The YAML-only batch has no tenant, so the directory does not matter; the small
    // one's is used.
    let runs: [(&str, &Case, bool); 3] = [
        ("yaml_only", &cases[0], false),
        ("small", &cases[0], true),
        ("large", &cases[large], true),
    ];
    for (name, case, for_tenants) in runs {
        let sequence = for_tenants.then_some(case.sequence.as_slice());
        let mut offset = 0;
        let expected = if for_tenants { 3 } else { 1 };
        for n in notifications(sequence, 0, 16) {
            assert_eq!(targets(&table, &case.directory.read(), &n).len(), expected);
        }
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    offset += BATCH;
                    notifications(sequence, offset, BATCH)
                },
                |batch| {
                    let directory = case.directory.read();
                    let mut deliveries = 0;
                    for notification in &batch {
                        deliveries += targets(&table, &directory, notification).len();
                    }
                    assert_eq!(deliveries, BATCH * expected);
                    batch
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, endpoints);
criterion_main!(benches);
