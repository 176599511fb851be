// wsx quotes: the live quote table of `wsx serve --demo-quotes` (/quotes). Plain JavaScript, no
// build step; speaks STOMP 1.2 to ws(s)://HOST/stomp with web/stomp.js (window.WsxStomp).
//
// The feed publishes one JSON quote per MESSAGE to /topic/quotes:
//   {"symbol":"ACME","price":123.45,"change":1.23,"change_pct":1.01,"ts":1700000000000}
// Each row shows the newest quote of its symbol; a changed price flashes green (up) or red
// (down). Updates are drawn once per animation frame, newest per symbol (a burst, e.g. a
// replay of the history, costs one repaint).
//
// Offsets and resume: every MESSAGE from a topic carries `x-stream-offset:N`. The page keeps
// the offset of the last update it showed and, when the connection drops, reconnects with
// exponential backoff (0.5 s doubling to 15 s, with jitter) and subscribes with
// `x-stream-offset: offset=<last+1>`: the server sends what was missed, in order, then live
// updates. `x-stream-gap:true` on the first one means older updates were no longer retained
// (harmless here: the table shows the newest quote of each symbol anyway).
// The first SUBSCRIBE of a page load asks for `x-stream-offset: first`: the retained history
// (by default the last 1000 updates, 50 s of the feed) fills the table at once. Without
// history (`--topic-history 0`) or on a server without offsets the table fills from live
// updates: the feed updates every symbol once per round, 2.5 s at its default rate.
// If a resume brings nothing for RESUME_STALL_MS (the feed publishes 20 updates a second; a
// restarted in-memory broker starts its offsets again), the page subscribes again from `first`.
// On a server that sends no offsets the page cannot resume: it subscribes with `next` again.
//
// For tests: window.wsxQuotes exposes the state (state.client is the WsxStomp.Client,
// state.subscribes the x-stream-offset of each SUBSCRIBE sent).
'use strict';

