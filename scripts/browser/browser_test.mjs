#!/usr/bin/env node
// Browser interop tests of `wsx serve`: headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core pinned in package.json) against a real `wsx serve` on 127.0.0.1.
//
// Where it sits: scripts/test.sh step "browser" (scripts/browser/browser.sh) builds the wsx
// binary, runs `npm ci` here, starts redis-server on a free port and then runs this script,
// which starts `wsx serve --listen 127.0.0.1:0` itself, reads the bound address from its stdout
// line `listening on http://ADDR`, runs the cases below and stops the server with SIGTERM (it
// must exit 0). For the two-node case it starts two more servers the same way, both with
// `--broker REDIS_URL`.
//
// Each case prints one line: `browser: <case>: ok (...)`, `browser: <case>: FAIL (why)` or
// `browser: <case>: skip (why)` (only the two-node case without --redis, and never under
// CI=true, where that is a FAIL); the last line is `browser: N ok, N failed[, N skipped]`, and
// the exit code is 1 when any case failed.
//
//   node browser_test.mjs --wsx target/release/wsx [--out reports/browser]
//                         [--chromium /usr/bin/chromium] [--screenshot docs/chat.png]
//                         [--redis redis://127.0.0.1:PORT] [--stomp-screenshot docs/chat-stomp.png]
//                         [--quotes-screenshot docs/quotes.png] [--only CASE,CASE]
//
// Cases:
//   chat-two-pages      alice and bob open the demo page (/#room=lobby&name=...), alice sends
//                       through the real UI (Enter, then the send button), bob's page shows
//                       both messages, both presence lists show both names
//   chat-resume         alice's socket is cut while bob sends 3 messages; her page rejoins with
//                       since (last offset + 1) and shows each missed message once, then live
//   binary-1mib-echo    1 MiB of xorshift32 bytes through /ws/echo, compared byte for byte in
//                       the page and by SHA-256 against the hash computed here
//   permessage-deflate  Chrome's offer is accepted (ws.extensions), 256 KiB of compressible
//                       text round-trips on /ws/echo
//   close-1009          a binary message over the chat limit (--max-file-bytes) on
//                       /ws/chat/{room}: the page's onclose sees the server's code and reason
//   chat-stomp-one-node the page in STOMP mode (/?transport=stomp#room=...): alice and bob on
//                       one server (memory broker), their only WebSockets go to /stomp;
//                       presence (announced by the pages) on both, one message each way
//                       through the UI, each shown once on both pages; alice sends a PNG
//                       (binary STOMP body) and bob's page shows the image
//   chat-stomp-two-nodes  two more servers with --broker REDIS: alice's page on node A, bob's
//                       on node B, same room: presence across nodes, alice sends with Enter,
//                       bob with the send button; each page shows the other's message, and
//                       its own once; both nodes exit 0 on SIGTERM
//   quotes-page         a server of its own with --demo-quotes: /quotes fills its table with the
//                       50 symbols and keeps updating (prices change, rows flash); the page's
//                       socket is cut (ws.close() in the page): it reconnects and resumes with
//                       `x-stream-offset: offset=<last+1>` (no offset skipped) when the server
//                       sends offsets, `next` otherwise; then the server is restarted on the
//                       same port (SIGTERM, exit 0): the page reconnects and updates again
// A screenshot of alice's page is written to OUT/chat.png (and to --screenshot if given); one
// of both STOMP pages side by side (node A | node B) to OUT/chat-stomp.png (and to
// --stomp-screenshot); one of the quote page (after the resume) to OUT/quotes.png (and to --quotes-screenshot) and
// of the page on a phone-sized viewport to OUT/quotes-mobile.png.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];
/** Milliseconds one case may take. */
const CASE_TIMEOUT_MS = 30_000;
/** Milliseconds the server may take to print its address, and to exit after SIGTERM. */
const SERVER_TIMEOUT_MS = 15_000;
/** The chat server's message limit: --max-file-bytes (the default, 1 MiB). */
const MAX_FILE_BYTES = 1 << 20;

function parseArgs(argv) {
  const opts = {
    wsx: '',
    out: 'reports/browser',
    chromium: '/usr/bin/chromium',
    screenshot: '',
    redis: '',
    'stomp-screenshot': '',
    'quotes-screenshot': '',
    only: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    opts[key] = argv[++i];
  }
  if (!opts.wsx) throw new Error('--wsx PATH (the wsx binary) is required');
  return opts;
}

