"""A second real STOMP client against `wsx serve`'s /stomp endpoint: Python's stomp.py 8 over
websocket-client (its `WSConnection`), plus one raw websocket-client session for the case
stomp.py cannot play (a client that negotiates heart-beats and then goes silent).

Run by scripts/interop/stomp/stomp.sh (step "stomp" of scripts/test.sh) against a server
started with

    wsx serve --jwt-secret SECRET --stomp-heartbeat 500,500

    python stomp_py.py 127.0.0.1 PORT SECRET

Prints one line per case, `stomp-py: <case>: ok` or `stomp-py: <case>: FAIL (why)`, and exits 1
if any case failed.
"""

import sys
import time

import stomp
import websocket

import stomp_common
from stomp_common import WAIT, Inbox, check, confirmed, subscribe

HOST, PORT, SECRET = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()


def token(sub, subscribe=("**",), send=("**",)):
    """An HS256 JWT for `sub` signed with the server's secret (see stomp_common.token)."""
    return stomp_common.token(SECRET, sub, subscribe, send)


def connect(sub="py", heartbeats=(0, 0), passcode=None):
    """A connected stomp.py 1.2 client (the JWT as passcode) and its listener."""
    conn = stomp.WSConnection([(HOST, PORT)], ws_path="/stomp", heartbeats=heartbeats,
                              reconnect_attempts_max=1, timeout=WAIT)
    inbox = Inbox()
    conn.set_listener("inbox", inbox)
    conn.connect(sub, passcode if passcode is not None else token(sub), wait=True,
                 headers={"host": "/"})
    return conn, inbox


def case_connect():
    conn, inbox = connect("bob")
    frame = inbox.connected.get(timeout=WAIT)
    check(frame.headers.get("version") == "1.2", f"version {frame.headers.get('version')}")
    check(frame.headers.get("user-id") == "bob", f"user-id {frame.headers.get('user-id')}")
    conn.disconnect()


def case_publish_subscribe():
    conn, inbox = connect()
    subscribe(conn, inbox, "/topic/py.chat", "s1")
    conn.send("/topic/py.chat", "grüße: eins\nzwei", content_type="text/plain",
              headers={"x-colon": "a:b"})
    frame = inbox.message()
    check(frame.body == "grüße: eins\nzwei", f"body {frame.body!r}")
    check(frame.headers.get("x-colon") == "a:b", f"x-colon {frame.headers.get('x-colon')}")
    check(frame.headers.get("subscription") == "s1", "subscription header")
    check(frame.headers.get("message-id"), "no message-id")
    conn.disconnect()


def case_receipt():
    conn, inbox = connect()
    confirmed(inbox, lambda r: conn.send("/queue/py.receipts", "x", headers={"receipt": r}))
    conn.disconnect()


def case_ack_nack():
    consumer, inbox = connect("consumer")
    producer, pinbox = connect("producer")
    subscribe(consumer, inbox, "/queue/py.work", "w", ack="client-individual")
    confirmed(pinbox, lambda r: producer.send("/queue/py.work", "job-1", headers={"receipt": r}))
    first = inbox.message()
    check(first.body == "job-1" and "redelivered" not in first.headers, "first delivery")
    consumer.nack(first.headers["ack"])
    again = inbox.message("the redelivery")
    check(again.body == "job-1", f"redelivered body {again.body!r}")
    check(again.headers.get("redelivered") == "true", f"redelivered {again.headers}")
    confirmed(inbox, lambda r: consumer.ack(again.headers["ack"], receipt=r))
    # Acknowledged for good: nothing comes back, the next message is the next one.
    confirmed(pinbox, lambda r: producer.send("/queue/py.work", "job-2", headers={"receipt": r}))
    nxt = inbox.message()
    check(nxt.body == "job-2", f"after the ack: {nxt.body!r}")
    consumer.ack(nxt.headers["ack"])
    consumer.disconnect()
    producer.disconnect()


def case_transaction():
    consumer, inbox = connect("tx-consumer")
    producer, pinbox = connect("tx-producer")
    subscribe(consumer, inbox, "/queue/py.tx", "t")
    aborted = producer.begin()
    producer.send("/queue/py.tx", "dropped", transaction=aborted)
    producer.abort(aborted)
    committed = producer.begin()
    producer.send("/queue/py.tx", "kept-1", transaction=committed)
    producer.send("/queue/py.tx", "kept-2", transaction=committed)
    confirmed(pinbox, lambda r: producer.send("/queue/py.tx", "outside", headers={"receipt": r}))
    confirmed(pinbox, lambda r: producer.commit(committed, headers={"receipt": r}))
    bodies = [inbox.message().body for _ in range(3)]
    check(bodies == ["outside", "kept-1", "kept-2"], f"received {bodies}")
    consumer.disconnect()
    producer.disconnect()


def case_heart_beats_kept():
    conn, inbox = connect("beats", heartbeats=(500, 500))
    frame = inbox.connected.get(timeout=WAIT)
    check(frame.headers.get("heart-beat") == "500,500", f"heart-beat {frame.headers.get('heart-beat')}")
    time.sleep(3)  # the case is the passing of time: the connection must survive it
    check(not inbox.disconnected.is_set(), "disconnected while heart-beating")
    check(inbox.heartbeat_timeouts == 0, "stomp.py saw a heart-beat timeout")
    check(inbox.heartbeats >= 3, f"{inbox.heartbeats} server heart-beats in 3 s")
    confirmed(inbox, lambda r: conn.send("/topic/py.pulse", "alive", headers={"receipt": r}))
    conn.disconnect()


