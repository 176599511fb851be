// wsx chat: the demo page of `wsx serve`. Plain JavaScript, no build step.
//
// One WebSocket per room: ws(s)://HOST/ws/chat/ROOM. JSON text messages:
//   page -> server  {type:"join",name,since?}  {type:"message",text}  {type:"ping",t}
//                   {type:"file",name,mime,size} followed by one binary message
//   server -> page  {type:"welcome",name,room,max_file_bytes}  {type:"presence",users}
//                   {type:"join",name}  {type:"leave",name}  {type:"message",name,text,ts,offset}
//                   (presence: the whole list, once after joining, and again in the place of
//                   the changes a page that reads slowly missed; join and leave: the changes
//                   after that, from which the page keeps its list)
//                   {type:"file",name,mime,size,from,ts} followed by one binary message
//                   {type:"pong",t}  {type:"error",code,message}
// The round-trip time comes from ping/pong messages (pages cannot send WebSocket pings).
// After a lost connection the page reconnects with exponential backoff and joins again with
// since = the last message offset it showed + 1: the server (any node of the cluster) sends
// exactly the messages it missed, then the live ones (gap:true on the first one if some were
// too old to keep); messages at or below the last offset shown are skipped.
// Open /#room=lobby&name=alice to join straight away.
//
// STOMP mode (/?transport=stomp, or the join form's switch): the page speaks STOMP 1.2 to
// ws(s)://HOST/stomp with web/stomp.js, and the room is the topic /topic/chat.ROOM, so pages on
// every `wsx serve` node that shares one broker (--broker redis://...) meet in it. A message is
// a SEND with the same JSON as above (application/json): {type:"message",name,text,ts,id}, id
// being this page's random id; a file is a SEND with a binary body, its content-type, and the
// headers chat-type:file, chat-file-name, chat-from, chat-id, chat-ts. No server-side room in
// this mode: pages announce themselves on the topic with {type:"join"|"here"|"leave",name,id}
// (join on arrival, here as an answer and every 15 s, leave on the way out), and the list of
// people is what was heard in the last 45 s; no history, no name check. The RTT is the round
// trip of a receipt (BEGIN with a receipt, then ABORT). An ERROR frame's message is shown.
'use strict';