/** `n` bytes of xorshift32 from `seed`; the page runs the same generator (see case 2). */
function xorshiftBytes(n, seed) {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Reject after `ms` with `what` timed out. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- the server ---------------------------------------------------------------------------

/**
 * Start `wsx serve --listen LISTEN [extra...]` (LISTEN: 127.0.0.1:0 unless given) and resolve
 * with {child, base, exited} once it listens.
 */
async function startServer(bin, logPath, extra = [], listen = '127.0.0.1:0') {
  const log = createWriteStream(logPath);
  const child = spawn(bin, ['serve', '--listen', listen, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
  });
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const listening = new Promise((resolve, reject) => {
    child.once('error', reject);
    lines.on('line', (line) => {
      log.write(`[stdout] ${line}\n`);
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolve(m[1]);
    });
    exited.then(({ code, signal }) => reject(new Error(`wsx serve exited (${signal || code}) before listening`)));
  });
  const base = await within(SERVER_TIMEOUT_MS, 'waiting for "listening on http://ADDR"', listening);
  return { child, base, exited, log };
}

/** SIGTERM the server and check that it exits 0. */
async function stopServer(server) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    throw new Error(`wsx serve had already exited (${server.child.signalCode || server.child.exitCode})`);
  }
  server.child.kill('SIGTERM');
  try {
    const { code, signal } = await within(SERVER_TIMEOUT_MS, 'wsx serve shutdown', server.exited);
    if (code !== 0) throw new Error(`wsx serve exited with ${signal || code} after SIGTERM`);
  } catch (e) {
    server.child.kill('SIGKILL');
    throw e;
  } finally {
    server.log.end();
  }
}

// ---- cases ----------------------------------------------------------------------------------

/** Case 1: two pages of the demo chat talk through the server. */
async function chatTwoPages(browser, base, out, screenshot) {
  const room = 'lobby';
  const names = ['alice', 'bob'];
  const contexts = [];
  try {
    const pages = [];
    const errors = [];
    for (const name of names) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(`${name}'s page threw: ${e}`));
      await page.goto(`${base}/#room=${room}&name=${name}`);
      pages.push(page);
    }
    const [alice, bob] = pages;
    for (const [i, page] of pages.entries()) {
      await page.locator('#conn[data-state="open"]').waitFor({ timeout: CASE_TIMEOUT_MS });
      // The presence list: both names, this page's own marked "(you)".
      await page.waitForFunction(
        (want) => {
          const got = Array.from(document.querySelectorAll('#users .uname'), (e) => e.textContent).sort();
          return JSON.stringify(got) === JSON.stringify(want);
        },
        [...names].sort(),
        { timeout: CASE_TIMEOUT_MS },
      );
      const me = await page.locator('#users li.me .uname').textContent();
      if (me !== names[i]) throw new Error(`${names[i]}'s page marks "${me}" as (you)`);
      const count = await page.locator('#count').textContent();
      if (count !== '2') throw new Error(`${names[i]}'s page counts ${count} online`);
    }

    // alice types and presses Enter, then types and clicks the send button.
    const first = 'Hi bob! Is the new build up?';
    const second = 'Compression is on too: permessage-deflate ✓ (ünïcödé intact)';
    await alice.locator('#text').fill(first);
    await alice.locator('#text').press('Enter');
    await alice.locator('#messages li.msg.mine .text', { hasText: first }).waitFor({ timeout: CASE_TIMEOUT_MS });
    const left = await alice.locator('#text').inputValue();
    if (left !== '') throw new Error(`alice's input still holds "${left}" after Enter`);
    await alice.locator('#text').fill(second);
    await alice.locator('#composer button.send').click();

    for (const text of [first, second]) {
      const msg = bob.locator('#messages li.msg:not(.mine)', { hasText: text });
      await msg.waitFor({ timeout: CASE_TIMEOUT_MS });
      const who = await msg.locator('.who').textContent();
      if (who !== 'alice') throw new Error(`bob's page shows "${text}" from "${who}"`);
      const shown = await msg.locator('.text').textContent();
      if (shown !== text) throw new Error(`bob's page shows "${shown}", alice sent "${text}"`);
    }
    // bob answers, so that the screenshot shows both sides.
    await bob.locator('#text').fill('Yes, both of your messages arrived.');
    await bob.locator('#text').press('Enter');
    await alice.locator('#messages li.msg:not(.mine)', { hasText: 'both of your messages' }).waitFor({ timeout: CASE_TIMEOUT_MS });
    const joined = await alice.locator('#messages li.sys', { hasText: 'bob joined' }).count();
    if (errors.length) throw new Error(errors[0]);

    // The RTT readout needs a pong: wait for one so the screenshot shows it.
    await alice.waitForFunction(() => /ms$/.test(document.getElementById('rtt').textContent), null, {
      timeout: CASE_TIMEOUT_MS,
    });
    await alice.locator('#text').blur();
    const shot = path.join(out, 'chat.png');
    await alice.screenshot({ path: shot });
    if (screenshot) await copyFile(shot, screenshot);
    return `2 messages from alice via Enter and the send button shown on bob's page, ` +
      `presence [alice, bob] on both${joined ? ', "bob joined" on alice\'s' : ''}; screenshot ${shot}`;
  } finally {
    for (const c of contexts) await c.close();
  }
}

