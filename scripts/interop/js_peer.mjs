#!/usr/bin/env node
// Node `ws` peer for the wsx interop tests (scripts/test.sh step "interop").
//
// Two modes:
//
//   node js_peer.mjs client URL --variant V   the ws client sends the vectors of vectors.md to a
//                                             wsx echo server, checks every echo, the negotiated
//                                             permessage-deflate parameters, a ping and the close.
//   node js_peer.mjs server --port P --variant V
//                                             a ws echo server on 127.0.0.1:P for the wsx
//                                             interop_client; runs until terminated.
//
// The client prints what it checks, then a last line "OK: ..." and exits 0, or "FAIL: why" and
// exits 1; scripts/interop/interop.sh turns that into the "interop: ..." line.

import net from 'node:net';
import { createRequire } from 'node:module';
import WebSocket, { WebSocketServer } from 'ws';

const require = createRequire(import.meta.url);
const WS_VERSION = require('ws/package.json').version;

// Every wait is bounded, so a silent peer fails the sub-test instead of hanging it.
const STEP_TIMEOUT_MS = 15000;
const MAX_PAYLOAD = 8 * 1024 * 1024;

class Fail extends Error {}

// ---------------------------------------------------------------------------
// vectors (see vectors.md)

const TEXT = 'hello wsx — héllo wörld ✓ 🚀';
const BINARY = (() => {
  const b = Buffer.alloc(512 + 1000);
  for (let i = 0; i < 512; i++) b[i] = i % 256;
  for (let i = 0; i < 1000; i++) b[512 + i] = (i * 7919 + 13) % 251;
  return b;
})();
const FRAG_TEXT = ['x'.repeat(2000), 'frag-one ', '', 'frag-two', ' end ✓'];
const FRAG_BINARY = [Buffer.concat([BINARY, BINARY, BINARY]).subarray(0, 3000), Buffer.alloc(0), BINARY.subarray(0, 10)];
const BIG_LEN = 1 << 20;

function bigText() {
  const out = [];
  let n = 0;
  for (let i = 0; n < BIG_LEN; i++) {
    const line = `{"seq":${i},"msg":"interop payload"}\n`;
    out.push(line);
    n += line.length;
  }
  return out.join('').slice(0, BIG_LEN);
}

function repeatText(i) {
  return (`${i}:` + '{"user":"interop","room":"wsx","text":"the same words again and again"},'.repeat(40)).slice(0, 2048);
}

// ---------------------------------------------------------------------------
// client

// Messages arrive into a queue; next() waits for one, bounded.
class Inbox {
  constructor(ws) {
    this.items = [];
    this.waiters = [];
    ws.on('message', (data, isBinary) => this.push({ data, isBinary }));
    ws.on('pong', (data) => this.push({ pong: data }));
    ws.on('close', (code, reason) => this.push({ close: { code, reason: reason.toString() } }));
    ws.on('error', (err) => this.push({ error: err }));
  }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.items.push(item);
  }

  next(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Fail(`${what}: nothing came back within ${STEP_TIMEOUT_MS / 1000} s`));
      }, STEP_TIMEOUT_MS);
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      this.waiters.push(waiter);
    });
  }
}

function describe(buf, isBinary) {
  return isBinary ? `binary of ${buf.length} bytes` : `text of ${buf.length} bytes`;
}

function sendAsync(ws, data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
}

// Send `parts` (one message, or fragments when there are several) and expect the echo.
async function roundtrip(ws, inbox, name, parts, isBinary) {
  const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  const expect = Buffer.concat(bufs);
  for (let i = 0; i < bufs.length; i++) {
    await sendAsync(ws, bufs[i], { binary: isBinary, fin: i === bufs.length - 1 });
  }
  const got = await inbox.next(name);
  if (got.error) throw new Fail(`${name}: ${got.error.message}`);
  if (got.close) throw new Fail(`${name}: the connection closed (${got.close.code} ${got.close.reason}) instead of an echo`);
  if (got.pong) throw new Fail(`${name}: an unexpected pong instead of the echo`);
  if (got.isBinary !== isBinary || !expect.equals(got.data)) {
    throw new Fail(`${name}: echo differs: sent ${describe(expect, isBinary)}, got ${describe(got.data, got.isBinary)}`);
  }
  console.log(`  ${name}: echoed (${describe(got.data, got.isBinary)})`);
}

