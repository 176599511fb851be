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

import sys

import stomp

import stomp_common
from stomp_common import WAIT, Inbox, check, confirmed, subscribe

HOST, PORT = sys.argv[1], int(sys.argv[2])


def connect(login):
    """A connected stomp.py 1.2 client over WebSocket as `login`, and its listener."""
    conn = stomp.WSConnection([(HOST, PORT)], ws_path="/stomp", heartbeats=(0, 0),
                              reconnect_attempts_max=1, timeout=WAIT)
    inbox = Inbox()
    conn.set_listener("inbox", inbox)
    conn.connect(login, "any passcode", wait=True, headers={"host": "/"})
    return conn, inbox


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
    sys.exit(1 if stomp_common.run_cases("stomp-app", CASES) else 0)


if __name__ == "__main__":
    main()