/**
 * The chat page resumes after a lost connection: it joins again with `since` (the offset after
 * the last message it showed) and shows exactly the messages sent meanwhile, once each.
 */
async function chatResume(browser, base) {
  const room = 'resume';
  const contexts = [];
  try {
    const open = async (name, init) => {
      const context = await browser.newContext({ viewport: { width: 1024, height: 700 } });
      contexts.push(context);
      if (init) await context.addInitScript(init);
      const page = await context.newPage();
      await page.goto(`${base}/#room=${room}&name=${name}`);
      await page.locator('#conn[data-state="open"]').waitFor({ timeout: CASE_TIMEOUT_MS });
      return page;
    };
    // alice's page: its WebSockets are kept (to cut one), new ones can be refused, and the
    // join commands it sends are recorded.
    const alice = await open('alice', () => {
      const Native = window.WebSocket;
      window.__sockets = [];
      window.__joins = [];
      window.__refuse = false;
      window.WebSocket = class extends Native {
        constructor(url, protocols) {
          if (window.__refuse) throw new Error('refused by the test');
          super(url, protocols);
          window.__sockets.push(this);
        }
        send(data) {
          if (typeof data === 'string' && data.includes('"join"')) window.__joins.push(JSON.parse(data));
          super.send(data);
        }
      };
    });
    const bob = await open('bob');
    const say = async (text) => {
      await bob.locator('#text').fill(text);
      await bob.locator('#text').press('Enter');
      await bob.locator('#messages li.msg.mine .text', { hasText: text }).waitFor({ timeout: CASE_TIMEOUT_MS });
    };
    const shown = (text) => alice.locator('#messages li.msg .text', { hasText: text });

    await say('before the cut');
    await shown('before the cut').waitFor({ timeout: CASE_TIMEOUT_MS });
    await alice.evaluate(() => {
      window.__refuse = true;
      window.__sockets.at(-1).close();
    });
    await alice.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: CASE_TIMEOUT_MS });
    const missed = ['missed one', 'missed two', 'missed three'];
    for (const text of missed) await say(text);
    await alice.evaluate(() => { window.__refuse = false; });
    await alice.locator('#conn').click(); // reconnect now
    await alice.locator('#conn[data-state="open"]').waitFor({ timeout: CASE_TIMEOUT_MS });
    for (const text of missed) await shown(text).waitFor({ timeout: CASE_TIMEOUT_MS });
    await say('after the cut');
    await shown('after the cut').waitFor({ timeout: CASE_TIMEOUT_MS });

    const joins = await alice.evaluate(() => window.__joins);
    if (joins.length !== 2) throw new Error(`alice's page sent ${joins.length} joins, want 2`);
    if (joins[0].since !== undefined) throw new Error(`the first join carries since ${joins[0].since}`);
    if (!Number.isSafeInteger(joins[1].since)) throw new Error(`the second join has no since: ${JSON.stringify(joins[1])}`);
    for (const text of ['before the cut', ...missed, 'after the cut']) {
      const n = await shown(text).count();
      if (n !== 1) throw new Error(`alice's page shows "${text}" ${n} times`);
    }
    const gap = await alice.locator('#messages li.sys', { hasText: 'missed while disconnected' }).count();
    if (gap) throw new Error('alice\'s page reports missed messages');
    return `cut, 3 messages sent meanwhile, rejoined with since ${joins[1].since}: each shown once, then live`;
  } finally {
    for (const c of contexts) await c.close();
  }
}

/** A fresh context and a page on the chat page's origin (so the page's CSP applies). */
async function blankPage(browser, base) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  return { context, page };
}

