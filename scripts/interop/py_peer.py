#!/usr/bin/env python3
"""Python `websockets` peer for the wsx interop tests (scripts/test.sh step "interop").

Two modes:

  py_peer.py client URL --variant V   the websockets client sends the vectors of vectors.md to
                                       a wsx echo server, checks every echo, the negotiated
                                       permessage-deflate parameters, a ping and the close.
  py_peer.py server --port P --variant V
                                       a websockets echo server on 127.0.0.1:P for the wsx
                                       interop_client; runs until terminated.

The client prints what it checks, then a last line "OK: ..." and exits 0, or "FAIL: why" and
exits 1; scripts/interop/interop.sh turns that into the "interop: ..." line.
"""

import argparse
import asyncio
import re
import sys

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

# Every wait is bounded, so a silent peer fails the sub-test instead of hanging it.
STEP_TIMEOUT = 15.0
MAX_SIZE = 8 * 1024 * 1024


class Fail(Exception):
    """A check failed: the message says what and why."""


# ---------------------------------------------------------------------------
# vectors (see vectors.md)

TEXT = "hello wsx — héllo wörld ✓ 🚀"
BINARY = bytes(range(256)) * 2 + bytes((i * 7919 + 13) % 251 for i in range(1000))
FRAG_TEXT = ["x" * 2000, "frag-one ", "", "frag-two", " end ✓"]
FRAG_BINARY = [(BINARY * 3)[:3000], b"", BINARY[:10]]
BIG_LEN = 1 << 20


def big_text():
    out, n, i = [], 0, 0
    while n < BIG_LEN:
        line = '{"seq":%d,"msg":"interop payload"}\n' % i
        out.append(line)
        n += len(line)
        i += 1
    return "".join(out)[:BIG_LEN]


def repeat_text(i):
    body = ('{"user":"interop","room":"wsx","text":"the same words again and again"},' * 40)
    return ("%d:" % i + body)[:2048]


# ---------------------------------------------------------------------------
# client


class CountingConnection(ClientConnection):
    """A ClientConnection that counts the bytes it reads from the socket."""

    bytes_read = 0

    def data_received(self, data):
        self.bytes_read += len(data)
        super().data_received(data)


def describe(msg):
    kind = "text" if isinstance(msg, str) else "binary"
    return "%s of %d %s" % (kind, len(msg), "chars" if kind == "text" else "bytes")


async def roundtrip(ws, name, msg, expect=None):
    """Send msg (a message or a list of fragments), expect its echo."""
    expect = msg if expect is None else expect
    await asyncio.wait_for(ws.send(msg), STEP_TIMEOUT)
    try:
        got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        raise Fail("%s: no echo within %.0f s" % (name, STEP_TIMEOUT)) from None
    except ConnectionClosed as e:
        raise Fail("%s: connection closed instead of an echo: %s" % (name, e)) from None
    if type(got) is not type(expect) or got != expect:
        raise Fail("%s: echo differs: sent %s, got %s" % (name, describe(expect), describe(got)))
    print("  %s: echoed (%s)" % (name, describe(got)))


def offer_for(variant):
    """The client extensions (None: websockets' default) and compression setting."""
    if variant == "deflate-default":
        return None, "deflate"
    if variant == "deflate-client-bits-10":
        return [ClientPerMessageDeflateFactory(client_max_window_bits=10)], "deflate"
    if variant == "deflate-server-nct":
        return [ClientPerMessageDeflateFactory(server_no_context_takeover=True)], "deflate"
    if variant == "deflate-server-bits-10":
        return [ClientPerMessageDeflateFactory(server_max_window_bits=10)], "deflate"
    if variant in ("no-deflate-client",):
        return None, None
    if variant == "no-deflate-server":  # we offer; the server declines
        return None, "deflate"
    raise SystemExit("unknown client variant %r" % variant)


def parse_pmd(header):
    """The permessage-deflate parameters of a response header: {name: value or True}."""
    if header is None:
        return None
    items = [i.strip() for i in header.split(",") if i.strip()]
    if len(items) != 1:
        raise Fail("expected one extension in Sec-WebSocket-Extensions, got %r" % header)
    parts = [p.strip() for p in items[0].split(";")]
    if parts[0].lower() != "permessage-deflate":
        raise Fail("unexpected extension %r" % parts[0])
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"') if v else True
    return params


def check_negotiation(variant, header):
    params = parse_pmd(header)
    want_deflate = not variant.startswith("no-deflate")
    if not want_deflate:
        if params is not None:
            raise Fail("expected no extension, the server answered %r" % header)
        return False
    if params is None:
        raise Fail("expected permessage-deflate, the server answered no Sec-WebSocket-Extensions")
    if variant == "deflate-client-bits-10":
        bits = params.get("client_max_window_bits")
        if bits is True or bits is None or not re.fullmatch(r"\d+", bits) or not 8 <= int(bits) <= 10:
            raise Fail("offered client_max_window_bits=10, the server answered %r" % header)
    if variant == "deflate-server-bits-10":
        bits = params.get("server_max_window_bits")
        if bits is True or bits is None or not re.fullmatch(r"\d+", bits) or not 8 <= int(bits) <= 10:
            raise Fail("asked for server_max_window_bits=10, the server answered %r" % header)
    if variant == "deflate-server-nct" and "server_no_context_takeover" not in params:
        raise Fail("asked for server_no_context_takeover, the server answered %r" % header)
    return True


