"""Sends notifications to Switchyard through a reverse proxy over its WebSocket and GraphQL
front doors, with the `websockets` and `gql` libraries, as ordinary clients would.

Usage: proxy_client.py BASE_URL TOKEN SOCKETS

- /ws: SOCKETS connections, one after the other, each sending one `proxy.ws` notification
  and reading its ack (a new connection is a new pick of upstream by the proxy).
- GraphQL over HTTP: SOCKETS `sendNotification` mutations of kind `proxy.gql.http`.
- GraphQL over a WebSocket (graphql-transport-ws): a `deliveries` subscription for kind
  `proxy.gql.socket`, the mutation on the same socket, and the delivery event for it.

Prints one JSON object describing what it saw; tests/blackbox/nginx.rs asserts on it.
"""

import asyncio
import json
import sys

from gql import Client, GraphQLRequest
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import connect

SEND = """
mutation Send($input: NotificationInput!) {
  sendNotification(input: $input) { id duplicate }
}
"""

DELIVERED = """
subscription Delivered($kind: String) {
  deliveries(kind: $kind) { notificationId kind channel outcome }
}
"""

# How long to wait for anything the hub should send.
TIMEOUT = 30


async def over_ws(url, token, sockets):
    acks = []
    for n in range(sockets):
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            await ws.send(json.dumps({"kind": "proxy.ws", "payload": {"n": n}}))
            acks.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    return acks


def graphql_over_http(url, token, count):
    transport = RequestsHTTPTransport(
        url=url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    ids = []
    with Client(transport=transport) as session:
        for n in range(count):
            sent = session.execute(
                GraphQLRequest(
                    SEND,
                    variable_values={
                        "input": {"kind": "proxy.gql.http", "payload": {"n": n}}
                    },
                )
            )
            ids.append(sent["sendNotification"]["id"])
    return ids


async def graphql_over_ws(url, token):
    transport = WebsocketsTransport(
        url=url,
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        events = []

        async def collect():
            request = GraphQLRequest(
                DELIVERED, variable_values={"kind": "proxy.gql.socket"}
            )
            async for result in session.subscribe(request):
                events.append(result["deliveries"])

        task = asyncio.create_task(collect())
        # The subscribe message must be on the socket before the mutation, so the hub has
        # the subscription before the delivery happens.
        while not transport.listeners:
            await asyncio.sleep(0.01)
        sent = await session.execute(
            GraphQLRequest(
                SEND, variable_values={"input": {"kind": "proxy.gql.socket"}}
            )
        )
        id = sent["sendNotification"]["id"]

        async def delivered():
            while True:
                for event in events:
                    if event["notificationId"] == id:
                        return event
                await asyncio.sleep(0.02)

        event = await asyncio.wait_for(delivered(), TIMEOUT)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {
        "subprotocol": transport.subprotocol,
        "sent": id,
        "delivered": event,
    }


async def main(base, token, sockets):
    ws_base = base.replace("http", "ws", 1)
    seen = {"ws": await over_ws(f"{ws_base}/ws", token, sockets)}
    seen["graphql_http"] = await asyncio.to_thread(
        graphql_over_http, f"{base}/graphql", token, sockets
    )
    seen["graphql_ws"] = await graphql_over_ws(f"{ws_base}/graphql", token)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