/** Case 2: 1 MiB of pseudo-random bytes through /ws/echo, intact. */
async function binaryEcho(browser, base) {
  const size = 1 << 20;
  const seed = 0x9e3779b9;
  const want = createHash('sha256').update(xorshiftBytes(size, seed)).digest('hex');
  const { context, page } = await blankPage(browser, base);
  try {
    const r = await page.evaluate(
      ({ url, size, seed, timeoutMs }) =>
        new Promise((resolve, reject) => {
          const data = new Uint8Array(size);
          let x = seed >>> 0;
          for (let i = 0; i < size; i++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            x >>>= 0;
            data[i] = x >>> 24;
          }
          const hex = async (buf) =>
            Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)), (b) =>
              b.toString(16).padStart(2, '0')).join('');
          const ws = new WebSocket(url);
          ws.binaryType = 'arraybuffer';
          const timer = setTimeout(() => reject(new Error('no echo in time')), timeoutMs);
          let t0 = 0;
          ws.onopen = () => {
            t0 = performance.now();
            ws.send(data);
          };
          ws.onmessage = async (ev) => {
            clearTimeout(timer);
            const ms = performance.now() - t0;
            if (!(ev.data instanceof ArrayBuffer)) {
              ws.close();
              return reject(new Error(`echo is a ${typeof ev.data}, not an ArrayBuffer`));
            }
            const got = new Uint8Array(ev.data);
            let firstDiff = -1;
            const n = Math.min(got.length, data.length);
            for (let i = 0; i < n; i++) {
              if (got[i] !== data[i]) {
                firstDiff = i;
                break;
              }
            }
            if (firstDiff < 0 && got.length !== data.length) firstDiff = n;
            resolve({
              length: got.length,
              firstDiff,
              sentHash: await hex(data),
              echoHash: await hex(got),
              extensions: ws.extensions,
              ms,
            });
            ws.close(1000, 'done');
          };
          ws.onclose = (ev) => {
            clearTimeout(timer);
            reject(new Error(`closed before the echo: ${ev.code} ${ev.reason}`));
          };
        }),
      { url: `${base.replace(/^http/, 'ws')}/ws/echo`, size, seed, timeoutMs: CASE_TIMEOUT_MS },
    );
    if (r.sentHash !== want) throw new Error(`the page generated other bytes (sha256 ${r.sentHash}, want ${want})`);
    if (r.length !== size) throw new Error(`echo has ${r.length} bytes, sent ${size}`);
    if (r.firstDiff >= 0) throw new Error(`echo differs from byte ${r.firstDiff} on`);
    if (r.echoHash !== want) throw new Error(`echo sha256 ${r.echoHash}, want ${want}`);
    return `${size} bytes, sha256 ${want.slice(0, 16)}… equal, byte for byte too, ` +
      `${r.ms.toFixed(0)} ms (extensions: "${r.extensions}")`;
  } finally {
    await context.close();
  }
}

/** Case 3: permessage-deflate is negotiated with Chrome's offer; 256 KiB of text round-trips. */
async function deflateText(browser, base) {
  const { context, page } = await blankPage(browser, base);
  try {
    const r = await page.evaluate(
      ({ url, size, timeoutMs }) =>
        new Promise((resolve, reject) => {
          let text = '';
          for (let i = 0; text.length < size; i++) {
            text += `line ${i}: the quick brown fox jumps over the lazy dog; wsx says hello.\n`;
          }
          text = text.slice(0, size);
          const ws = new WebSocket(url);
          const timer = setTimeout(() => reject(new Error('no echo in time')), timeoutMs);
          let extensions = '';
          ws.onopen = () => {
            extensions = ws.extensions;
            ws.send(text);
          };
          ws.onmessage = (ev) => {
            clearTimeout(timer);
            ws.onclose = null;
            ws.close(1000, 'done');
            resolve({
              extensions,
              sent: text.length,
              length: typeof ev.data === 'string' ? ev.data.length : -1,
              equal: ev.data === text,
            });
          };
          ws.onclose = (ev) => {
            clearTimeout(timer);
            reject(new Error(`closed before the echo: ${ev.code} ${ev.reason}`));
          };
        }),
      { url: `${base.replace(/^http/, 'ws')}/ws/echo`, size: 256 * 1024, timeoutMs: CASE_TIMEOUT_MS },
    );
    const offered = r.extensions.split(',').map((e) => e.split(';')[0].trim());
    if (!offered.includes('permessage-deflate')) {
      throw new Error(`ws.extensions is "${r.extensions}", without permessage-deflate`);
    }
    if (r.length < 0) throw new Error('the echo is not text');
    if (!r.equal) throw new Error(`the echo (${r.length} chars) differs from the ${r.sent} chars sent`);
    return `ws.extensions "${r.extensions}", ${r.sent} bytes of text echoed intact`;
  } finally {
    await context.close();
  }
}

/** Case 4: the server's close code and reason reach the page's onclose. */
async function closeCode(browser, base) {
  const { context, page } = await blankPage(browser, base);
  try {
    const r = await page.evaluate(
      ({ url, size, timeoutMs }) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.binaryType = 'arraybuffer';
          const timer = setTimeout(() => reject(new Error('no close in time')), timeoutMs);
          const seen = [];
          ws.onopen = () => ws.send(JSON.stringify({ type: 'join', name: 'mallory' }));
          ws.onmessage = (ev) => {
            if (typeof ev.data !== 'string') return;
            const msg = JSON.parse(ev.data);
            seen.push(msg.type);
            // Joined: now a binary message one byte over the connection's message limit.
            if (msg.type === 'welcome') ws.send(new Uint8Array(size));
          };
          ws.onclose = (ev) => {
            clearTimeout(timer);
            resolve({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean, seen });
          };
        }),
      { url: `${base.replace(/^http/, 'ws')}/ws/chat/close-test`, size: MAX_FILE_BYTES + 1, timeoutMs: CASE_TIMEOUT_MS },
    );
    if (!r.seen.includes('welcome')) throw new Error(`closed (${r.code} "${r.reason}") before the welcome`);
    // The server fails the connection with 1009 and the error's text as the reason: the frame
    // or the message (Chrome may fragment; deflate counts the inflated size) over the limit.
    const reasonRe = new RegExp(`^(frame|message) of (at least )?\\d+ bytes exceeds the limit of ${MAX_FILE_BYTES} bytes$`);
    if (r.code !== 1009 || !reasonRe.test(r.reason)) {
      throw new Error(`onclose got ${r.code} "${r.reason}", want 1009 and a reason matching ${reasonRe}`);
    }
    return `onclose: code ${r.code}, reason "${r.reason}", wasClean ${r.wasClean}`;
  } finally {
    await context.close();
  }
}

