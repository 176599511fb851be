"""Spring's StompBrokerRelay, emulated with Python's stomp.py 8 over plain TCP against
`wsx serve --stomp-tcp`, exchanging messages with a stomp.py client over WebSocket (`/stomp`).

The relay's sequence, as Spring's `StompBrokerRelayMessageHandler` runs it: one long-lived
"system" session with its own login/passcode, the virtual host in `host` and heart-beats
10000,10000, through which the application publishes (SENDs without receipts); then one TCP
session per WebSocket client of the application, whose CONNECT carries the client's forwarded
login/passcode (here: the client's JWT as passcode), the same `host` and heart-beats; the
client's SUBSCRIBEs and SENDs go through it, with receipts.

Run by scripts/interop/stomp/stomp.sh (step "stomp" of scripts/test.sh) against servers started
with `--jwt-secret SECRET --stomp-tcp ADDR`, once on one node (TCP and WebSocket on the same
server) and once on two nodes sharing a Redis (TCP on node A, WebSocket on node B):

    python stomp_relay_py.py LABEL SECRET TCP_HOST:TCP_PORT WS_HOST:WS_PORT

Prints one line per case, `stomp-relay: <case> (LABEL): ok` or `... : FAIL (why)`, and exits 1
if any case failed.
"""

import queue
import sys
import time
import uuid

import stomp

import stomp_common
from stomp_common import WAIT, Inbox, check, confirmed, subscribe

LABEL, SECRET = sys.argv[1], sys.argv[2].encode()
TCP_HOST, TCP_PORT = sys.argv[3].rsplit(":", 1)
WS_HOST, WS_PORT = sys.argv[4].rsplit(":", 1)
TCP_PORT, WS_PORT = int(TCP_PORT), int(WS_PORT)
VHOST = "vhost.example"
# Distinct destinations per run: the two runs may share nothing by accident.
RUN = uuid.uuid4().hex[:8]
TOPIC = f"/topic/relay.{RUN}"
TO_WS = f"/queue/relay.to-ws.{RUN}"
TO_TCP = f"/queue/relay.to-tcp.{RUN}"
RESUME = f"/topic/relay.resume.{RUN}"


def token(sub):
    """An HS256 JWT for `sub`, allowed every destination."""
    return stomp_common.token(SECRET, sub)


class RelayInbox(Inbox):
    """An `Inbox` whose messages skip the warm-up messages still on their way."""

    def message(self, what="a MESSAGE"):
        while True:
            frame = super().message(what)
            if not frame.body.startswith("warmup-"):
                return frame

    def body(self, what):
        return self.message(what).body


def relay_session(login, passcode):
    """A session of the relay over TCP: heart-beats 10000,10000, `host` the virtual host."""
    conn = stomp.Connection12([(TCP_HOST, TCP_PORT)], heartbeats=(10000, 10000), vhost=VHOST,
                              reconnect_attempts_max=1, timeout=WAIT)
    inbox = RelayInbox()
    conn.set_listener("inbox", inbox)
    conn.connect(login, passcode, wait=True)
    return conn, inbox


def websocket_client(sub):
    """The application's other side: a stomp.py client over WebSocket."""
    conn = stomp.WSConnection([(WS_HOST, WS_PORT)], ws_path="/stomp", reconnect_attempts_max=1,
                              timeout=WAIT)
    inbox = RelayInbox()
    conn.set_listener("inbox", inbox)
    conn.connect(sub, token(sub), wait=True, headers={"host": "/"})
    return conn, inbox


def warm_up(send, inbox):
    """Publish warm-up messages with `send` until `inbox` gets one: across nodes a SUBSCRIBE's
    receipt does not wait for Redis."""
    deadline = time.monotonic() + 3 * WAIT
    n = 0
    while time.monotonic() < deadline:
        send(f"warmup-{n}")
        n += 1
        try:
            inbox.messages.get(timeout=0.2)
            return
        except queue.Empty:
            pass
    raise AssertionError("no warm-up message went round")


STATE = {}


def case_system_session():
    conn, inbox = relay_session("relay-system", token("relay-system"))
    STATE["system"] = (conn, inbox)
    frame = inbox.connected.get(timeout=WAIT)
    check(frame.headers.get("version") == "1.2", f"version {frame.headers}")
    # The server's own heart-beat settings (the client's 10000,10000 are taken into account).
    beats = frame.headers.get("heart-beat", "").split(",")
    check(len(beats) == 2 and all(b.isdigit() for b in beats), f"heart-beat {frame.headers}")
    check(frame.headers.get("user-id") == "relay-system", f"user-id {frame.headers}")