(() => {
  const TOPIC = '/topic/quotes';
  const SUBSCRIPTION = 'quotes';
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const RESUME_STALL_MS = 5000;
  const FLASH_MS = 900;

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'),
    connText: $('conn-text'),
    offset: $('offset'),
    rate: $('rate'),
    count: $('count'),
    note: $('note'),
    rows: $('rows'),
    empty: $('empty'),
  };

  const state = {
    client: null, // the WsxStomp.Client of the current connection
    backoff: new window.WsxStomp.Backoff(BACKOFF_FIRST_MS, BACKOFF_MAX_MS), // reset once subscribed
    retryTimer: 0,
    countdownTimer: 0,
    retryAt: 0,
    stallTimer: 0,
    lastOffset: null, // x-stream-offset of the last update shown (null: none yet)
    offsets: false, // whether the server sends x-stream-offset
    resumingFrom: null, // the offset= of the current subscription until its first MESSAGE
    subscribes: [], // x-stream-offset of every SUBSCRIBE sent (for tests)
    received: 0, // MESSAGEs received
    gaps: 0, // MESSAGEs that carried x-stream-gap:true
    skipped: 0, // offsets not seen between two consecutive MESSAGEs (conflated or lost updates)
    rows: new Map(), // symbol -> { tr, price, change, pct, time, last, flash }
    pending: new Map(), // symbol -> newest quote not drawn yet
    frame: 0,
    shownTimes: [], // when updates were drawn, for upd/s
  };

  // ---- connection status ---------------------------------------------------------------------

  function setConn(kind, text) {
    ui.conn.dataset.state = kind;
    ui.connText.textContent = text;
    ui.conn.title = kind === 'reconnecting' ? 'Click to reconnect now' : '';
  }

  function note(text, kind = '') {
    ui.note.textContent = text;
    ui.note.className = `hint quotes-note ${kind}`;
  }

  // ---- connecting, subscribing, reconnecting ------------------------------------------------------

  function connect() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    state.retryTimer = state.countdownTimer = 0;
    const again = state.backoff.attempt > 0;
    setConn(again ? 'reconnecting' : 'connecting', again ? 'reconnecting…' : 'connecting…');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // A JWT for a server started with --jwt-secret/--jwt-public-key: /quotes?access_token=...
    const token = new URLSearchParams(location.search).get('access_token');
    const url = `${scheme}//${location.host}/stomp${token ? `?access_token=${encodeURIComponent(token)}` : ''}`;
    const c = new window.WsxStomp.Client(url, { heartBeat: [10000, 20000] });
    state.client = c;
    c.onconnect = () => {
      if (c !== state.client) return;
      subscribe(c);
    };
    c.onreceipt = (id) => {
      if (c !== state.client || id !== 'subscribed') return;
      state.backoff.reset();
      setConn('open', 'live');
    };
    c.onmessage = (frame) => { if (c === state.client) onMessage(frame); };
    c.onerror = (frame) => {
      if (c !== state.client) return;
      // A refused resume must not repeat at every reconnect: start again from `first`.
      if (state.resumingFrom !== null) state.lastOffset = null;
      note(`Server error: ${frame.headers.message || 'unknown'}`, 'err');
    };
    c.onclose = () => {
      if (c !== state.client) return;
      state.client = null;
      clearTimeout(state.stallTimer);
      scheduleReconnect();
    };
    try {
      c.open();
    } catch (e) {
      state.client = null;
      scheduleReconnect();
    }
  }

  /** Where the subscription starts: after the last update shown, or the retained history. */
  function startPosition() {
    if (state.lastOffset !== null) return `offset=${state.lastOffset + 1}`;
    return state.offsets ? 'first' : (state.subscribes.length ? 'next' : 'first');
  }

  function subscribe(c) {
    const from = startPosition();
    state.subscribes.push(from);
    state.resumingFrom = from.startsWith('offset=') ? state.lastOffset + 1 : null;
    c.subscribe(TOPIC, SUBSCRIPTION, { 'x-stream-offset': from, receipt: 'subscribed' });
    if (state.resumingFrom !== null) {
      note(`Reconnected: resuming from offset ${state.resumingFrom}…`);
      clearTimeout(state.stallTimer);
      state.stallTimer = setTimeout(() => stalled(c), RESUME_STALL_MS);
    } else if (state.subscribes.length > 1) {
      note(state.offsets ? 'Reconnected: replaying the retained history…'
        : 'Reconnected: this server sends no offsets, so updates published while the page was offline are not replayed.');
    }
  }

  /** Nothing came after `offset=N`: the server does not know N (it restarted); from `first`. */
  function stalled(c) {
    if (c !== state.client || state.resumingFrom === null) return;
    state.lastOffset = null;
    c.frame('UNSUBSCRIBE', { id: SUBSCRIPTION });
    note('Nothing came after our offset (the server restarted?): reloading the retained history…', 'err');
    subscribe(c);
  }

  function scheduleReconnect() {
    state.retryAt = Date.now() + state.backoff.next();
    showCountdown();
    clearInterval(state.countdownTimer);
    state.countdownTimer = setInterval(showCountdown, 250);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, state.retryAt - Date.now());
  }

  function showCountdown() {
    const left = Math.ceil((state.retryAt - Date.now()) / 1000);
    setConn('reconnecting', left > 0 ? `reconnecting in ${left}s` : 'reconnecting…');
  }

  function retryNow() {
    if (!state.client && state.retryTimer) connect();
  }

  // ---- messages ------------------------------------------------------------------------------

  function onMessage(frame) {
    if (frame.headers.subscription !== SUBSCRIPTION) return;
    state.received += 1;
    const offset = Number(frame.headers['x-stream-offset']);
    const hasOffset = frame.headers['x-stream-offset'] !== undefined && Number.isSafeInteger(offset);
    if (state.resumingFrom !== null) {
      clearTimeout(state.stallTimer);
      const from = state.resumingFrom;
      if (frame.headers['x-stream-gap'] === 'true') {
        note(`Resumed at offset ${hasOffset ? offset : '?'}: the updates before it were no longer retained (the table shows the newest quotes anyway).`, 'warn');
      } else if (!hasOffset || offset === from) {
        note(`Resumed from offset ${from}: nothing missed.`);
      } else if (offset > from) {
        note(`Resumed at offset ${offset}: the ${offset - from} updates before it were not replayed (the table shows the newest quotes anyway).`, 'warn');
      } else {
        note(`The server's offsets started over (did it restart?): live again from offset ${offset}.`, 'warn');
      }
      state.resumingFrom = null;
    } else if (state.received === 1) {
      note(hasOffset ? 'Live. After a reconnect the page resumes from the last offset it showed.'
        : 'Live. This server sends no offsets: after a reconnect the table catches up with live updates.');
    }
    if (frame.headers['x-stream-gap'] === 'true') state.gaps += 1;
    if (hasOffset) {
      if (state.lastOffset !== null && offset > state.lastOffset + 1) state.skipped += offset - state.lastOffset - 1;
      state.offsets = true;
      state.lastOffset = offset;
    }
    let quote;
    try {
      quote = JSON.parse(frame.text());
    } catch (e) {
      return;
    }
    if (!quote || typeof quote.symbol !== 'string' || !Number.isFinite(quote.price)) return;
    state.pending.set(quote.symbol, quote);
    if (!state.frame) state.frame = requestAnimationFrame(draw);
  }

  // ---- the table -----------------------------------------------------------------------------

  const fmtPrice = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const fmtChange = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: 'exceptZero' });
  const fmtTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

  function cell(tr, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  }

  function addRow(symbol) {
    const tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    const sym = cell(tr, 'sym');
    sym.textContent = symbol;
    const row = {
      tr,
      price: cell(tr, 'num price'),
      change: cell(tr, 'num change'),
      pct: cell(tr, 'num pct'),
      time: cell(tr, 'num time'),
      last: null,
      flash: 0,
    };
    // Rows sorted by symbol.
    const after = Array.from(ui.rows.children).find((r) => r.dataset.symbol > symbol);
    ui.rows.insertBefore(tr, after || null);
    state.rows.set(symbol, row);
    ui.count.textContent = String(state.rows.size);
    ui.empty.hidden = true;
    return row;
  }

  function draw() {
    state.frame = 0;
    const now = Date.now();
    for (const [symbol, q] of state.pending) {
      const row = state.rows.get(symbol) || addRow(symbol);
      const dir = Number.isFinite(q.change) ? Math.sign(q.change) : 0;
      row.price.textContent = fmtPrice.format(q.price);
      row.change.textContent = Number.isFinite(q.change) ? fmtChange.format(q.change) : '';
      row.pct.textContent = Number.isFinite(q.change_pct) ? `${fmtChange.format(q.change_pct)}%` : '';
      row.time.textContent = Number.isFinite(q.ts) ? fmtTime.format(new Date(q.ts)) : '';
      row.tr.dataset.dir = dir > 0 ? 'up' : dir < 0 ? 'down' : 'flat';
      if (row.last !== null && q.price !== row.last) {
        // Two animation names take turns, so that a new flash restarts without a reflow.
        row.flash = 1 - row.flash;
        row.tr.dataset.flash = `${q.price > row.last ? 'up' : 'down'}${row.flash}`;
        row.flashedAt = now;
      }
      row.last = q.price;
      state.shownTimes.push(now);
    }
    state.pending.clear();
    ui.offset.textContent = state.lastOffset === null ? '–' : String(state.lastOffset);
  }

  /** Once a second: updates per second, and flashes that are over. */
  function everySecond() {
    const now = Date.now();
    while (state.shownTimes.length && state.shownTimes[0] < now - 1000) state.shownTimes.shift();
    ui.rate.textContent = String(state.shownTimes.length);
    for (const row of state.rows.values()) {
      if (row.tr.dataset.flash && now - row.flashedAt > FLASH_MS) delete row.tr.dataset.flash;
    }
  }

  // ---- start ---------------------------------------------------------------------------------

  ui.conn.addEventListener('click', retryNow);
  window.addEventListener('online', retryNow);
  setInterval(everySecond, 1000);
  window.wsxQuotes = { state, connect, retryNow };
  connect();
})();
