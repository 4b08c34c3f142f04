"""Tenants and endpoints managed with a client generated from the hub's served spec by
openapi-python-client, used as generated (tests/blackbox/endpoint_controls.rs generates it
into a package named `switchyard_client` and puts it on PYTHONPATH).

Usage:
    generated_endpoints.py BASE_URL TOKEN RECEIVER_URL

Creates a tenant and an endpoint posting to RECEIVER_URL, sends the tenant a notification
of kind `generated.hello`, and lists the endpoint's deliveries until it is delivered. Every
step asserts what it got; the last line printed is "all done".
"""

import sys
import time
import uuid
from http import HTTPStatus

from switchyard_client import AuthenticatedClient
from switchyard_client.api.endpoints import (
    create_endpoint,
    get_endpoint_delivery,
    list_endpoint_deliveries,
    list_endpoints,
)
from switchyard_client.api.tenants import create_tenant, send_tenant_notification
from switchyard_client.models import (
    AcceptedOut,
    DeliveryOut,
    DeliveryState,
    EndpointDeliveryPage,
    EndpointIn,
    EndpointPage,
    NewEndpointOut,
    NotificationIn,
    Problem,
    TenantIn,
    TenantOut,
)

DEADLINE = 60


def step(text):
    print(f"- {text}", flush=True)


def eventually(what, check):
    """Calls `check` until it returns something truthy, for at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def main():
    base_url, token, receiver_url = sys.argv[1], sys.argv[2], sys.argv[3]
    client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    tenant = f"cus_{uuid.uuid4().hex[:12]}"

    step("create a tenant")
    created = create_tenant.sync_detailed(
        client=client, body=TenantIn(id=tenant, name="Generated Co")
    )
    assert created.status_code == HTTPStatus.CREATED, created
    assert isinstance(created.parsed, TenantOut), created.parsed
    assert created.parsed.id == tenant

    step("a second tenant with the same id is a typed conflict")
    again = create_tenant.sync_detailed(client=client, body=TenantIn(id=tenant, name="Again"))
    assert again.status_code == HTTPStatus.CONFLICT, again
    assert isinstance(again.parsed, Problem), again.parsed

    step("create an endpoint")
    made = create_endpoint.sync_detailed(
        tenant=tenant,
        client=client,
        body=EndpointIn(
            url=receiver_url,
            kinds=["generated.*"],
            description="made by the generated client",
            retry_schedule=["1s"],
        ),
    )
    assert made.status_code == HTTPStatus.CREATED, made
    assert isinstance(made.parsed, NewEndpointOut), made.parsed
    assert made.parsed.secret.startswith("whsec_")
    endpoint = made.parsed.endpoint
    assert endpoint.tenant_id == tenant
    assert endpoint.url == receiver_url
    assert endpoint.plugin == "webhook"
    assert endpoint.enabled is True

    step("list the tenant's endpoints")
    listed = list_endpoints.sync_detailed(tenant=tenant, client=client)
    assert listed.status_code == HTTPStatus.OK, listed
    assert isinstance(listed.parsed, EndpointPage), listed.parsed
    assert [e.id for e in listed.parsed.items] == [endpoint.id]

    step("an invalid endpoint is a typed problem naming the field")
    bad = create_endpoint.sync_detailed(
        tenant=tenant, client=client, body=EndpointIn(url="ftp://example.com/x")
    )
    assert bad.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, bad
    assert isinstance(bad.parsed, Problem), bad.parsed
    assert bad.parsed.field == "url", bad.parsed

    step("send the tenant a notification")
    sent = send_tenant_notification.sync_detailed(
        tenant=tenant,
        client=client,
        body=NotificationIn(kind="generated.hello", payload={"hello": "world"}),
    )
    assert sent.status_code == HTTPStatus.ACCEPTED, sent
    assert isinstance(sent.parsed, AcceptedOut), sent.parsed
    notification_id = sent.parsed.id

    step("list the endpoint's deliveries until it is delivered")

    def delivered():
        page = list_endpoint_deliveries.sync_detailed(
            tenant=tenant, endpoint=endpoint.id, client=client
        )
        assert page.status_code == HTTPStatus.OK, page
        assert isinstance(page.parsed, EndpointDeliveryPage), page.parsed
        items = page.parsed.items
        if len(items) == 1 and items[0].state == DeliveryState.DELIVERED:
            return items[0]
        return None

    item = eventually("the endpoint's delivery", delivered)
    assert item.notification_id == notification_id, item
    assert item.kind == "generated.hello", item
    assert item.attempts == 1, item

    step("get the delivery with its attempts")
    detail = get_endpoint_delivery.sync_detailed(
        tenant=tenant, endpoint=endpoint.id, delivery=item.id, client=client
    )
    assert detail.status_code == HTTPStatus.OK, detail
    assert isinstance(detail.parsed, DeliveryOut), detail.parsed
    assert len(detail.parsed.attempt_log) == 1, detail.parsed
    assert detail.parsed.attempt_log[0].status == 200, detail.parsed

    print("all done")


if __name__ == "__main__":
    main()