def case_client_session():
    # The client's CONNECT, forwarded: its own login and passcode (its JWT).
    conn, inbox = relay_session("alice", token("alice"))
    frame = inbox.connected.get(timeout=WAIT)
    check(frame.headers.get("user-id") == "alice", f"user-id {frame.headers}")
    subscribe(conn, inbox, TOPIC, "sub-0")
    subscribe(conn, inbox, TO_TCP, "sub-1")
    STATE["alice"] = (conn, inbox)
    ws, ws_inbox = websocket_client("bob")
    subscribe(ws, ws_inbox, TOPIC, "ws-0")
    subscribe(ws, ws_inbox, TO_WS, "ws-1")
    STATE["bob"] = (ws, ws_inbox)


def case_tcp_to_websocket():
    system, _ = STATE["system"]
    alice, alice_inbox = STATE["alice"]
    _, bob_inbox = STATE["bob"]
    warm_up(lambda body: system.send(TOPIC, body), bob_inbox)
    # The application publishes through the system session: no receipt, as Spring does.
    system.send(TOPIC, "broadcast from the app", content_type="text/plain")
    check(bob_inbox.body("the broadcast at bob") == "broadcast from the app", "bob's broadcast")
    check(alice_inbox.body("the broadcast at alice") == "broadcast from the app",
          "alice's broadcast")
    confirmed(alice_inbox, lambda r: alice.send(TO_WS, "reply from alice",
                                                content_type="text/plain",
                                                headers={"receipt": r}))
    frame = bob_inbox.message("alice's queue message")
    check(frame.body == "reply from alice", f"body {frame.body!r}")
    check(frame.headers.get("destination") == TO_WS, f"destination {frame.headers}")


def case_websocket_to_tcp():
    _, alice_inbox = STATE["alice"]
    bob, bob_inbox = STATE["bob"]
    warm_up(lambda body: bob.send(TOPIC, body), alice_inbox)
    bob.send(TOPIC, "hello from bob", content_type="text/plain")
    check(alice_inbox.body("bob's topic message") == "hello from bob", "alice's topic message")
    confirmed(bob_inbox, lambda r: bob.send(TO_TCP, "job from bob", content_type="text/plain",
                                            headers={"receipt": r}))
    frame = alice_inbox.message("bob's queue message")
    check(frame.body == "job from bob", f"body {frame.body!r}")
    check(frame.headers.get("subscription") == "sub-1", f"subscription {frame.headers}")


def case_resume():
    # The application publishes through a TCP session (node A); a WebSocket client (node B on
    # two nodes) leaves, and subscribes again with `x-stream-offset: offset=N`: exactly what it
    # missed, in order, then live messages, with no gap or duplicate at the seam.
    app, app_inbox = relay_session("relay-resume", token("relay-resume"))
    ws, inbox = websocket_client("carol")
    subscribe(ws, inbox, RESUME, "r-0")
    warm_up(lambda body: app.send(RESUME, body), inbox)

    def publish(body):
        confirmed(app_inbox, lambda r: app.send(RESUME, body, headers={"receipt": r}))

    def take(box, n):
        frames = [box.message(f"MESSAGE {i + 1} of {n}") for i in range(n)]
        return [int(f.headers.get("x-stream-offset", "0")) for f in frames], [f.body for f in frames]

    for i in range(3):
        publish(f"m{i}")
    offsets, bodies = take(inbox, 3)
    check(bodies == ["m0", "m1", "m2"], f"live bodies {bodies}")
    check(offsets == list(range(offsets[0], offsets[0] + 3)), f"live offsets {offsets}")
    ws.disconnect()
    for i in range(3, 8):
        publish(f"m{i}")
    back, back_inbox = websocket_client("carol")
    start = offsets[-1] + 1
    confirmed(back_inbox, lambda r: back.subscribe(
        RESUME, "r-1", ack="auto", headers={"receipt": r, "x-stream-offset": f"offset={start}"}))
    offsets, bodies = take(back_inbox, 5)
    check(bodies == [f"m{i}" for i in range(3, 8)], f"missed bodies {bodies}")
    check(offsets == list(range(start, start + 5)), f"missed offsets {offsets} from {start}")
    publish("m8")
    offsets, bodies = take(back_inbox, 1)
    check((offsets, bodies) == ([start + 5], ["m8"]), f"live after the seam {offsets} {bodies}")
    back_inbox.nothing_more("the resumed subscriber")
    back.disconnect()
    app.disconnect()


def case_disconnect():
    for name in ("alice", "system", "bob"):
        conn, _ = STATE.pop(name)
        conn.disconnect(receipt=f"bye-{name}")
        check(not conn.is_connected(), f"{name} still connected")


CASES = {
    "system-session": case_system_session,
    "client-session": case_client_session,
    "tcp-to-websocket": case_tcp_to_websocket,
    "websocket-to-tcp": case_websocket_to_tcp,
    "resume": case_resume,
    "disconnect": case_disconnect,
}


def main():
    failed = stomp_common.run_cases("stomp-relay", CASES, LABEL)
    for conn, _ in STATE.values():
        conn.disconnect()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
