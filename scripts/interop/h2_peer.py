#!/usr/bin/env python3
"""A raw RFC 8441 client (WebSocket over HTTP/2) written with Python's `h2`, for
crates/wsx/tests/http2.rs: one HTTP/2 connection (h2c, prior knowledge) to the wsx server at
HOST PORT, on which it

- reads the server's SETTINGS (SETTINGS_ENABLE_CONNECT_PROTOCOL),
- opens /echo with an extended CONNECT offering permessage-deflate, sends a masked text frame
  in DATA frames, reads the echo (inflating it if RSV1 is set), closes with 1000 and waits for
  the close echo and END_STREAM,
- asks for /nowhere (404), for /echo with sec-websocket-version 8 (400), and a plain GET (400),
- opens /echo again and resets it (RST_STREAM CANCEL).

Each outcome is printed as one JSON line; the Rust test checks them.
"""
import json
import os
import socket
import struct
import sys
import zlib

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings


def out(**fields):
    print(json.dumps(fields), flush=True)


def ws_frame(opcode, payload):
    """A masked client frame (FIN set)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def parse_frame(buf):
    """(fin, rsv1, opcode, payload, rest) for a complete server frame at the start of buf."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise ValueError("a server frame must not be masked")
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < pos + n:
        return None
    return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, buf[pos : pos + n], buf[pos + n :]


class Peer:
    def __init__(self, host, port):
        self.authority = f"{host}:{port}"
        self.sock = socket.create_connection((host, port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()
        self.events = []

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                # Give the window back as the data is taken.
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.events.append(event)
        self.flush()

    def wait(self, kind, stream_id=None):
        while True:
            for i, event in enumerate(self.events):
                if isinstance(event, kind) and (
                    stream_id is None or getattr(event, "stream_id", None) == stream_id
                ):
                    return self.events.pop(i)
            self.pump()

    def request(self, path, method="CONNECT", version="13", extensions=None, end_stream=False):
        headers = [(":method", method)]
        if method == "CONNECT":
            headers.append((":protocol", "websocket"))
        headers += [
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority),
            ("origin", "https://app.example"),
            ("sec-websocket-version", version),
        ]
        if extensions:
            headers.append(("sec-websocket-extensions", extensions))
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        response = self.wait(h2.events.ResponseReceived, stream_id)
        return stream_id, dict(response.headers)

    def read_message(self, stream_id, buf):
        """The next complete server frame on the stream."""
        while True:
            frame = parse_frame(buf)
            if frame:
                return frame
            event = self.wait(h2.events.DataReceived, stream_id)
            buf += event.data


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    peer = Peer(host, port)
    settings = peer.wait(h2.events.RemoteSettingsChanged)
    enable = settings.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
    out(check="settings", enable_connect_protocol=enable.new_value if enable else None)

    # Echo, with permessage-deflate offered.
    sid, headers = peer.request("/echo", extensions="permessage-deflate")
    extensions = headers.get("sec-websocket-extensions", "")
    # Long enough for the server to compress its echo.
    text = "hello over HTTP/2 " * 64
    peer.conn.send_data(sid, ws_frame(0x1, text.encode()))
    peer.flush()
    fin, rsv1, opcode, payload, rest = peer.read_message(sid, b"")
    if rsv1:
        payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    peer.conn.send_data(sid, ws_frame(0x8, struct.pack("!H", 1000) + b"done"))
    peer.flush()
    _, _, close_opcode, close_payload, _ = peer.read_message(sid, rest)
    peer.wait(h2.events.StreamEnded, sid)
    try:
        peer.conn.end_stream(sid)
        peer.flush()
    except h2.exceptions.StreamClosedError:
        # The server, done with the stream, may reset it (NO_ERROR) before our END_STREAM.
        pass
    out(
        check="echo",
        status=headers[":status"],
        extensions=extensions,
        compressed=rsv1,
        opcode=opcode,
        reply_matches=payload.decode() == text,
        close_opcode=close_opcode,
        close_code=struct.unpack("!H", close_payload[:2])[0],
    )

    # Refusals.
    _, headers = peer.request("/nowhere")
    out(check="not found", status=headers[":status"])
    _, headers = peer.request("/echo", version="8")
    out(
        check="wrong version",
        status=headers[":status"],
        version=headers.get("sec-websocket-version"),
    )
    _, headers = peer.request("/echo", method="GET", end_stream=True)
    out(check="plain GET", status=headers[":status"])

    # A stream reset by the client.
    sid, headers = peer.request("/echo")
    peer.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    peer.flush()
    out(check="reset", status=headers[":status"])

    peer.conn.close_connection()
    peer.flush()
    peer.sock.close()


if __name__ == "__main__":
    main()