// ---- STOMP mode of the chat page -------------------------------------------------------------

/** A 1x1 PNG: binary (0x89 first, NULs inside), so it travels as a binary STOMP frame. */
const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

/**
 * Open the chat page in STOMP mode for each {name, base}; resolve with the pages once each is
 * connected and lists everybody (the pages announce themselves on the topic, so a full list
 * on every page also shows that every subscription is live, across nodes too).
 */
async function openStompPages(browser, room, people, contexts, errors, viewport) {
  const pages = [];
  for (const { name, base } of people) {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`${name}'s page threw: ${e}`));
    page.wsUrls = [];
    page.on('websocket', (ws) => page.wsUrls.push(ws.url()));
    await page.goto(`${base}/?transport=stomp#room=${room}&name=${name}`);
    pages.push(page);
  }
  const names = people.map((p) => p.name).sort();
  for (const [i, page] of pages.entries()) {
    const { name, base } = people[i];
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: CASE_TIMEOUT_MS });
    if (!(await page.locator('#via').isVisible())) throw new Error(`${name}'s page does not show the STOMP badge`);
    await page.waitForFunction(
      (want) => {
        const got = Array.from(document.querySelectorAll('#users .uname'), (e) => e.textContent).sort();
        return JSON.stringify(got) === JSON.stringify(want);
      },
      names,
      { timeout: CASE_TIMEOUT_MS },
    ).catch(async () => {
      const got = await page.locator('#users .uname').allTextContents();
      throw new Error(`${name}'s page lists [${got}], want [${names}]`);
    });
    const me = await page.locator('#users li.me .uname').textContent();
    if (me !== name) throw new Error(`${name}'s page marks "${me}" as (you)`);
    const want = `${base.replace(/^http/, 'ws')}/stomp`;
    if (page.wsUrls.length !== 1 || page.wsUrls[0] !== want) {
      throw new Error(`${name}'s page opened WebSockets [${page.wsUrls}], want only ${want}`);
    }
  }
  return pages;
}

/** `page` shows `text` from `from`, exactly once; `mine`: as its own bubble. */
async function expectShownOnce(page, who, text, from, mine) {
  const sel = `#messages li.msg${mine ? '.mine' : ':not(.mine)'}`;
  const msg = page.locator(sel, { hasText: text });
  await msg.first().waitFor({ timeout: CASE_TIMEOUT_MS }).catch(() => {
    throw new Error(`${who}'s page does not show "${text}"${mine ? ' as its own' : ` from ${from}`}`);
  });
  const all = await page.locator('#messages li.msg .text').allTextContents();
  const n = all.filter((t) => t === text).length;
  if (n !== 1) throw new Error(`${who}'s page shows "${text}" ${n} times`);
  if (!mine) {
    const shownFrom = await msg.first().getAttribute('data-name');
    if (shownFrom !== from) throw new Error(`${who}'s page shows "${text}" from "${shownFrom}", want ${from}`);
  }
}

/** alice sends with Enter, bob with the send button; both pages show both messages once. */
async function exchange(alice, bob, first, second) {
  await alice.locator('#text').fill(first);
  await alice.locator('#text').press('Enter');
  await bob.locator('#text').fill(second);
  await bob.locator('#composer button.send').click();
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await expectShownOnce(page, who, first, 'alice', who === 'alice');
    await expectShownOnce(page, who, second, 'bob', who === 'bob');
    const left = await page.locator('#text').inputValue();
    if (left !== '') throw new Error(`${who}'s input still holds "${left}" after sending`);
  }
  // Late duplicates (a message delivered twice) would show up now.
  await new Promise((r) => setTimeout(r, 500));
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    const all = await page.locator('#messages li.msg .text').allTextContents();
    for (const text of [first, second]) {
      const n = all.filter((t) => t === text).length;
      if (n !== 1) throw new Error(`${who}'s page shows "${text}" ${n} times after 500 ms`);
    }
  }
}