function clientOptions(variant) {
  switch (variant) {
    case 'deflate-default':
    case 'no-deflate-server': // we offer; the server declines
      return { perMessageDeflate: true };
    case 'deflate-client-bits-10':
      return { perMessageDeflate: { clientMaxWindowBits: 10 } };
    case 'deflate-server-nct':
      return { perMessageDeflate: { serverNoContextTakeover: true } };
    case 'deflate-server-bits-10':
      return { perMessageDeflate: { serverMaxWindowBits: 10 } };
    case 'no-deflate-client':
      return { perMessageDeflate: false };
    default:
      throw new Error(`unknown client variant ${variant}`);
  }
}

function parsePmd(header) {
  if (header === undefined) return null;
  const items = header.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length !== 1) throw new Fail(`expected one extension in Sec-WebSocket-Extensions, got ${JSON.stringify(header)}`);
  const parts = items[0].split(';').map((s) => s.trim());
  if (parts[0].toLowerCase() !== 'permessage-deflate') throw new Fail(`unexpected extension ${parts[0]}`);
  const params = {};
  for (const p of parts.slice(1)) {
    const [k, v] = p.split('=');
    params[k.trim().toLowerCase()] = v === undefined ? true : v.trim().replace(/^"|"$/g, '');
  }
  return params;
}

function checkNegotiation(variant, header) {
  const params = parsePmd(header);
  if (variant.startsWith('no-deflate')) {
    if (params !== null) throw new Fail(`expected no extension, the server answered ${JSON.stringify(header)}`);
    return false;
  }
  if (params === null) throw new Fail('expected permessage-deflate, the server answered no Sec-WebSocket-Extensions');
  if (variant === 'deflate-client-bits-10') {
    const bits = Number(params.client_max_window_bits);
    if (!(bits >= 8 && bits <= 10)) throw new Fail(`offered client_max_window_bits=10, the server answered ${JSON.stringify(header)}`);
  }
  if (variant === 'deflate-server-bits-10') {
    const bits = Number(params.server_max_window_bits);
    if (!(bits >= 8 && bits <= 10)) throw new Fail(`asked for server_max_window_bits=10, the server answered ${JSON.stringify(header)}`);
  }
  if (variant === 'deflate-server-nct' && !('server_no_context_takeover' in params)) {
    throw new Fail(`asked for server_no_context_takeover, the server answered ${JSON.stringify(header)}`);
  }
  return true;
}

