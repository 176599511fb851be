// A real STOMP client against `wsx serve`'s /stomp endpoint: @stomp/stompjs 7 over the `ws`
// package (Node has no WebSocket of its own before 22). Run by scripts/interop/stomp/stomp.sh
// (step "stomp interop" of scripts/test.sh) against a server started with
//   wsx serve --jwt-secret SECRET --stomp-heartbeat 500,500
//
//   node stomp_client.mjs ws://127.0.0.1:PORT/stomp SECRET
//
// Prints one line per case, `stomp-interop: <case>: ok` or `stomp-interop: <case>: FAIL (why)`,
// and exits 1 if any case failed.

import { createHmac } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

// stompjs opens `new WebSocket(brokerURL, ['v10.stomp', 'v11.stomp', 'v12.stomp'])`.
Object.assign(globalThis, { WebSocket });

const [url, secret] = process.argv.slice(2);
if (!url || !secret) {
  console.error('usage: node stomp_client.mjs ws://HOST:PORT/stomp JWT_SECRET');
  process.exit(2);
}

/** An HS256 JWT, made by hand (header.claims.signature, base64url). */
function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** A token for `sub`, valid ten minutes, allowed the given destination patterns. */
function token(sub, subscribe = ['**'], send = ['**']) {
  return jwt({ sub, exp: Math.floor(Date.now() / 1000) + 600, subscribe, send });
}

/** Resolves with the value of `promise`, or rejects after `ms`. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A deferred value: `{ promise, resolve, reject }`. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Connect a stompjs client; resolves with `{ client, connected }` once CONNECTED arrives.
 * Rejects on an ERROR frame or a close before it.
 */
async function connect(options = {}) {
  const connected = deferred();
  const client = new Client({
    brokerURL: options.url ?? url,
    connectHeaders: options.connectHeaders ?? { Authorization: `Bearer ${token('interop')}` },
    reconnectDelay: 0, // one attempt: a failure is a failure
    heartbeatIncoming: options.heartbeatIncoming ?? 10000,
    heartbeatOutgoing: options.heartbeatOutgoing ?? 10000,
    onConnect: (frame) => connected.resolve(frame),
    onStompError: (frame) =>
      connected.reject(new Error(`ERROR frame: ${frame.headers.message ?? '(no message)'}`)),
    onWebSocketClose: (event) =>
      connected.reject(new Error(`WebSocket closed (${event.code}) before CONNECTED`)),
    ...options.callbacks,
  });
  client.activate();
  try {
    const frame = await within(5000, 'CONNECTED', connected.promise);
    return { client, connected: frame };
  } catch (error) {
    await client.deactivate();
    throw error;
  }
}

/** Publish with a receipt and resolve once the RECEIPT arrives. */
function publishConfirmed(client, params) {
  const receipt = `r-${Math.random().toString(36).slice(2)}`;
  const done = deferred();
  client.watchForReceipt(receipt, (frame) => done.resolve(frame));
  client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt } });
  return within(5000, `RECEIPT ${receipt}`, done.promise);
}

/** Subscribe with a receipt; resolves with the subscription once the server confirmed it. */
async function subscribeConfirmed(client, destination, onMessage, headers = {}) {
  const receipt = `s-${Math.random().toString(36).slice(2)}`;
  const done = deferred();
  client.watchForReceipt(receipt, () => done.resolve());
  const subscription = client.subscribe(destination, onMessage, { ...headers, receipt });
  await within(5000, `RECEIPT ${receipt}`, done.promise);
  return subscription;
}

/** A queue of received messages, awaited one at a time. */
function inbox() {
  const messages = [];
  const waiters = [];
  return {
    push(message) {
      const waiter = waiters.shift();
      if (waiter) waiter(message);
      else messages.push(message);
    },
    next(what = 'a MESSAGE') {
      const message = messages.shift();
      if (message) return Promise.resolve(message);
      return within(5000, what, new Promise((resolve) => waiters.push(resolve)));
    },
  };
}