async def run_client(url, variant):
    extensions, compression = offer_for(variant)
    kwargs = dict(
        compression=compression,
        max_size=MAX_SIZE,
        ping_interval=None,
        open_timeout=STEP_TIMEOUT,
        close_timeout=STEP_TIMEOUT,
        create_connection=CountingConnection,
    )
    if extensions is not None:
        kwargs["extensions"] = extensions
    async with connect(url, **kwargs) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        print("  negotiated: %s" % (header or "(none)"))
        deflate = check_negotiation(variant, header)
        active = [e.name for e in ws.protocol.extensions]
        if deflate != ("permessage-deflate" in active):
            raise Fail("websockets' active extensions %r disagree with the header %r" % (active, header))

        await roundtrip(ws, "text", TEXT)
        await roundtrip(ws, "binary", BINARY)
        await roundtrip(ws, "empty-text", "")
        await roundtrip(ws, "empty-binary", b"")
        await roundtrip(ws, "fragmented-text", list(FRAG_TEXT), "".join(FRAG_TEXT))
        await roundtrip(ws, "fragmented-binary", list(FRAG_BINARY), b"".join(FRAG_BINARY))

        before = ws.bytes_read
        await roundtrip(ws, "big-text", big_text())
        wire = ws.bytes_read - before
        print("  big-text: the echo took %d bytes on the wire" % wire)
        if deflate and wire >= BIG_LEN // 4:
            raise Fail("big-text: deflate negotiated but the 1 MiB echo took %d bytes on the wire "
                       "(the server did not compress it)" % wire)
        if not deflate and wire < BIG_LEN:
            raise Fail("big-text: no deflate but the echo took only %d bytes" % wire)

        for i in range(5):
            await roundtrip(ws, "repeat-%d" % i, repeat_text(i))

        try:
            pong = await asyncio.wait_for(ws.ping(b"interop-ping"), STEP_TIMEOUT)
            await asyncio.wait_for(pong, STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise Fail("ping: no pong within %.0f s" % STEP_TIMEOUT) from None
        print("  ping: pong received")

        await asyncio.wait_for(ws.close(4000, "interop done"), STEP_TIMEOUT + 5)
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            raise Fail("close: no close frame came back (close code %s)" % ws.close_code)
        if rcvd.code != 4000:
            raise Fail("close: sent 4000, the server answered %d %r" % (rcvd.code, rcvd.reason))
        print("  close: the server answered %d %r" % (rcvd.code, rcvd.reason))
        return "negotiated: %s" % (header or "none")


# ---------------------------------------------------------------------------
# server


def server_extensions(variant):
    """The server's extensions (None: websockets' default) and compression setting."""
    if variant == "deflate-default":
        return None, "deflate"
    if variant == "deflate-server-nct":
        return [ServerPerMessageDeflateFactory(server_no_context_takeover=True)], "deflate"
    if variant == "deflate-client-bits-10":
        return [ServerPerMessageDeflateFactory(client_max_window_bits=10)], "deflate"
    if variant == "no-deflate-server":
        return None, None
    raise SystemExit("unknown server variant %r" % variant)


async def echo(ws):
    print("connection: %s" % ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosed as e:
        print("connection closed: %s" % e, flush=True)
    print("closed: code %s" % ws.close_code, flush=True)


async def run_server(port, variant):
    extensions, compression = server_extensions(variant)
    kwargs = dict(compression=compression, max_size=MAX_SIZE, ping_interval=None)
    if extensions is not None:
        kwargs["extensions"] = extensions
    async with serve(echo, "127.0.0.1", port, **kwargs):
        print("websockets %s echo server (%s) on 127.0.0.1:%d" % (websockets_version(), variant, port),
              flush=True)
        await asyncio.Future()


def websockets_version():
    import websockets

    return websockets.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("url")
    c.add_argument("--variant", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--variant", required=True)
    args = ap.parse_args()

    if args.mode == "server":
        try:
            asyncio.run(run_server(args.port, args.variant))
        except KeyboardInterrupt:
            pass
        return 0

    print("websockets %s client (%s) -> %s" % (websockets_version(), args.variant, args.url))
    try:
        summary = asyncio.run(run_client(args.url, args.variant))
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    except Exception as e:  # the peer library's own error: report it as it is
        print("FAIL: %s: %s" % (type(e).__name__, e))
        return 1
    print("OK: %s" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
