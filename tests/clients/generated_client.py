"""The everyday work, done with a client generated from the hub's served spec by
openapi-python-client, used as generated (tests/blackbox/contract.rs generates it into a
package named `switchyard_client` and puts it on PYTHONPATH).

Usage:
    generated_client.py BASE_URL TOKEN

The hub's routes deliver `ok.*` and send `doomed.*` to a channel that always fails, so it
becomes a dead letter. Every step asserts what it got; the last line printed is "all done".
"""

import sys
import time
import uuid
from http import HTTPStatus

from switchyard_client import AuthenticatedClient
from switchyard_client.api.dead_letters import list_dead_letters, replay_dead_letter
from switchyard_client.api.notifications import (
    get_notification,
    list_notifications,
    send_notification,
    send_notification_batch,
)
from switchyard_client.models import (
    AcceptedOut,
    BatchAcceptedOut,
    BatchIn,
    DeadLetterPage,
    DeliveryState,
    NotificationIn,
    NotificationInAttributesType0,
    NotificationOut,
    NotificationPage,
    Problem,
    ReplayOut,
)
from switchyard_client.types import UNSET

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
    base_url, token = sys.argv[1], sys.argv[2]
    client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    run = uuid.uuid4().hex[:8]

    step("send one notification")
    attributes = NotificationInAttributesType0.from_dict({"region": "eu"})
    sent = send_notification.sync_detailed(
        client=client,
        body=NotificationIn(kind="ok.invoice.paid", attributes=attributes, payload={"invoice": 42}),
    )
    assert sent.status_code == HTTPStatus.ACCEPTED, sent
    assert isinstance(sent.parsed, AcceptedOut), sent.parsed
    one_id = sent.parsed.id
    assert not sent.parsed.duplicate

    step("send a batch with an Idempotency-Key, then the same request again")
    batch = BatchIn(
        notifications=[NotificationIn(kind="ok.batch", payload={"n": n}) for n in range(3)]
    )
    key = f"batch-{run}"
    first = send_notification_batch.sync_detailed(client=client, body=batch, idempotency_key=key)
    assert first.status_code == HTTPStatus.ACCEPTED, first
    assert isinstance(first.parsed, BatchAcceptedOut)
    assert len(first.parsed.notifications) == 3
    again = send_notification_batch.sync_detailed(client=client, body=batch, idempotency_key=key)
    assert again.status_code == HTTPStatus.ACCEPTED, again
    assert [n.id for n in again.parsed.notifications] == [n.id for n in first.parsed.notifications]
    assert again.headers.get("idempotent-replayed") == "true", again.headers

    step("read the first notification with its deliveries and attempts")

    def delivered():
        found = get_notification.sync(client=client, id=one_id)
        assert isinstance(found, NotificationOut), found
        deliveries = found.deliveries if found.deliveries is not UNSET else []
        if deliveries and all(d.state == DeliveryState.DELIVERED for d in deliveries):
            return found
        return None

    found = eventually("the first notification to be delivered", delivered)
    assert found.kind == "ok.invoice.paid"
    assert found.attributes.to_dict() == {"region": "eu"}, found.attributes
    assert found.payload == {"invoice": 42}, found.payload
    attempt = found.deliveries[0].attempt_log[0]
    assert attempt.attempt == 1 and attempt.status == 200, attempt

    step("page through the list, two at a time")
    seen, cursor, pages = [], UNSET, 0
    while True:
        page = list_notifications.sync(client=client, kind="ok.*", limit=2, cursor=cursor)
        assert isinstance(page, NotificationPage), page
        assert len(page.items) <= 2
        seen.extend(item.id for item in page.items)
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert pages >= 2, pages
    assert len(seen) == len(set(seen)) == 4, seen
    assert one_id in seen

    step("list a dead letter, then replay it")
    doomed = send_notification.sync(client=client, body=NotificationIn(kind="doomed.job"))
    assert isinstance(doomed, AcceptedOut)

    def dead_letter():
        page = list_dead_letters.sync(client=client, channel="doomed")
        assert isinstance(page, DeadLetterPage), page
        return next((d for d in page.items if d.notification_id == doomed.id), None)

    dead = eventually("the doomed notification to be a dead letter", dead_letter)
    replayed = replay_dead_letter.sync(client=client, delivery_id=dead.delivery_id)
    assert isinstance(replayed, ReplayOut), replayed
    assert replayed.state == DeliveryState.PENDING

    step("a 422 is a typed problem")
    refused = send_notification.sync_detailed(client=client, body=NotificationIn(kind="no spaces"))
    assert refused.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, refused
    assert isinstance(refused.parsed, Problem), refused.parsed
    assert refused.parsed.field == "kind", refused.parsed
    assert refused.parsed.code == "invalid-field", refused.parsed

    step("a 401 is a typed problem")
    stranger = AuthenticatedClient(base_url=base_url, token="sy_not-a-token")
    denied = list_notifications.sync_detailed(client=stranger)
    assert denied.status_code == HTTPStatus.UNAUTHORIZED, denied
    assert isinstance(denied.parsed, Problem), denied.parsed
    assert denied.parsed.status == 401

    print("all done")


if __name__ == "__main__":
    main()