/** Case 5: the page's STOMP mode on one server (the default memory broker). */
async function chatStompOneNode(browser, base) {
  const contexts = [];
  const errors = [];
  try {
    const [alice, bob] = await openStompPages(browser, 'stomp-one', [
      { name: 'alice', base },
      { name: 'bob', base },
    ], contexts, errors, { width: 1100, height: 700 });
    await exchange(alice, bob, 'Hello over STOMP: /topic/chat.stomp-one', 'Got it ✓ (ünïcödé intact)');

    // A file: a binary body (PNG bytes, NULs included), shown as an image on bob's page.
    await alice.locator('#file').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG_1X1 });
    const card = bob.locator('#messages li.msg:not(.mine) .file-card', { hasText: 'dot.png' });
    await card.waitFor({ timeout: CASE_TIMEOUT_MS });
    await bob.waitForFunction(() => {
      const img = document.querySelector('#messages li.msg:not(.mine) .file-card img');
      return img && img.complete && img.naturalWidth === 1;
    }, null, { timeout: CASE_TIMEOUT_MS }).catch(() => {
      throw new Error("bob's page did not decode alice's PNG");
    });
    const size = await card.locator('.file-size').textContent();
    if (size !== `${PNG_1X1.length} B`) throw new Error(`bob's page says the PNG has ${size}, sent ${PNG_1X1.length} B`);
    const mine = await alice.locator('#messages li.msg.mine .file-card', { hasText: 'dot.png' }).count();
    if (mine !== 1) throw new Error(`alice's page shows her PNG ${mine} times`);

    // The RTT readout comes from receipts in this mode.
    await alice.waitForFunction(() => /ms$/.test(document.getElementById('rtt').textContent), null, {
      timeout: CASE_TIMEOUT_MS,
    });
    if (errors.length) throw new Error(errors[0]);
    return 'both pages on /stomp only, presence [alice, bob] on both, one message each way (Enter, ' +
      `send button) shown once on both, a ${PNG_1X1.length}-byte PNG shown as an image on bob's, RTT from receipts`;
  } finally {
    for (const c of contexts) await c.close();
  }
}

/** Case 6: two nodes on one Redis; alice on node A, bob on node B, same room. */
async function chatStompTwoNodes(browser, opts) {
  const nodes = [];
  const contexts = [];
  const errors = [];
  const prefix = `wsx-browser-${process.pid}:`;
  try {
    for (const id of ['a', 'b']) {
      const log = path.join(opts.out, `wsx-serve-node-${id}.log`);
      nodes.push(await startServer(opts.wsx, log, [
        '--broker', opts.redis, '--node-id', `browser-node-${id}`, '--redis-prefix', prefix,
      ]));
    }
    const [a, b] = nodes;
    const viewport = { width: 900, height: 640 };
    const [alice, bob] = await openStompPages(browser, 'stomp-nodes', [
      { name: 'alice', base: a.base },
      { name: 'bob', base: b.base },
    ], contexts, errors, viewport);
    const first = `Hi bob, this is node A (${a.base.replace('http://', '')})`;
    const second = `Hi alice, node B (${b.base.replace('http://', '')}) here: Redis carried it`;
    await exchange(alice, bob, first, second);
    if (errors.length) throw new Error(errors[0]);

    // Both pages side by side: node A | node B.
    let shot = '';
    try {
      shot = await sideBySide(browser, opts, [[alice, `node A · ${a.base}`], [bob, `node B · ${b.base}`]], viewport);
    } catch (e) {
      shot = `no screenshot (${e.message.split('\n')[0]})`;
    }
    for (const c of contexts.splice(0)) await c.close();
    for (const [i, node] of nodes.entries()) {
      await stopServer(node).catch((e) => {
        throw new Error(`node ${'AB'[i]}: ${e.message}`);
      });
    }
    return `alice on node A ${a.base}, bob on node B ${b.base}, --broker ${opts.redis}: presence ` +
      `across nodes, alice's message (Enter) and bob's (send button) shown once on both pages; ` +
      `both nodes exit 0 on SIGTERM; ${shot}`;
  } finally {
    for (const c of contexts) await c.close();
    for (const node of nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
    }
  }
}

/** Screenshot `pages` ([page, label]) and put them side by side in OUT/chat-stomp.png. */
async function sideBySide(browser, opts, pages, viewport) {
  const shots = [];
  for (const [page, label] of pages) {
    await page.locator('#text').blur();
    shots.push({ label, png: (await page.screenshot()).toString('base64') });
  }
  const context = await browser.newContext({ viewport: { width: viewport.width * shots.length + 2 * (shots.length - 1), height: viewport.height + 30 } });
  try {
    const page = await context.newPage();
    const cells = shots.map(({ label, png }) =>
      `<figure><figcaption>${label}</figcaption><img src="data:image/png;base64,${png}"></figure>`).join('');
    await page.setContent(`<!doctype html><style>
      body { margin: 0; display: flex; gap: 2px; background: #98a2b3; font: 13px/30px system-ui, sans-serif; }
      figure { margin: 0; } figcaption { background: #1b1f24; color: #fff; padding: 0 12px; height: 30px; }
      img { display: block; }
    </style>${cells}`);
    await page.waitForFunction(() => Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0));
    const out = path.join(opts.out, 'chat-stomp.png');
    await page.screenshot({ path: out });
    if (opts['stomp-screenshot']) await copyFile(out, opts['stomp-screenshot']);
    return `screenshot ${out}`;
  } finally {
    await context.close();
  }
}

