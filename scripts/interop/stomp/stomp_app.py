"""A real STOMP client against the embedded-broker example, crates/wsx-broker/examples/axum_app.rs:
Python's stomp.py 8 over websocket-client (its `WSConnection`).

Run by scripts/interop/stomp/stomp.sh (step "stomp" of scripts/test.sh) against

    cargo run -p wsx-broker --features axum --example axum_app -- 127.0.0.1:PORT

    python stomp_app.py 127.0.0.1 PORT

The example takes any CONNECT `login` as the principal; a SEND to `/app/greet` whose body is a
name makes it publish `Hello, NAME!` to `/topic/greetings` and send `welcome NAME` to the
sender's `/user/queue/replies`.

Prints one line per case, `stomp-app: <case>: ok` or `stomp-app: <case>: FAIL (why)`, and exits 1
if any case failed.
"""

import queue
import sys
import traceback
import uuid

import stomp

HOST, PORT = sys.argv[1], int(sys.argv[2])
WAIT = 5.0


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class Inbox(stomp.ConnectionListener):
    """Collects what the server sends, for the case to await one item at a time."""

    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def message(self, what="a MESSAGE"):
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {what}") from None

    def receipt(self, expected):
        try:
            got = self.receipts.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"timed out waiting for RECEIPT {expected}") from None
        check(got == expected, f"RECEIPT {got}, expected {expected}")

    def error(self):
        try:
            return self.errors.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("timed out waiting for an ERROR frame") from None

    def nothing_more(self, who):
        try:
            extra = self.messages.get(timeout=0.3)
        except queue.Empty:
            return
        raise AssertionError(f"{who} got an extra MESSAGE: {extra.headers} {extra.body!r}")


def connect(login):
    """A connected stomp.py 1.2 client over WebSocket as `login`, and its listener."""
    conn = stomp.WSConnection([(HOST, PORT)], ws_path="/stomp", heartbeats=(0, 0),
                              reconnect_attempts_max=1, timeout=WAIT)
    inbox = Inbox()
    conn.set_listener("inbox", inbox)
    conn.connect(login, "any passcode", wait=True, headers={"host": "/"})
    return conn, inbox


def confirmed(inbox, send):
    """Call `send(receipt)` and wait for that receipt."""
    receipt = f"r-{uuid.uuid4().hex[:8]}"
    send(receipt)
    inbox.receipt(receipt)


def subscribe(conn, inbox, destination, sub_id):
    confirmed(inbox, lambda r: conn.subscribe(destination, sub_id, headers={"receipt": r}))


def case_greet():
    alice, inbox = connect("alice")
    bob, bob_inbox = connect("bob")
    for conn, box in ((alice, inbox), (bob, bob_inbox)):
        subscribe(conn, box, "/topic/greetings", "greetings")
        subscribe(conn, box, "/user/queue/replies", "replies")
    confirmed(inbox, lambda r: alice.send("/app/greet", "alice", headers={"receipt": r}))
    got = {}
    for _ in range(2):
        frame = inbox.message()
        got[frame.headers.get("destination")] = frame.body
    check(got.get("/topic/greetings") == "Hello, alice!", f"alice got {got}")
    check(got.get("/user/queue/replies") == "welcome alice", f"alice got {got}")
    greeting = bob_inbox.message("bob's greeting")
    check(greeting.body == "Hello, alice!", f"bob got {greeting.body!r}")
    bob_inbox.nothing_more("bob")
    inbox.nothing_more("alice")
    alice.disconnect()
    bob.disconnect()


def case_unknown_app_destination():
    conn, inbox = connect("carol")
    conn.send("/app/nowhere", "x")
    error = inbox.error()
    message = error.headers.get("message", "")
    check("no handler for /app/nowhere" in message, f"ERROR message {message!r}")


CASES = {
    "app-greet": case_greet,
    "app-unknown-destination": case_unknown_app_destination,
}


def main():
    failed = 0
    for name, case in CASES.items():
        try:
            case()
            print(f"stomp-app: {name}: ok", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            reason = str(error) or type(error).__name__
            print(f"stomp-app: {name}: FAIL ({reason})", flush=True)
            traceback.print_exc(file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