(() => {
  const PING_EVERY_MS = 3000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const MAX_ITEMS = 400;
  const RTT_SAMPLES = 30;
  const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const STOMP_MAX_FILE_BYTES = 1 << 20; // the largest STOMP body wsx serve takes
  const PRESENCE_EVERY_MS = 15000;
  const PRESENCE_TTL_MS = 45000;
  const TRANSPORTS = new Set(['chat', 'stomp']);
  const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'), connText: $('conn-text'), rtt: $('rtt'), rttBox: $('rtt-box'), spark: $('spark-line'),
    joinView: $('join-view'), joinForm: $('join-form'), name: $('name'), room: $('room'), joinError: $('join-error'),
    chatView: $('chat-view'), roomName: $('room-name'), users: $('users'), count: $('count'), leave: $('leave'),
    conversation: $('conversation'), messages: $('messages'), drop: $('drop'),
    composer: $('composer'), text: $('text'), file: $('file'),
    transports: document.querySelectorAll('input[name="transport"]'), transportHint: $('transport-hint'),
    via: $('via'), viaTopic: $('via-topic'), presenceNote: $('presence-note'),
  };

  const state = {
    transport: 'chat', // or 'stomp'
    ws: null,
    stomp: null, // the WsxStomp.Client in STOMP mode
    clientId: randomId(), // marks this page's own messages and presence in STOMP mode
    peers: new Map(), // STOMP mode: id -> {name, last}
    users: [], // chat mode: the room's members, from presence, then join and leave
    presenceTimer: 0,
    pingSeq: 0,
    pings: new Map(), // STOMP mode: receipt id -> performance.now() at sending
    room: '',
    wantedName: '',
    myName: '',
    welcomed: false, // got a welcome in this room at least once
    live: false, // the current connection got its welcome
    attempt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    retryAt: 0,
    pingTimer: 0,
    rtts: [],
    lastOffset: null, // chat mode: the offset of the last message shown (for `since`)
    pendingFile: null,
    maxFileBytes: 1 << 20,
    seen: new Set(),
    unread: 0,
  };

  // ---- helpers -------------------------------------------------------------------------------

  function randomId() {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function stompTopic(room) {
    return `/topic/chat.${room}`;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svgIcon(pathData) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', pathData);
    svg.append(path);
    return svg;
  }

  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function avatar(name) {
    const a = el('span', 'avatar', Array.from(name)[0] || '?');
    a.style.setProperty('--hue', hue(name));
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  function clock(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function humanSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function validName(name) {
    const n = Array.from(name.trim()).length;
    return n >= 1 && n <= 32;
  }

  function setConn(kind, text) {
    ui.conn.dataset.state = kind;
    ui.connText.textContent = text;
    ui.conn.title = kind === 'reconnecting' ? 'Click to reconnect now' : '';
    ui.rttBox.hidden = kind !== 'open';
    ui.chatView.classList.toggle('offline', kind !== 'open');
  }

  function updateTitle() {
    const base = state.room ? `#${state.room} · wsx chat` : 'wsx chat';
    document.title = state.unread ? `(${state.unread}) ${base}` : base;
  }

  // ---- message list ----------------------------------------------------------------------------

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  // Whether the list is scrolled to the bottom: new content then keeps it there.
  let pinned = true;

  function scrollToEnd() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function addItem(li, { force = false } = {}) {
    const stick = force || pinned;
    ui.messages.append(li);
    while (ui.messages.children.length > MAX_ITEMS) {
      const old = ui.messages.firstElementChild;
      if (old.dataset.url) URL.revokeObjectURL(old.dataset.url);
      old.remove();
    }
    if (stick) {
      scrollToEnd();
      pinned = true;
    }
    if (document.hidden && li.classList.contains('msg')) {
      state.unread += 1;
      updateTitle();
    }
  }

  function addSys(text, kind) {
    addItem(el('li', `sys${kind ? ` ${kind}` : ''}`, text));
  }

  function bubbleFor(name, ts, mine) {
    const li = el('li', `msg${mine ? ' mine' : ''}`);
    li.style.setProperty('--hue', hue(name));
    li.dataset.name = name;
    li.dataset.ts = String(ts);
    const prev = ui.messages.lastElementChild;
    if (prev && prev.classList.contains('msg') && prev.dataset.name === name &&
        ts - Number(prev.dataset.ts) < 120000) {
      li.classList.add('cont');
    }
    const bubble = el('div', 'bubble');
    const meta = el('div', 'meta');
    meta.append(el('span', 'who', name), el('time', '', clock(ts)));
    bubble.append(meta);
    li.append(avatar(name), bubble);
    return { li, bubble };
  }

  function addMessage(name, text, ts, mine = name === state.myName) {
    const key = `${ts}\u0000${name}\u0000${text}`;
    if (state.seen.has(key)) return; // replayed history after a reconnect
    state.seen.add(key);
    if (state.seen.size > 2000) state.seen.delete(state.seen.values().next().value);
    const { li, bubble } = bubbleFor(name, ts, mine);
    bubble.append(el('div', 'text', text));
    addItem(li, { force: mine });
  }

  function addFile(from, header, blob, ts, mine) {
    const { li, bubble } = bubbleFor(from, ts, mine);
    const url = URL.createObjectURL(blob);
    li.dataset.url = url;
    const card = el('div', 'file-card');
    const mime = (header.mime || '').toLowerCase();
    if (INLINE_IMAGES.has(mime)) {
      const img = el('img');
      img.alt = header.name;
      img.src = url;
      img.addEventListener('load', () => { if (pinned) scrollToEnd(); });
      card.append(img);
    }
    const link = el('a', 'file-link');
    link.href = url;
    link.download = header.name || 'file';
    link.append(svgIcon('M12 3v12m0 0-5-5m5 5 5-5M4 17v2a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-2'), el('span', '', header.name || 'file'));
    const line = el('div', 'file-line');
    line.append(link, el('span', 'file-size', humanSize(blob.size)));
    card.append(line);
    bubble.append(card);
    addItem(li, { force: mine });
  }

  function renderUsers(users) {
    ui.users.replaceChildren(...users.map((name) => {
      const li = el('li');
      if (name === state.myName) li.className = 'me';
      li.title = name;
      li.append(avatar(name), el('span', 'uname', name));
      if (name === state.myName) li.append(el('span', 'you', '(you)'));
      return li;
    }));
    ui.count.textContent = String(users.length);
  }

  // ---- round-trip time -----------------------------------------------------------------------

  function sendPing() {
    send({ type: 'ping', t: performance.now() });
  }

  function recordRtt(ms) {
    state.rtts.push(ms);
    if (state.rtts.length > RTT_SAMPLES) state.rtts.shift();
    ui.rtt.textContent = `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    const r = state.rtts;
    const min = Math.min(...r);
    const max = Math.max(...r);
    const avg = r.reduce((a, b) => a + b, 0) / r.length;
    ui.rttBox.title = `Round-trip time over the last ${r.length} pings: ` +
      `min ${min.toFixed(1)} ms, avg ${avg.toFixed(1)} ms, max ${max.toFixed(1)} ms`;
    const top = Math.max(max, 1);
    const step = r.length > 1 ? 60 / (r.length - 1) : 0;
    ui.spark.setAttribute('points', r.map((v, i) => `${(i * step).toFixed(1)},${(17 - (v / top) * 15).toFixed(1)}`).join(' '));
  }

  function clearRtt() {
    state.rtts = [];
    ui.rtt.textContent = '\u2013';
    ui.spark.setAttribute('points', '');
  }

  // ---- connection ----------------------------------------------------------------------------

  function send(obj) {
    if (state.transport === 'stomp') return stompSend(obj);
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function clearTimers() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    clearInterval(state.pingTimer);
    clearInterval(state.presenceTimer);
    state.retryTimer = state.countdownTimer = state.pingTimer = state.presenceTimer = 0;
  }

  function connect() {
    clearTimers();
    setConn(state.attempt ? 'reconnecting' : 'connecting', state.attempt ? 'reconnecting…' : 'connecting…');
    if (state.transport === 'stomp') {
      connectStomp();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${encodeURIComponent(state.room)}`);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    state.ws = ws;
    ws.onopen = () => {
      if (ws !== state.ws) return;
      const join = { type: 'join', name: state.wantedName };
      if (state.lastOffset !== null) join.since = state.lastOffset + 1;
      send(join);
      sendPing();
      state.pingTimer = setInterval(sendPing, PING_EVERY_MS);
    };
    ws.onmessage = (ev) => {
      if (ws !== state.ws) return;
      if (typeof ev.data === 'string') onText(ev.data);
      else onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      if (ws !== state.ws) return;
      onClose(ev);
    };
  }

  function closeReason(ev) {
    switch (ev.code) {
      case 1001: return 'The server went away' + (ev.reason ? ` (${ev.reason})` : '');
      case 1008: return `Disconnected by the server${ev.reason ? `: ${ev.reason}` : ''}`;
      case 1009: return 'Disconnected: a message was larger than the server accepts';
      case 1006: return 'Connection lost';
      default: return `Disconnected (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`;
    }
  }

  function onClose(ev) {
    clearTimers();
    state.ws = null;
    state.stomp = null;
    state.pings.clear();
    state.pendingFile = null;
    clearRtt();
    ui.composer.classList.add('disabled');
    if (state.live) addSys(closeReason(ev), ev.code === 1001 ? '' : 'err');
    else if (state.attempt === 0) addSys('Cannot reach the server: retrying', 'err');
    state.live = false;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    state.attempt += 1;
    state.retryAt = Date.now() + delay;
    const tick = () => {
      const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      setConn('reconnecting', s > 0 ? `reconnecting in ${s}s` : 'reconnecting…');
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
    state.retryTimer = setTimeout(connect, delay);
  }

  function retryNow() {
    if (state.room && !state.ws && state.retryTimer) connect();
  }

  // ---- protocol ------------------------------------------------------------------------------

  function onText(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    onMsg(msg);
  }

  function onMsg(msg) {
    switch (msg.type) {
      case 'welcome': {
        const again = state.welcomed;
        state.welcomed = true;
        state.live = true;
        state.attempt = 0;
        state.myName = msg.name;
        state.maxFileBytes = msg.max_file_bytes || state.maxFileBytes;
        ui.composer.classList.remove('disabled');
        setConn('open', 'connected');
        if (again) addSys('Reconnected');
        else addSys(`You joined #${msg.room} as ${msg.name}`);
        if (msg.name !== state.wantedName.trim()) addSys(`“${state.wantedName.trim()}” is taken in this room: you are “${msg.name}”`);
        break;
      }
      case 'presence':
        if (Array.isArray(msg.users)) {
          state.users = msg.users.map(String);
          renderUsers(state.users);
        }
        break;
      case 'join': {
        const name = String(msg.name);
        if (name !== state.myName) addSys(`${name} joined`);
        if (!state.users.includes(name)) {
          state.users.push(name);
          renderUsers(state.users);
        }
        break;
      }
      case 'leave': {
        const name = String(msg.name);
        addSys(`${name} left`);
        const i = state.users.indexOf(name);
        if (i >= 0) {
          state.users.splice(i, 1);
          renderUsers(state.users);
        }
        break;
      }
      case 'message':
        if (Number.isSafeInteger(msg.offset)) {
          if (state.lastOffset !== null && msg.offset <= state.lastOffset) break; // seen already
          // gap: the server no longer had them all (or could not replay them).
          if (msg.gap || (state.lastOffset !== null && msg.offset > state.lastOffset + 1)) {
            addSys('Some messages were missed while disconnected', 'err');
          }
          state.lastOffset = msg.offset;
        }
        addMessage(String(msg.name), String(msg.text), Number(msg.ts) || Date.now());
        break;
      case 'file':
        state.pendingFile = msg;
        break;
      case 'pong': {
        const rtt = performance.now() - Number(msg.t);
        if (Number.isFinite(rtt) && rtt >= 0) recordRtt(rtt);
        break;
      }
      case 'error':
        if (msg.code === 'invalid_name' && !state.welcomed) {
          leaveRoom();
          showJoinError(msg.message);
        } else {
          addSys(msg.message || 'The server refused that', 'err');
        }
        break;
      default:
        break;
    }
  }

  function onBinary(data) {
    const header = state.pendingFile || { name: 'file', mime: 'application/octet-stream', from: '?', ts: Date.now() };
    state.pendingFile = null;
    const typed = new Blob([data], { type: header.mime || 'application/octet-stream' });
    addFile(String(header.from), header, typed, Number(header.ts) || Date.now(), false);
  }

  function sendText() {
    const text = ui.text.value;
    if (!text.trim()) return;
    if (send({ type: 'message', text })) {
      ui.text.value = '';
      autosize();
    } else {
      addSys('Not connected: the message was not sent', 'err');
    }
  }

  function sendFile(file) {
    const open = state.transport === 'stomp'
      ? state.stomp !== null && state.stomp.isOpen()
      : state.ws !== null && state.ws.readyState === WebSocket.OPEN;
    if (!open || !state.welcomed) {
      addSys('Not connected: the file was not sent', 'err');
      return;
    }
    if (file.size > state.maxFileBytes) {
      addSys(`${file.name} is ${humanSize(file.size)}: files are limited to ${humanSize(state.maxFileBytes)}`, 'err');
      return;
    }
    const header = { type: 'file', name: file.name || 'file', mime: file.type || 'application/octet-stream', size: file.size };
    if (state.transport === 'stomp') {
      stompSendFile(file, header);
      return;
    }
    send(header);
    state.ws.send(file);
    addFile(state.myName, header, file, Date.now(), true);
  }

  // ---- STOMP mode ----------------------------------------------------------------------------

  function connectStomp() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // A JWT for a server started with --jwt-secret/--jwt-public-key: /?transport=stomp&access_token=...
    const token = new URLSearchParams(location.search).get('access_token');
    const url = `${scheme}//${location.host}/stomp${token ? `?access_token=${encodeURIComponent(token)}` : ''}`;
    // heart-beat 0,20000: the page sends none (timers of background tabs are throttled), the
    // server sends one every 20 s of silence (a lone "\n"), and 60 s without any means dead.
    const c = new window.WsxStomp.Client(url, { heartBeat: [0, 20000] });
    state.stomp = c;
    c.onconnect = () => {
      if (c !== state.stomp) return;
      c.subscribe(stompTopic(state.room), 'room', { receipt: 'subscribed' });
      sendPing();
      state.pingTimer = setInterval(sendPing, PING_EVERY_MS);
    };
    c.onreceipt = (id) => {
      if (c !== state.stomp) return;
      if (id === 'subscribed') {
        onStompJoined();
      } else if (state.pings.has(id)) {
        const rtt = performance.now() - state.pings.get(id);
        state.pings.delete(id);
        if (Number.isFinite(rtt) && rtt >= 0) recordRtt(rtt);
      }
    };
    c.onmessage = (frame) => { if (c === state.stomp) onStompMessage(frame); };
    c.onerror = (frame) => { if (c === state.stomp) onStompError(frame); };
    c.onclose = (ev) => { if (c === state.stomp) onClose(ev); };
    try {
      c.open();
    } catch (e) {
      state.stomp = null;
      scheduleReconnect();
    }
  }

  /** The ping/message/presence objects of the page as STOMP frames. */
  function stompSend(obj) {
    const c = state.stomp;
    if (!c || !c.isOpen()) return false;
    const json = { 'content-type': 'application/json' };
    switch (obj.type) {
      case 'ping': {
        // A receipt round trip: BEGIN an empty transaction with a receipt, then ABORT it.
        const id = `ping-${++state.pingSeq}`;
        state.pings.set(id, obj.t);
        if (state.pings.size > 20) state.pings.delete(state.pings.keys().next().value);
        return c.frame('BEGIN', { transaction: id, receipt: id }) && c.frame('ABORT', { transaction: id });
      }
      case 'message':
        return c.send(stompTopic(state.room), JSON.stringify({
          type: 'message', name: state.myName, text: obj.text, ts: Date.now(), id: state.clientId,
        }), json);
      case 'join':
      case 'here':
      case 'leave':
        return c.send(stompTopic(state.room), JSON.stringify({ type: obj.type, name: state.myName, id: state.clientId }), json);
      default:
        return false;
    }
  }

  function stompSendFile(file, header) {
    file.arrayBuffer().then((buf) => {
      const c = state.stomp;
      const ts = Date.now();
      const sent = c !== null && c.isOpen() && c.send(stompTopic(state.room), new Uint8Array(buf), {
        'content-type': header.mime,
        'chat-type': 'file',
        'chat-file-name': header.name,
        'chat-from': state.myName,
        'chat-id': state.clientId,
        'chat-ts': String(ts),
      });
      if (sent) addFile(state.myName, header, file, ts, true);
      else addSys('Not connected: the file was not sent', 'err');
    }, () => addSys(`Cannot read ${header.name}`, 'err'));
  }

  /** Subscribed to the room's topic: what the welcome is in /ws/chat mode. */
  function onStompJoined() {
    onMsg({ type: 'welcome', name: state.wantedName, room: state.room, max_file_bytes: STOMP_MAX_FILE_BYTES });
    stompSend({ type: 'join' });
    renderPeers();
    state.presenceTimer = setInterval(presenceTick, PRESENCE_EVERY_MS);
  }

  function onStompMessage(frame) {
    const h = frame.headers;
    if (h['chat-type'] === 'file') {
      if (h['chat-id'] === state.clientId) return; // shown when it was sent
      const header = {
        name: h['chat-file-name'] || 'file',
        mime: h['content-type'] || 'application/octet-stream',
        from: h['chat-from'] || '?',
      };
      const ts = Number(h['chat-ts']) || Date.now();
      addFile(header.from, header, new Blob([frame.body], { type: header.mime }), ts, false);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(frame.text());
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const mine = msg.id === state.clientId;
    switch (msg.type) {
      case 'message':
        addMessage(String(msg.name), String(msg.text), Number(msg.ts) || Date.now(), mine);
        break;
      case 'join':
      case 'here':
      case 'leave':
        if (!mine) onPeer(msg);
        break;
      default:
        break;
    }
  }

  function onPeer(msg) {
    const id = String(msg.id);
    const name = String(msg.name || '?');
    if (msg.type === 'leave') {
      if (state.peers.delete(id)) addSys(`${name} left`);
    } else {
      const known = state.peers.has(id);
      state.peers.set(id, { name, last: Date.now() });
      if (msg.type === 'join') {
        if (!known) addSys(`${name} joined`);
        stompSend({ type: 'here' }); // so that the newcomer learns who is here
      }
    }
    renderPeers();
  }

  function presenceTick() {
    stompSend({ type: 'here' });
    const old = Date.now() - PRESENCE_TTL_MS;
    for (const [id, peer] of state.peers) {
      if (peer.last < old) {
        state.peers.delete(id);
        addSys(`${peer.name} left`);
      }
    }
    renderPeers();
  }

  function renderPeers() {
    const others = Array.from(state.peers.values(), (p) => p.name).sort((a, b) => a.localeCompare(b));
    renderUsers(state.myName ? [state.myName, ...others] : others);
  }

  function onStompError(frame) {
    const text = frame.headers.message || frame.text().trim() || 'the server sent an ERROR frame';
    if (!state.welcomed) {
      // Refused before joining (a JWT is required, say): back to the form, no retry loop.
      leaveRoom();
      showJoinError(`STOMP: ${text}`);
    } else {
      addSys(`STOMP error: ${text}`, 'err');
    }
  }

  function setTransport(transport, { updateUrl = true } = {}) {
    state.transport = TRANSPORTS.has(transport) ? transport : 'chat';
    for (const input of ui.transports) input.checked = input.value === state.transport;
    ui.transportHint.textContent = state.transport === 'stomp'
      ? 'STOMP 1.2 at /stomp, topic /topic/chat.ROOM: shared by every node on the same broker.'
      : 'The server\'s rooms at /ws/chat/ROOM, with presence and history.';
    if (updateUrl) {
      const q = new URLSearchParams(location.search);
      if (state.transport === 'stomp') q.set('transport', 'stomp');
      else q.delete('transport');
      const search = q.toString();
      history.replaceState(null, '', `${location.pathname}${search ? `?${search}` : ''}${location.hash}`);
    }
  }

  function urlTransport() {
    const t = new URLSearchParams(location.search).get('transport') ||
      new URLSearchParams(location.hash.slice(1)).get('transport');
    return TRANSPORTS.has(t) ? t : '';
  }

  // ---- views ---------------------------------------------------------------------------------

  function showJoinError(text) {
    ui.joinError.textContent = text;
    ui.joinError.hidden = !text;
  }

  function joinRoom(name, room) {
    state.wantedName = name.trim();
    state.room = room;
    state.myName = '';
    state.welcomed = false;
    state.attempt = 0;
    state.lastOffset = null;
    state.seen.clear();
    state.peers.clear();
    state.users = [];
    try { localStorage.setItem('wsx.name', state.wantedName); } catch (e) { /* private mode */ }
    history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
    for (const li of ui.messages.querySelectorAll('li[data-url]')) URL.revokeObjectURL(li.dataset.url);
    ui.messages.replaceChildren();
    renderUsers([]);
    ui.roomName.textContent = room;
    const stomp = state.transport === 'stomp';
    ui.via.hidden = !stomp;
    ui.viaTopic.textContent = stompTopic(room);
    ui.presenceNote.hidden = !stomp;
    ui.text.placeholder = `Message #${room}`;
    ui.composer.classList.add('disabled');
    ui.joinView.hidden = true;
    ui.chatView.hidden = false;
    updateTitle();
    connect();
    ui.text.focus({ preventScroll: true });
  }

  function leaveRoom() {
    clearTimers();
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, 'left the room');
    if (state.stomp) {
      if (state.welcomed) stompSend({ type: 'leave' });
      state.stomp.disconnect();
      state.stomp = null;
    }
    state.peers.clear();
    state.pings.clear();
    state.room = '';
    state.welcomed = false;
    state.live = false;
    clearRtt();
    setConn('idle', 'not connected');
    history.replaceState(null, '', location.pathname + location.search);
    ui.chatView.hidden = true;
    ui.joinView.hidden = false;
    updateTitle();
    ui.name.focus();
  }

  function autosize() {
    ui.text.style.height = 'auto';
    ui.text.style.height = `${Math.min(ui.text.scrollHeight + 2, 160)}px`;
  }

  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    return { room: params.get('room') || '', name: params.get('name') || '' };
  }

  // ---- events --------------------------------------------------------------------------------

  ui.joinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = ui.name.value;
    const room = ui.room.value.trim();
    if (!validName(name)) return showJoinError('Names have 1 to 32 characters.');
    if (!ROOM_RE.test(room)) return showJoinError('Room names use letters, digits, - _ and . (up to 64).');
    showJoinError('');
    joinRoom(name, room);
  });

  ui.messages.addEventListener('scroll', () => { pinned = nearBottom(); }, { passive: true });
  window.addEventListener('resize', () => { if (pinned) scrollToEnd(); });
  ui.leave.addEventListener('click', leaveRoom);
  for (const input of ui.transports) {
    input.addEventListener('change', () => { if (input.checked) setTransport(input.value); });
  }
  // STOMP mode: tell the others right away (a closed tab would otherwise linger for 45 s).
  window.addEventListener('pagehide', () => { if (state.stomp) stompSend({ type: 'leave' }); });
  ui.conn.addEventListener('click', retryNow);
  window.addEventListener('online', retryNow);

  ui.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendText();
  });
  ui.text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendText();
    }
  });
  ui.text.addEventListener('input', autosize);
  ui.text.addEventListener('paste', (ev) => {
    const files = ev.clipboardData ? Array.from(ev.clipboardData.files) : [];
    if (files.length) {
      ev.preventDefault();
      files.forEach(sendFile);
    }
  });
  ui.file.addEventListener('change', () => {
    Array.from(ui.file.files).forEach(sendFile);
    ui.file.value = '';
  });

  let dragDepth = 0;
  ui.conversation.addEventListener('dragenter', (ev) => {
    if (!ev.dataTransfer || !Array.from(ev.dataTransfer.types).includes('Files')) return;
    ev.preventDefault();
    dragDepth += 1;
    ui.drop.hidden = false;
  });
  ui.conversation.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && Array.from(ev.dataTransfer.types).includes('Files')) ev.preventDefault();
  });
  ui.conversation.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) ui.drop.hidden = true;
  });
  ui.conversation.addEventListener('drop', (ev) => {
    ev.preventDefault();
    dragDepth = 0;
    ui.drop.hidden = true;
    Array.from(ev.dataTransfer ? ev.dataTransfer.files : []).forEach(sendFile);
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.unread) {
      state.unread = 0;
      updateTitle();
    }
  });

  window.addEventListener('hashchange', () => {
    const { room, name } = fromHash();
    if (room && room !== state.room && ROOM_RE.test(room)) {
      const who = name || state.wantedName || ui.name.value;
      if (validName(who)) {
        if (state.room) leaveRoom();
        joinRoom(who, room);
      }
    }
  });

  // ---- start ---------------------------------------------------------------------------------

  let saved = '';
  try { saved = localStorage.getItem('wsx.name') || ''; } catch (e) { /* private mode */ }
  setTransport(urlTransport() || 'chat', { updateUrl: urlTransport() !== '' });
  const start = fromHash();
  ui.name.value = start.name || saved;
  ui.room.value = ROOM_RE.test(start.room) ? start.room : 'lobby';
  if (ROOM_RE.test(start.room) && validName(ui.name.value)) {
    joinRoom(ui.name.value, start.room);
  } else {
    (ui.name.value ? ui.room : ui.name).focus();
  }
})();