// ---- the quote page ------------------------------------------------------------------------

/** The quote page's state, as the test reads it. */
function quoteState(page) {
  return page.evaluate(() => {
    const s = window.wsxQuotes.state;
    return {
      open: document.getElementById('conn').dataset.state === 'open',
      rows: document.querySelectorAll('#rows tr').length,
      received: s.received,
      lastOffset: s.lastOffset,
      offsets: s.offsets,
      skipped: s.skipped,
      gaps: s.gaps,
      subscribes: [...s.subscribes],
      flashing: document.querySelectorAll('#rows tr[data-flash]').length,
      note: document.getElementById('note').textContent,
    };
  });
}

/** Wait until the page is live with a full table and has received `more` updates after `from`. */
async function quotesFlowing(page, from, more, what) {
  await page.waitForFunction(
    ({ from, more }) => {
      const s = window.wsxQuotes.state;
      return document.getElementById('conn').dataset.state === 'open' &&
        document.querySelectorAll('#rows tr').length === 50 && s.received >= from + more;
    },
    { from, more },
    { timeout: CASE_TIMEOUT_MS, polling: 100 },
  ).catch(async (e) => {
    throw new Error(`${what}: ${e.message.split('\n')[0]}; page state ${JSON.stringify(await quoteState(page))}`);
  });
  return quoteState(page);
}

/** The prices shown, by symbol. */
function shownPrices(page) {
  return page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#rows tr'),
    (tr) => [tr.dataset.symbol, tr.querySelector('.price').textContent])));
}

/** Case: the quote page of --demo-quotes fills, updates, and resumes after a cut and a restart. */
async function quotesPage(browser, opts) {
  const log = path.join(opts.out, 'wsx-serve-quotes.log');
  let server = await startServer(opts.wsx, log, ['--demo-quotes']);
  const listen = server.base.replace('http://', '');
  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1100, height: 860 } });
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`the quote page threw: ${e}`));
    const t0 = Date.now();
    await page.goto(`${server.base}/quotes`);
    const filled = await quotesFlowing(page, 0, 50, 'first load');
    const fillMs = Date.now() - t0;
    if (filled.subscribes[0] !== 'first') throw new Error(`the first SUBSCRIBE asked for ${filled.subscribes[0]}, not first`);
    const symbols = await page.evaluate(() => Array.from(document.querySelectorAll('#rows tr'), (tr) => tr.dataset.symbol));
    if (new Set(symbols).size !== 50) throw new Error(`${new Set(symbols).size} distinct symbols in the table`);
    if ([...symbols].sort().join() !== symbols.join()) throw new Error('the rows are not sorted by symbol');
    // Prices move and changed rows flash.
    const before = await shownPrices(page);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr[data-flash]').length > 0, null, { timeout: CASE_TIMEOUT_MS });
    const live = await quotesFlowing(page, filled.received, 60, 'live updates');
    const after = await shownPrices(page);
    const moved = Object.keys(before).filter((sym) => before[sym] !== after[sym]).length;
    if (moved < 10) throw new Error(`only ${moved} of 50 prices changed in ${live.received - filled.received} updates`);
    if (!/^[\d,.]+$/.test(after[symbols[0]])) throw new Error(`price cell shows "${after[symbols[0]]}"`);

    // 1. The socket is cut under the page: it reconnects and resumes.
    await page.evaluate(() => window.wsxQuotes.state.client.ws.close());
    const resumed = await page.waitForFunction(
      (n) => window.wsxQuotes.state.subscribes.length > n, live.subscribes.length, { timeout: CASE_TIMEOUT_MS },
    ).then(() => quotesFlowing(page, live.received, 40, 'after the cut'));
    const resumeFrom = resumed.subscribes[live.subscribes.length];
    let resumeNote;
    if (live.offsets) {
      if (!/^offset=\d+$/.test(resumeFrom)) throw new Error(`resubscribed with ${resumeFrom}, not offset=N`);
      const asked = Number(resumeFrom.slice('offset='.length));
      if (asked <= live.lastOffset) throw new Error(`resumed from ${asked}, but offset ${live.lastOffset} was already shown`);
      if (resumed.skipped !== 0) throw new Error(`${resumed.skipped} offsets skipped across the cut`);
      resumeNote = `resumed with ${resumeFrom}, no offset skipped (last ${resumed.lastOffset})`;
    } else {
      if (resumeFrom !== 'next') throw new Error(`resubscribed with ${resumeFrom} on a server without offsets`);
      resumeNote = 'the server sends no x-stream-offset yet: resubscribed with next';
    }

    // The screenshot: resumed, with some rows flashing.
    await page.waitForFunction(() => document.querySelectorAll('#rows tr[data-flash]').length >= 2, null, { timeout: CASE_TIMEOUT_MS });
    const shot = path.join(opts.out, 'quotes.png');
    await page.screenshot({ path: shot });
    if (opts['quotes-screenshot']) await copyFile(shot, opts['quotes-screenshot']);

    // 2. The server restarts on the same port: the page comes back and updates again.
    await stopServer(server);
    server = await startServer(opts.wsx, log.replace(/\.log$/, '-restarted.log'), ['--demo-quotes'], listen);
    const restarted = await page.waitForFunction(
      (n) => window.wsxQuotes.state.subscribes.length > n, resumed.subscribes.length, { timeout: CASE_TIMEOUT_MS },
    ).then(() => quotesFlowing(page, resumed.received, 40, 'after the restart'));
    if (errors.length) throw new Error(errors[0]);

    const phone = await browser.newContext({ viewport: { width: 390, height: 760 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      const mobile = await phone.newPage();
      await mobile.goto(`${server.base}/quotes`);
      await quotesFlowing(mobile, 0, 50, 'phone viewport');
      await mobile.screenshot({ path: path.join(opts.out, 'quotes-mobile.png') });
    } finally {
      await phone.close();
    }
    await stopServer(server);
    return `50 symbols shown ${fillMs} ms after the page load (SUBSCRIBE x-stream-offset:first), ` +
      `${moved} prices moved, rows flash; socket cut: ${resumeNote}; server restarted on ${listen}: ` +
      `resubscribed with ${restarted.subscribes.slice(resumed.subscribes.length).join(', then ')} and live again ` +
      `(${restarted.received} updates in all); screenshot ${shot}`;
  } finally {
    await context.close();
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  }
}

