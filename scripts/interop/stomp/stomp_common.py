"""What the stomp.py clients of scripts/interop/stomp share: JWTs for `wsx serve --jwt-secret`,
checks, and a listener that collects what the server sends (stomp_py.py over WebSocket,
stomp_relay_py.py over TCP and WebSocket, stomp_app.py against the embedded-broker example).
"""

import base64
import hashlib
import hmac
import json
import queue
import sys
import threading
import time
import traceback
import uuid

import stomp

WAIT = 5.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(secret, sub, subscribe=("**",), send=("**",)):
    """An HS256 JWT for `sub`, valid ten minutes, allowed the given destination patterns."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": sub, "exp": int(time.time()) + 600,
              "subscribe": list(subscribe), "send": list(send)}
    unsigned = f"{header}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(sig)}"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class Inbox(stomp.ConnectionListener):
    """Collects what the server sends, for the case to await one item at a time."""

    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.connected = queue.Queue()
        self.disconnected = threading.Event()
        self.heartbeats = 0
        self.heartbeat_timeouts = 0

    def on_connected(self, frame):
        self.connected.put(frame)

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.set()

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_heartbeat_timeout(self):
        self.heartbeat_timeouts += 1

    def message(self, what="a MESSAGE"):
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {what}") from None

    def receipt(self, expected):
        deadline = time.monotonic() + WAIT
        while True:
            try:
                got = self.receipts.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for RECEIPT {expected}") from None
            if got == expected:
                return

    def error(self):
        try:
            return self.errors.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("timed out waiting for an ERROR frame") from None

    def nothing_more(self, who):
        """No further MESSAGE arrives for `who` within 0.3 s."""
        try:
            extra = self.messages.get(timeout=0.3)
        except queue.Empty:
            return
        raise AssertionError(f"{who} got an extra MESSAGE: {extra.headers} {extra.body!r}")


def confirmed(inbox, send):
    """Call `send(receipt)` and wait for that receipt."""
    receipt = f"r-{uuid.uuid4().hex[:8]}"
    send(receipt)
    inbox.receipt(receipt)


def subscribe(conn, inbox, destination, sub_id, ack="auto"):
    confirmed(inbox, lambda r: conn.subscribe(destination, sub_id, ack=ack, headers={"receipt": r}))


def run_cases(prefix, cases, label=""):
    """Run `cases` (name -> function) in order, printing `PREFIX: <name>[ (label)]: ok` or
    `...: FAIL (why)` for each; returns how many failed."""
    failed = 0
    suffix = f" ({label})" if label else ""
    for name, case in cases.items():
        try:
            case()
            print(f"{prefix}: {name}{suffix}: ok", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            reason = str(error) or type(error).__name__
            print(f"{prefix}: {name}{suffix}: FAIL ({reason})", flush=True)
            traceback.print_exc(file=sys.stderr)
    return failed