def case_heart_beats_missed():
    # A raw client: negotiates 500 ms heart-beats in both directions, then says nothing.
    ws = websocket.create_connection(f"ws://{HOST}:{PORT}/stomp", timeout=WAIT,
                                     subprotocols=["v12.stomp"])
    ws.send(f"CONNECT\naccept-version:1.2\nhost:/\nlogin:silent\npasscode:{token('silent')}\n"
            "heart-beat:500,500\n\n\x00")
    started = time.monotonic()
    frames = []
    while True:
        opcode, data = ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        text = data.decode()
        if text.strip():
            frames.append(text)
    elapsed = time.monotonic() - started
    check(frames and frames[0].startswith("CONNECTED\n"), f"first frame {frames[:1]}")
    check(any(f.startswith("ERROR\n") for f in frames), f"no ERROR before the close: {frames}")
    check(elapsed < 4, f"dropped after {elapsed:.1f} s")
    ws.close()


def case_auth_refused():
    conn = stomp.WSConnection([(HOST, PORT)], ws_path="/stomp", reconnect_attempts_max=1,
                              timeout=WAIT)
    inbox = Inbox()
    conn.set_listener("inbox", inbox)
    conn.connect("mallory", "not.a.token", wait=False, headers={"host": "/"})
    frame = inbox.error()
    check("invalid token" in frame.headers.get("message", ""), f"message {frame.headers}")
    check(inbox.disconnected.wait(WAIT), "still connected after the ERROR")
    check(inbox.connected.empty(), "CONNECTED to a refused client")


def subscribe_from(conn, inbox, destination, sub_id, start):
    """SUBSCRIBE with `x-stream-offset: start` (RabbitMQ's convention), confirmed."""
    confirmed(inbox, lambda r: conn.subscribe(destination, sub_id, ack="auto",
                                              headers={"receipt": r, "x-stream-offset": start}))


def offsets_and_bodies(inbox, n):
    frames = [inbox.message(f"MESSAGE {i + 1} of {n}") for i in range(n)]
    return [int(f.headers.get("x-stream-offset", "0")) for f in frames], [f.body for f in frames]


def case_resume():
    # Offsets on topic MESSAGEs; a subscriber that left resumes with offset=N: exactly what it
    # missed, in order, then live; `first` and `last` from the history.
    topic = "/topic/py.resume"
    producer, pinbox = connect("resume-producer")
    sub, inbox = connect("resume-sub")
    subscribe(sub, inbox, topic, "live")
    for i in range(3):
        confirmed(pinbox, lambda r, i=i: producer.send(topic, f"m{i}", headers={"receipt": r}))
    offsets, bodies = offsets_and_bodies(inbox, 3)
    check(bodies == ["m0", "m1", "m2"], f"live bodies {bodies}")
    check(offsets == [1, 2, 3], f"live offsets {offsets}")
    sub.disconnect()
    for i in range(3, 8):
        confirmed(pinbox, lambda r, i=i: producer.send(topic, f"m{i}", headers={"receipt": r}))
    back, binbox = connect("resume-sub")
    subscribe_from(back, binbox, topic, "again", f"offset={offsets[-1] + 1}")
    offsets, bodies = offsets_and_bodies(binbox, 5)
    check(bodies == [f"m{i}" for i in range(3, 8)], f"missed bodies {bodies}")
    check(offsets == [4, 5, 6, 7, 8], f"missed offsets {offsets}")
    confirmed(pinbox, lambda r: producer.send(topic, "m8", headers={"receipt": r}))
    offsets, bodies = offsets_and_bodies(binbox, 1)
    check((offsets, bodies) == ([9], ["m8"]), f"live after the seam {offsets} {bodies}")
    binbox.nothing_more("the resumed subscriber")
    first, finbox = connect("resume-first")
    subscribe_from(first, finbox, topic, "first", "first")
    offsets, bodies = offsets_and_bodies(finbox, 9)
    check(offsets == list(range(1, 10)), f"first: offsets {offsets}")
    last, linbox = connect("resume-last")
    subscribe_from(last, linbox, topic, "last", "last")
    offsets, bodies = offsets_and_bodies(linbox, 1)
    check((offsets, bodies) == ([9], ["m8"]), f"last: {offsets} {bodies}")
    linbox.nothing_more("a subscriber from last")
    for conn in (producer, back, first, last):
        conn.disconnect()


CASES = {
    "connect": case_connect,
    "publish-subscribe": case_publish_subscribe,
    "receipt": case_receipt,
    "ack-nack": case_ack_nack,
    "transaction": case_transaction,
    "heart-beats-kept": case_heart_beats_kept,
    "heart-beats-missed": case_heart_beats_missed,
    "auth-refused": case_auth_refused,
    "resume": case_resume,
}


def main():
    sys.exit(1 if stomp_common.run_cases("stomp-py", CASES) else 0)


if __name__ == "__main__":
    main()