// ---- driver ---------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  await mkdir(opts.out, { recursive: true });
  const results = [];
  const report = (name, ok, detail) => {
    const line = `browser: ${name}: ${ok === 'skip' ? 'skip' : ok ? 'ok' : 'FAIL'} (${detail})`;
    console.log(line);
    results.push(ok);
  };
  const ci = process.env.CI === 'true' || process.env.CI === '1';

  let server;
  let browser;
  // Whatever happens, the server does not outlive this process.
  process.on('exit', () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  });
  try {
    server = await startServer(opts.wsx, path.join(opts.out, 'wsx-serve.log'));
    console.log(`wsx serve on ${server.base} (log: ${path.join(opts.out, 'wsx-serve.log')})`);
    // launch() gives Chromium a fresh temporary --user-data-dir of its own and removes it after.
    browser = await within(SERVER_TIMEOUT_MS * 2, 'launching Chromium', chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
    }));
    const pw = createRequire(import.meta.url)('playwright-core/package.json').version;
    console.log(`Chromium ${browser.version()} (${opts.chromium}), playwright-core ${pw}`);
  } catch (e) {
    report('setup', false, e.message.split('\n')[0]);
    if (browser) await browser.close();
    if (server) server.child.kill('SIGKILL');
    return 1;
  }

  const cases = [
    ['chat-two-pages', () => chatTwoPages(browser, server.base, opts.out, opts.screenshot)],
    ['chat-resume', () => chatResume(browser, server.base)],
    ['binary-1mib-echo', () => binaryEcho(browser, server.base)],
    ['permessage-deflate', () => deflateText(browser, server.base)],
    ['close-1009', () => closeCode(browser, server.base)],
    ['chat-stomp-one-node', () => chatStompOneNode(browser, server.base)],
    ['chat-stomp-two-nodes', () => chatStompTwoNodes(browser, opts)],
    ['quotes-page', () => quotesPage(browser, opts)],
  ];
  const only = opts.only ? new Set(opts.only.split(',')) : null;
  for (const [name, run] of cases) {
    if (only && !only.has(name)) continue;
    const t0 = Date.now();
    if (name === 'chat-stomp-two-nodes' && !opts.redis) {
      // No Redis (redis-server missing): a failure under CI, a skip otherwise.
      report(name, ci ? false : 'skip', `no --redis URL (redis-server not found?)${ci ? '; CI=true: a missing tool is a failure' : ''}`);
      continue;
    }
    try {
      const detail = await within(CASE_TIMEOUT_MS * 2, name, run());
      report(name, true, `${detail}; ${Date.now() - t0} ms`);
    } catch (e) {
      report(name, false, e.message.split('\n')[0]);
    }
  }

  await browser.close();
  try {
    await stopServer(server);
    report('server-shutdown', true, 'SIGTERM, exit 0');
  } catch (e) {
    report('server-shutdown', false, e.message);
  }
  const failed = results.filter((ok) => ok === false).length;
  const skipped = results.filter((ok) => ok === 'skip').length;
  console.log(`browser: ${results.length - failed - skipped} ok, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`browser: setup: FAIL (${e.message.split('\n')[0]})`);
    process.exit(1);
  },
);