/** Wait for an ERROR frame then the close, on a client that must be refused or failed. */
function errorThenClose() {
  const error = deferred();
  const closed = deferred();
  return {
    callbacks: {
      onConnect: () => error.reject(new Error('CONNECTED, expected an ERROR')),
      onStompError: (frame) => error.resolve(frame),
      onWebSocketClose: (event) => closed.resolve(event),
    },
    error: () => within(5000, 'an ERROR frame', error.promise),
    closed: () => within(5000, 'the close', closed.promise),
  };
}

// ---------------------------------------------------------------------------------------------
// cases

const cases = {
  // CONNECT with a JWT in the Authorization header: STOMP 1.2 and the v12.stomp subprotocol.
  async connect() {
    const { client, connected } = await connect({
      connectHeaders: { Authorization: `Bearer ${token('alice')}` },
    });
    check(connected.headers.version === '1.2', `version ${connected.headers.version}`);
    check(connected.headers['user-id'] === 'alice', `user-id ${connected.headers['user-id']}`);
    check(client.webSocket?.protocol === 'v12.stomp', `subprotocol ${client.webSocket?.protocol}`);
    await client.deactivate();
  },

  // SUBSCRIBE, then SEND to the topic: the message comes back with its headers and body.
  async 'publish-subscribe'() {
    const { client } = await connect();
    const received = inbox();
    await subscribeConfirmed(client, '/topic/interop.chat', (m) => received.push(m));
    client.publish({
      destination: '/topic/interop.chat',
      body: 'héllo: wörld\nline 2',
      // Escaped on the wire (`\c`, `\\`, `\n`). Not a backslash before c, n or r: stompjs
      // unescapes with sequential replaces and would read `\\c` as `\:`.
      headers: { 'content-type': 'text/plain', 'x-trace': 'a:b\\d', 'x-lines': 'one\ntwo' },
    });
    const message = await received.next();
    check(message.body === 'héllo: wörld\nline 2', `body ${JSON.stringify(message.body)}`);
    check(message.headers['x-trace'] === 'a:b\\d', `x-trace ${message.headers['x-trace']}`);
    check(message.headers['x-lines'] === 'one\ntwo', `x-lines ${message.headers['x-lines']}`);
    check(message.headers.destination === '/topic/interop.chat', 'destination header');
    check(message.headers['message-id'], 'no message-id');
    await client.deactivate();
  },

  // A body that is not UTF-8 arrives in a binary WebSocket message, byte for byte.
  async 'binary-body'() {
    const { client } = await connect();
    const received = inbox();
    await subscribeConfirmed(client, '/queue/interop.bytes', (m) => received.push(m));
    const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0, 0x80, 10]);
    client.publish({
      destination: '/queue/interop.bytes',
      binaryBody: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    const message = await received.next();
    const got = message.binaryBody;
    check(
      got.length === bytes.length && got.every((b, i) => b === bytes[i]),
      `body ${Array.from(got)}`,
    );
    await client.deactivate();
  },

  // watchForReceipt: a RECEIPT for a SEND and for a SUBSCRIBE.
  async receipt() {
    const { client } = await connect();
    await subscribeConfirmed(client, '/topic/interop.receipts', () => {});
    const frame = await publishConfirmed(client, {
      destination: '/topic/interop.receipts',
      body: 'r',
    });
    check(frame.command === 'RECEIPT', `got ${frame.command}`);
    await client.deactivate();
  },

  // client-individual: NACK redelivers (redelivered:true), ACK settles; a consumer that goes
  // away unacknowledged hands its message to the next one.
  async 'ack-nack'() {
    const { client: a } = await connect();
    const { client: producer } = await connect();
    const inboxA = inbox();
    await subscribeConfirmed(a, '/queue/interop.work', (m) => inboxA.push(m), {
      ack: 'client-individual',
    });
    await publishConfirmed(producer, { destination: '/queue/interop.work', body: 'job-1' });
    const first = await inboxA.next();
    check(first.body === 'job-1' && !first.headers.redelivered, 'first delivery');
    first.nack();
    const again = await inboxA.next('the redelivery');
    check(again.body === 'job-1', `redelivered body ${again.body}`);
    check(again.headers.redelivered === 'true', `redelivered ${again.headers.redelivered}`);
    const acked = deferred();
    a.watchForReceipt('acked', () => acked.resolve());
    again.ack({ receipt: 'acked' });
    await within(5000, 'the ACK receipt', acked.promise);

    await publishConfirmed(producer, { destination: '/queue/interop.work', body: 'job-2' });
    const unacked = await inboxA.next();
    check(unacked.body === 'job-2', `body ${unacked.body}`);
    const { client: b } = await connect();
    const inboxB = inbox();
    await subscribeConfirmed(b, '/queue/interop.work', (m) => inboxB.push(m), {
      ack: 'client-individual',
    });
    a.forceDisconnect(); // gone without DISCONNECT or ACK
    const handedOver = await inboxB.next('the handed-over message');
    check(handedOver.body === 'job-2', `handed over ${handedOver.body}`);
    check(handedOver.headers.redelivered === 'true', 'handed over, not marked redelivered');
    handedOver.ack();
    await Promise.all([a.deactivate(), b.deactivate(), producer.deactivate()]);
  },

  // BEGIN/ABORT drops the SENDs; BEGIN/COMMIT publishes them, only at the commit. (stompjs's
  // commit() takes no headers, so a SEND with a receipt after it confirms it was processed.)
  async transaction() {
    const { client: consumer } = await connect();
    const received = inbox();
    await subscribeConfirmed(consumer, '/queue/interop.tx', (m) => received.push(m));
    const { client: producer } = await connect();

    const aborted = producer.begin();
    producer.publish({ destination: '/queue/interop.tx', body: 'dropped', headers: { transaction: aborted.id } });
    aborted.abort();

    const committed = producer.begin();
    producer.publish({ destination: '/queue/interop.tx', body: 'kept-1', headers: { transaction: committed.id } });
    producer.publish({ destination: '/queue/interop.tx', body: 'kept-2', headers: { transaction: committed.id } });
    await publishConfirmed(producer, { destination: '/queue/interop.tx', body: 'outside' });
    committed.commit();
    await publishConfirmed(producer, { destination: '/queue/interop.tx', body: 'after' });

    const bodies = [];
    for (let i = 0; i < 4; i++) bodies.push((await received.next()).body);
    check(
      JSON.stringify(bodies) === JSON.stringify(['outside', 'kept-1', 'kept-2', 'after']),
      `received ${JSON.stringify(bodies)}`,
    );
    await Promise.all([consumer.deactivate(), producer.deactivate()]);
  },

  // Heart-beats both ways for 3 s: the server (500,500) beats every 500 ms, stompjs too; the
  // connection stays up and neither side declares the other dead.
  async 'heart-beats'() {
    let beats = 0;
    let lost = false;
    let closed = false;
    const { client, connected } = await connect({
      heartbeatIncoming: 500,
      heartbeatOutgoing: 500,
      callbacks: {
        onHeartbeatReceived: () => beats++,
        onHeartbeatLost: () => (lost = true),
        onWebSocketClose: () => (closed = true),
      },
    });
    check(connected.headers['heart-beat'] === '500,500', `heart-beat ${connected.headers['heart-beat']}`);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    check(!lost && !closed, lost ? 'heart-beat lost' : 'closed');
    check(beats >= 3, `${beats} server heart-beats in 3 s`);
    await publishConfirmed(client, { destination: '/topic/interop.pulse', body: 'alive' });
    await client.deactivate();
  },

  // The token in the URL (?access_token=) for clients that cannot set CONNECT headers.
  async 'access-token-query'() {
    const { client, connected } = await connect({
      url: `${url}?access_token=${token('query-user')}`,
      connectHeaders: {},
    });
    check(connected.headers['user-id'] === 'query-user', `user-id ${connected.headers['user-id']}`);
    await client.deactivate();
  },

  // A bad token: ERROR with a message header, then the close.
  async 'auth-refused'() {
    const expect = errorThenClose();
    const client = new Client({
      brokerURL: url,
      connectHeaders: { Authorization: 'Bearer not.a.token' },
      reconnectDelay: 0,
      ...expect.callbacks,
    });
    client.activate();
    const error = await expect.error();
    check((error.headers.message ?? '').includes('invalid token'), `message ${error.headers.message}`);
    await expect.closed();
    await client.deactivate();
  },

  // A destination the token does not allow: ERROR naming it, then the close.
  async forbidden() {
    const expect = errorThenClose();
    let connectedFrame = false;
    const client = new Client({
      brokerURL: url,
      connectHeaders: {
        Authorization: `Bearer ${token('limited', ['/topic/interop.*'], ['/topic/interop.*'])}`,
      },
      reconnectDelay: 0,
      ...expect.callbacks,
      onConnect: () => {
        connectedFrame = true;
        client.subscribe('/queue/secret', () => {});
      },
    });
    client.activate();
    const error = await expect.error();
    check(connectedFrame, 'never connected');
    check(
      (error.headers.message ?? '').includes('not allowed to subscribe to /queue/secret'),
      `message ${error.headers.message}`,
    );
    await expect.closed();
    await client.deactivate();
  },

  // Topic offsets (x-stream-offset) and resume: a subscriber that left subscribes again with
  // `x-stream-offset: offset=N` and gets exactly what it missed, in order, then live messages;
  // `first` replays the history, `last` starts at the newest message.
  async resume() {
    const topic = '/topic/interop.resume';
    const take = async (box, n) => {
      const got = [];
      for (let i = 0; i < n; i++) got.push(await box.next(`MESSAGE ${i + 1} of ${n}`));
      return {
        offsets: got.map((m) => Number(m.headers['x-stream-offset'])),
        bodies: got.map((m) => m.body),
      };
    };
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const { client: producer } = await connect();
    const { client: live } = await connect();
    const first = inbox();
    await subscribeConfirmed(live, topic, (m) => first.push(m));
    for (let i = 0; i < 3; i++) await publishConfirmed(producer, { destination: topic, body: `m${i}` });
    let got = await take(first, 3);
    check(same(got.bodies, ['m0', 'm1', 'm2']), `live bodies ${got.bodies}`);
    check(same(got.offsets, [1, 2, 3]), `live offsets ${got.offsets}`);
    await live.deactivate();
    for (let i = 3; i < 8; i++) await publishConfirmed(producer, { destination: topic, body: `m${i}` });
    const { client: back } = await connect();
    const resumed = inbox();
    await subscribeConfirmed(back, topic, (m) => resumed.push(m), {
      'x-stream-offset': `offset=${got.offsets[2] + 1}`,
    });
    got = await take(resumed, 5);
    check(same(got.bodies, ['m3', 'm4', 'm5', 'm6', 'm7']), `missed bodies ${got.bodies}`);
    check(same(got.offsets, [4, 5, 6, 7, 8]), `missed offsets ${got.offsets}`);
    await publishConfirmed(producer, { destination: topic, body: 'm8' });
    got = await take(resumed, 1);
    check(same(got.offsets, [9]) && got.bodies[0] === 'm8', `after the seam ${got.offsets}`);
    const { client: replay } = await connect();
    const all = inbox();
    await subscribeConfirmed(replay, topic, (m) => all.push(m), { 'x-stream-offset': 'first' });
    got = await take(all, 9);
    check(same(got.offsets, [1, 2, 3, 4, 5, 6, 7, 8, 9]), `first: offsets ${got.offsets}`);
    const { client: latest } = await connect();
    const newest = inbox();
    await subscribeConfirmed(latest, topic, (m) => newest.push(m), { 'x-stream-offset': 'last' });
    got = await take(newest, 1);
    check(same(got.offsets, [9]) && got.bodies[0] === 'm8', `last: ${got.offsets} ${got.bodies}`);
    for (const c of [producer, back, replay, latest]) await c.deactivate();
  },
};

let failed = 0;
for (const [name, run] of Object.entries(cases)) {
  try {
    await within(15000, `case ${name}`, run());
    console.log(`stomp-interop: ${name}: ok`);
  } catch (error) {
    failed++;
    console.log(`stomp-interop: ${name}: FAIL (${error.message})`);
  }
}
console.log(`stomp-interop: ${Object.keys(cases).length - failed} ok, ${failed} failed`);
process.exit(failed ? 1 : 0);
