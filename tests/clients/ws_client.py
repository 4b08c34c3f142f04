"""Drives Switchyard's /ws with the `websockets` library, as an ordinary client would.

Usage: ws_client.py SCENARIO URL TOKEN [ORIGIN]
(for the `cookie` scenario, TOKEN is the Cookie header instead)

Each scenario prints one JSON object on stdout describing what it saw; the black-box test
(tests/blackbox/ws.rs) asserts on it.
"""

import asyncio
import json
import socket
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def headers(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


async def basic(url, token, origin):
    """Sends a good frame, a bad one and a binary one; reads the three answers."""
    async with connect(url, additional_headers=headers(token), origin=origin) as ws:
        await ws.send(json.dumps({"kind": "ws.hello", "payload": {"n": 1}}))
        await ws.send(json.dumps({"kind": "", "payload": {}}))
        await ws.send(b"\x00binary")
        answers = [json.loads(await ws.recv()) for _ in range(3)]
    return {"answers": sorted(answers, key=lambda a: a["seq"])}


async def refused(url, token, origin):
    """Opens a socket that the server should refuse; reports the HTTP status."""
    try:
        async with connect(url, additional_headers=headers(token), origin=origin):
            return {"status": 101}
    except InvalidStatus as error:
        return {"status": error.response.status_code}


async def subscribe(url, token, origin):
    """Subscribes to `sub.*`, sends one matching and one other notification, and collects
    events until the matching one is delivered."""
    async with connect(url, additional_headers=headers(token), origin=origin) as ws:
        await ws.send(json.dumps({"op": "subscribe", "kind": "sub.*"}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await ws.send(json.dumps({"kind": "other.thing", "payload": {}}))
        await ws.send(json.dumps({"kind": "sub.thing", "payload": {"x": 1}}))
        events, acks = [], {}
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "ack":
                acks[message["seq"]] = message["ids"][0]
            elif message["type"] == "event":
                events.append(message["event"])
                if message["event"]["type"] == "delivery_attempted":
                    break
    return {"acks": acks, "events": events}


async def oversize(url, token, origin):
    """Sends one frame over the 64 KiB cap; reports the close code."""
    async with connect(
        url, additional_headers=headers(token), origin=origin, max_size=None
    ) as ws:
        await ws.send(json.dumps({"kind": "big", "payload": "x" * (70 * 1024)}))
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as closed:
            return {"code": closed.rcvd.code if closed.rcvd else None,
                    "reason": closed.rcvd.reason if closed.rcvd else None}
    return {"code": None}


async def slow(url, token, origin):
    """Subscribes to everything, then floods notifications without reading anything, over a
    socket with a tiny receive buffer; then reads until the server closes."""
    sock = socket.create_connection(
        (url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1].split("/")[0]))
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with connect(
        url, sock=sock, additional_headers=headers(token), origin=origin, max_queue=1
    ) as ws:
        await ws.send(json.dumps({"op": "subscribe"}))
        frame = json.dumps({"notifications": [{"kind": "flood", "payload": {"pad": "y" * 200}}] * 20})
        sent = 0
        try:
            for _ in range(2000):
                await asyncio.wait_for(ws.send(frame), 10)
                sent += 1
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        read = 0
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 60)
                read += 1
        except ConnectionClosed as closed:
            return {"sent": sent, "read": read,
                    "code": closed.rcvd.code if closed.rcvd else None,
                    "reason": closed.rcvd.reason if closed.rcvd else None}


async def idle(url, token, origin):
    """Stays connected without sending for 4 s (the library answers the server's pings),
    then sends a frame; reports the answer."""
    async with connect(url, additional_headers=headers(token), origin=origin,
                       ping_interval=None) as ws:
        await asyncio.sleep(4)
        await ws.send(json.dumps({"kind": "still.here", "payload": {}}))
        return {"answer": json.loads(await asyncio.wait_for(ws.recv(), 30))}


async def listen(url, token, origin):
    """Listens on the websocket channel `in-app`, then takes one notification and acks it."""
    async with connect(url, additional_headers=headers(token), origin=origin) as ws:
        await ws.send(json.dumps({"op": "listen", "channel": "in-app"}))
        assert json.loads(await ws.recv())["type"] == "listening"
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "notification":
                notification = message["notification"]
                await ws.send(json.dumps(
                    {"op": "ack", "channel": "in-app", "id": notification["id"]}))
                # Stay until the ack is surely read: the server closes nothing here.
                await asyncio.sleep(0.5)
                return {"notification": notification}


async def cookie(url, cookie_header, origin):
    """Opens a socket with an admin session cookie instead of a token; reports the status
    of the handshake and, when it opened, the ack of one frame."""
    try:
        async with connect(url, additional_headers={"Cookie": cookie_header},
                           origin=origin) as ws:
            await ws.send(json.dumps({"kind": "from.admin", "payload": {}}))
            return {"status": 101, "answer": json.loads(await ws.recv())}
    except InvalidStatus as error:
        return {"status": error.response.status_code}


SCENARIOS = {
    "cookie": cookie,
    "listen": listen,
    "idle": idle,
    "basic": basic,
    "refused": refused,
    "subscribe": subscribe,
    "oversize": oversize,
    "slow": slow,
}

if __name__ == "__main__":
    scenario, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
    origin = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(asyncio.run(SCENARIOS[scenario](url, token, origin))))
