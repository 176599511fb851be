#!/usr/bin/env python3
"""A Python `websockets` subscriber for the compress-once broadcast tests
(crates/wsx-cli/tests/compress_once.rs): it connects to `wsx serve` offering permessage-deflate
(websockets' default offer), joins a chat room or subscribes to a STOMP topic, prints
`ready <Sec-WebSocket-Extensions>` and then checks that it receives COUNT broadcast messages
whose text is `<prefix><i>` padded as the test sends them (i = 0..COUNT-1, in order). Prints
`ok COUNT` and exits 0, or `FAIL <why>` and exits 1.

usage: broadcast_peer.py chat|stomp URL COUNT PREFIX PAD
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


def expected(prefix, i, pad):
    text = f"{prefix}{i}:"
    return text + "x" * max(0, pad - len(text))


async def chat(url, count, prefix, pad):
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "join", "name": "py"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "welcome":
            pass
        print("ready", ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        i = 0
        while i < count:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if event.get("type") != "message":
                continue
            want = expected(prefix, i, pad)
            if event["text"] != want:
                return f"message {i}: got {event['text'][:60]!r}"
            i += 1
    return None


async def stomp(url, count, prefix, pad):
    async with connect(url, subprotocols=["v12.stomp"], max_size=None) as ws:
        await ws.send("CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        answer = await asyncio.wait_for(ws.recv(), 30)
        if not answer.startswith("CONNECTED"):
            return f"CONNECT answered {answer[:60]!r}"
        await ws.send("SUBSCRIBE\nid:py\ndestination:/topic/fanout\nreceipt:r\n\n\0")
        answer = await asyncio.wait_for(ws.recv(), 30)
        if not answer.startswith("RECEIPT"):
            return f"SUBSCRIBE answered {answer[:60]!r}"
        print("ready", ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        i = 0
        while i < count:
            frame = await asyncio.wait_for(ws.recv(), 30)
            if frame in ("\n", "\r\n"):
                continue
            head, _, rest = frame.partition("\n\n")
            lines = head.split("\n")
            if lines[0] != "MESSAGE" or "subscription:py" not in lines:
                return f"frame {i}: {head[:80]!r}"
            body = rest[:-1] if rest.endswith("\0") else None
            want = expected(prefix, i, pad)
            if body != want:
                return f"message {i}: got {(body or '')[:60]!r}"
            i += 1
    return None


def main():
    mode, url, count, prefix, pad = sys.argv[1:6]
    run = chat if mode == "chat" else stomp
    try:
        failure = asyncio.run(run(url, int(count), prefix, int(pad)))
    except Exception as e:  # noqa: BLE001 - any failure is the verdict
        failure = f"{type(e).__name__}: {e}"
    if failure:
        print("FAIL", failure, flush=True)
        sys.exit(1)
    print("ok", count, flush=True)


if __name__ == "__main__":
    main()