async function runClient(url, variant) {
  let sock = null; // the TCP socket, for its byte counters
  const ws = new WebSocket(url, {
    ...clientOptions(variant),
    maxPayload: MAX_PAYLOAD,
    handshakeTimeout: STEP_TIMEOUT_MS,
    createConnection: (opts) => {
      sock = net.connect(opts);
      return sock;
    },
  });
  const inbox = new Inbox(ws);
  let header;
  ws.on('upgrade', (res) => {
    header = res.headers['sec-websocket-extensions'];
  });
  ws.on('unexpected-response', (req, res) => inbox.push({ error: new Fail(`handshake answered HTTP ${res.statusCode}`) }));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  console.log(`  negotiated: ${header ?? '(none)'}`);
  const deflate = checkNegotiation(variant, header);
  if (deflate !== ws.extensions.includes('permessage-deflate')) {
    throw new Fail(`ws' extensions ${JSON.stringify(ws.extensions)} disagree with the header ${JSON.stringify(header)}`);
  }

  await roundtrip(ws, inbox, 'text', [TEXT], false);
  await roundtrip(ws, inbox, 'binary', [BINARY], true);
  await roundtrip(ws, inbox, 'empty-text', [''], false);
  await roundtrip(ws, inbox, 'empty-binary', [Buffer.alloc(0)], true);
  // As bytes, with the 3-byte UTF-8 of the final '✓' split across the last two frames.
  const fragText = Buffer.from(FRAG_TEXT.join(''), 'utf8');
  const cuts = [];
  let at = 0;
  for (const f of FRAG_TEXT.slice(0, -1)) {
    at += Buffer.byteLength(f, 'utf8');
    cuts.push(at);
  }
  cuts.push(fragText.length - 2); // inside the '✓'
  const textFrags = [];
  let prev = 0;
  for (const c of [...cuts, fragText.length]) {
    textFrags.push(fragText.subarray(prev, c));
    prev = c;
  }
  await roundtrip(ws, inbox, 'fragmented-text', textFrags, false);
  await roundtrip(ws, inbox, 'fragmented-binary', FRAG_BINARY, true);

  const big = bigText();
  const read0 = sock.bytesRead;
  const written0 = sock.bytesWritten;
  await roundtrip(ws, inbox, 'big-text', [big], false);
  const read = sock.bytesRead - read0;
  const written = sock.bytesWritten - written0;
  console.log(`  big-text: ${written} bytes sent, the echo took ${read} bytes on the wire`);
  if (deflate && read >= BIG_LEN / 4) {
    throw new Fail(`big-text: deflate negotiated but the 1 MiB echo took ${read} bytes on the wire (the server did not compress it)`);
  }
  if (deflate && written >= BIG_LEN / 4) {
    throw new Fail(`big-text: deflate negotiated but ws sent ${written} bytes (the test did not exercise the server's inflater)`);
  }
  if (!deflate && read < BIG_LEN) throw new Fail(`big-text: no deflate but the echo took only ${read} bytes`);

  for (let i = 0; i < 5; i++) await roundtrip(ws, inbox, `repeat-${i}`, [repeatText(i)], false);

  ws.ping(Buffer.from('interop-ping'));
  const pong = await inbox.next('ping');
  if (!pong.pong) throw new Fail(`ping: expected a pong, got ${JSON.stringify(Object.keys(pong))}`);
  if (pong.pong.toString() !== 'interop-ping') throw new Fail(`ping: the pong carried ${JSON.stringify(pong.pong.toString())}`);
  console.log('  ping: pong received');

  ws.close(4000, 'interop done');
  const closed = await inbox.next('close');
  if (closed.error) throw new Fail(`close: ${closed.error.message}`);
  if (!closed.close) throw new Fail(`close: expected the close, got ${JSON.stringify(Object.keys(closed))}`);
  if (closed.close.code !== 4000) {
    throw new Fail(`close: sent 4000, the server answered ${closed.close.code} ${JSON.stringify(closed.close.reason)}`);
  }
  console.log(`  close: the server answered ${closed.close.code} ${JSON.stringify(closed.close.reason)}`);
  return `negotiated: ${header ?? 'none'}`;
}

// ---------------------------------------------------------------------------
// server

function serverDeflate(variant) {
  switch (variant) {
    case 'deflate-default':
      return true;
    case 'deflate-server-nct':
      return { serverNoContextTakeover: true };
    case 'deflate-client-bits-10':
      return { clientMaxWindowBits: 10 };
    case 'no-deflate-server':
      return false;
    default:
      throw new Error(`unknown server variant ${variant}`);
  }
}

function runServer(port, variant) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port,
    perMessageDeflate: serverDeflate(variant),
    maxPayload: MAX_PAYLOAD,
  });
  wss.on('listening', () => console.log(`ws ${WS_VERSION} echo server (${variant}) on 127.0.0.1:${port}`));
  wss.on('headers', (headers) => console.log(`response: ${headers.filter((h) => /^sec-websocket-extensions/i.test(h)).join(' ') || '(no extension)'}`));
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code, reason) => console.log(`closed: ${code} ${reason}`));
    ws.on('error', (err) => console.log(`error: ${err.message}`));
  });
  const stop = () => wss.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ---------------------------------------------------------------------------

function usage() {
  console.error('usage: node js_peer.mjs client URL --variant V | server --port P --variant V');
  process.exit(2);
}

function flag(args, name) {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) usage();
  return args[i + 1];
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'server') {
    runServer(Number(flag(rest, '--port')), flag(rest, '--variant'));
    return;
  }
  if (mode !== 'client' || rest.length < 1) usage();
  const url = rest[0];
  const variant = flag(rest, '--variant');
  console.log(`ws ${WS_VERSION} client (${variant}) -> ${url}`);
  try {
    const summary = await runClient(url, variant);
    console.log(`OK: ${summary}`);
    process.exit(0);
  } catch (e) {
    console.log(`FAIL: ${e instanceof Fail ? e.message : `${e.name}: ${e.message}`}`);
    process.exit(1);
  }
}

main();
