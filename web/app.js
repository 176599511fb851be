// wsx chat: the demo page of `wsx serve`. Plain JavaScript, no build step.
//
// One WebSocket per room: ws(s)://HOST/ws/chat/ROOM. JSON text messages:
//   page -> server  {type:"join",name}  {type:"message",text}  {type:"ping",t}
//                   {type:"file",name,mime,size} followed by one binary message
//   server -> page  {type:"welcome",name,room,max_file_bytes}  {type:"presence",users}
//                   {type:"join",name}  {type:"leave",name}  {type:"message",name,text,ts}
//                   {type:"file",name,mime,size,from,ts} followed by one binary message
//                   {type:"pong",t}  {type:"error",code,message}
// The round-trip time comes from ping/pong messages (pages cannot send WebSocket pings).
// After a lost connection the page reconnects with exponential backoff and joins again.
// Open /#room=lobby&name=alice to join straight away.
'use strict';

(() => {
  const PING_EVERY_MS = 3000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const MAX_ITEMS = 400;
  const RTT_SAMPLES = 30;
  const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'), connText: $('conn-text'), rtt: $('rtt'), rttBox: $('rtt-box'), spark: $('spark-line'),
    joinView: $('join-view'), joinForm: $('join-form'), name: $('name'), room: $('room'), joinError: $('join-error'),
    chatView: $('chat-view'), roomName: $('room-name'), users: $('users'), count: $('count'), leave: $('leave'),
    conversation: $('conversation'), messages: $('messages'), drop: $('drop'),
    composer: $('composer'), text: $('text'), file: $('file'),
  };

  const state = {
    ws: null,
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
    pendingFile: null,
    maxFileBytes: 1 << 20,
    seen: new Set(),
    unread: 0,
  };

  // ---- helpers -------------------------------------------------------------------------------

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

  function addMessage(name, text, ts) {
    const key = `${ts}\u0000${name}\u0000${text}`;
    if (state.seen.has(key)) return; // replayed history after a reconnect
    state.seen.add(key);
    if (state.seen.size > 2000) state.seen.delete(state.seen.values().next().value);
    const mine = name === state.myName;
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
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function clearTimers() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    clearInterval(state.pingTimer);
    state.retryTimer = state.countdownTimer = state.pingTimer = 0;
  }

  function connect() {
    clearTimers();
    setConn(state.attempt ? 'reconnecting' : 'connecting', state.attempt ? 'reconnecting…' : 'connecting…');
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
      send({ type: 'join', name: state.wantedName });
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
        if (Array.isArray(msg.users)) renderUsers(msg.users.map(String));
        break;
      case 'join':
        if (msg.name !== state.myName) addSys(`${msg.name} joined`);
        break;
      case 'leave':
        addSys(`${msg.name} left`);
        break;
      case 'message':
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
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN || !state.welcomed) {
      addSys('Not connected: the file was not sent', 'err');
      return;
    }
    if (file.size > state.maxFileBytes) {
      addSys(`${file.name} is ${humanSize(file.size)}: files are limited to ${humanSize(state.maxFileBytes)}`, 'err');
      return;
    }
    const header = { type: 'file', name: file.name || 'file', mime: file.type || 'application/octet-stream', size: file.size };
    send(header);
    state.ws.send(file);
    addFile(state.myName, header, file, Date.now(), true);
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
    state.seen.clear();
    try { localStorage.setItem('wsx.name', state.wantedName); } catch (e) { /* private mode */ }
    history.replaceState(null, '', `#room=${encodeURIComponent(room)}`);
    for (const li of ui.messages.querySelectorAll('li[data-url]')) URL.revokeObjectURL(li.dataset.url);
    ui.messages.replaceChildren();
    renderUsers([]);
    ui.roomName.textContent = room;
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
    state.room = '';
    state.welcomed = false;
    state.live = false;
    clearRtt();
    setConn('idle', 'not connected');
    history.replaceState(null, '', location.pathname);
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
  const start = fromHash();
  ui.name.value = start.name || saved;
  ui.room.value = ROOM_RE.test(start.room) ? start.room : 'lobby';
  if (ROOM_RE.test(start.room) && validName(ui.name.value)) {
    joinRoom(ui.name.value, start.room);
  } else {
    (ui.name.value ? ui.room : ui.name).focus();
  }
})();
