//! A thousand tenants on one hub: each with an endpoint of its own, created over the API
//! (concurrently, a few at a time, as a provisioning script would), each sent one
//! notification. Every endpoint gets exactly its own tenant's notification, signed with
//! its own secret, and nothing else; a tenant without endpoints reaches no one. The whole
//! run is bounded in time, generously: the point is that matching stays a lookup per
//! tenant, not a scan of every endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;

use crate::support::{Hub, LOG_EVERYTHING, Receiver, Reply, eventually};
use crate::tenants::{create_endpoint, create_tenant, send_for, signed_by};

const TENANTS: usize = 1000;
/// Requests in flight at once while provisioning and sending.
const IN_FLIGHT: usize = 16;
/// Notifications for the tenant that has no endpoints.
const LONELY: usize = 5;
/// Bounds for a loaded two-core machine, several times what an idle one takes.
const PROVISION_WITHIN: Duration = Duration::from_secs(180);
const SEND_WITHIN: Duration = Duration::from_secs(90);
const DELIVER_WITHIN: Duration = Duration::from_secs(120);

fn tenant_id(n: usize) -> String {
    format!("cus_{n:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tenants_each_get_exactly_their_own_notification() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let hub = Hub::started(LOG_EVERYTHING).await;
    let hub = &hub;
    let receiver = &receiver;

    let started = Instant::now();
    let secrets: BTreeMap<String, String> = futures::stream::iter(0..TENANTS)
        .map(|n| async move {
            let tenant = tenant_id(n);
            create_tenant(hub, &tenant).await;
            let url = receiver.url(&format!("/hooks/{tenant}"));
            let (endpoint, secret) =
                create_endpoint(hub, &tenant, json!({"url": url, "kinds": ["scale.*"]})).await;
            assert_eq!(endpoint["tenant_id"], tenant.as_str());
            (tenant, secret)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let provisioned = started.elapsed();
    assert_eq!(secrets.len(), TENANTS);
    create_tenant(hub, "lonely").await;
    assert!(
        provisioned < PROVISION_WITHIN,
        "provisioning {TENANTS} tenants and endpoints took {provisioned:?}"
    );

    let started = Instant::now();
    let sent: BTreeMap<String, String> = futures::stream::iter(0..TENANTS)
        .map(|n| async move {
            let tenant = tenant_id(n);
            let id = send_for(
                hub,
                &tenant,
                json!({"kind": "scale.ping", "payload": {"tenant": tenant}}),
            )
            .await;
            (tenant, id)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut lonely = BTreeSet::new();
    for n in 0..LONELY {
        lonely.insert(
            send_for(
                hub,
                "lonely",
                json!({"kind": "scale.ping", "payload": {"tenant": "lonely", "n": n}}),
            )
            .await,
        );
    }
    let sending = started.elapsed();
    assert!(
        sending < SEND_WITHIN,
        "sending {TENANTS} notifications took {sending:?}"
    );

    let started = Instant::now();
    eventually(DELIVER_WITHIN, &format!("{TENANTS} deliveries"), || {
        std::future::ready((receiver.count() >= TENANTS).then_some(()))
    })
    .await;
    let delivering = started.elapsed();
    // Anything extra (a duplicate, a lonely notification) would come right behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.received();
    assert_eq!(got.len(), TENANTS, "exactly one request per tenant");
    let mut by_tenant: BTreeMap<String, usize> = BTreeMap::new();
    for request in &got {
        let tenant = request
            .path
            .strip_prefix("/hooks/")
            .unwrap_or_else(|| panic!("an unexpected path {}", request.path))
            .to_owned();
        let id = request.webhook_id();
        assert!(
            !lonely.contains(&id),
            "a tenant without endpoints reached {tenant}"
        );
        assert_eq!(
            sent.get(&tenant),
            Some(&id),
            "{tenant}'s endpoint got another notification"
        );
        let body = request.json();
        assert_eq!(body["data"]["tenant"], tenant.as_str(), "{body}");
        assert!(
            signed_by(request, &secrets[&tenant]),
            "{tenant}'s delivery is signed with its own secret"
        );
        *by_tenant.entry(tenant).or_default() += 1;
    }
    assert_eq!(by_tenant.len(), TENANTS);
    assert!(by_tenant.values().all(|&n| n == 1));
    eprintln!(
        "{TENANTS} tenants: provisioned in {provisioned:?}, sent in {sending:?}, delivered \
         {delivering:?} after the last send"
    );
}
