// wsx chat: a small STOMP 1.2 client over WebSocket for the chat page's STOMP mode
// (`/?transport=stomp`). Plain JavaScript, no build step, no dependencies; app.js uses it as
// `window.WsxStomp`.
//
// One STOMP frame per WebSocket message: text messages for text frames, binary messages for
// frames with a binary body (a file). A lone "\n" (or "\r\n") is the server's heart-beat. Header
// values are escaped as STOMP 1.2 says (\\ \n \r \c; not in CONNECT/CONNECTED); a body is read
// by its content-length when the frame has one, up to the first NUL otherwise.
//
//   const c = new WsxStomp.Client('ws://HOST/stomp', { heartBeat: [0, 20000] });
//   c.onconnect = (frame) => c.subscribe('/topic/chat.lobby', 'sub-0', { receipt: 'r1' });
//   c.onmessage = (frame) => console.log(frame.headers.destination, frame.text());
//   c.onreceipt = (id) => {};  c.onerror = (frame) => {};  c.onclose = (closeEvent) => {};
//   c.open();  c.send('/topic/chat.lobby', '{"text":"hi"}', { 'content-type': 'application/json' });
//
// WsxStomp.Backoff gives reconnect delays (exponential, with jitter); the quote page uses it.
'use strict';

(() => {
  const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8');

  function escapeHeader(s) {
    return String(s).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
  }

  function unescapeHeader(s) {
    return s.replace(/\\([\\rnc])/g, (_, c) => ({ '\\': '\\', r: '\r', n: '\n', c: ':' })[c]);
  }

  /**
   * Encode one frame. `headers` is an object (or [name, value] pairs); `body` a string or a
   * Uint8Array (or nothing). A string body gives a string (a text message), bytes give bytes.
   * content-length is added for every body.
   */
  function encodeFrame(command, headers = {}, body = '') {
    const escape = command === 'CONNECT' || command === 'STOMP' ? String : escapeHeader;
    const bytes = typeof body === 'string' ? encoder.encode(body) : body;
    let head = `${command}\n`;
    for (const [name, value] of Array.isArray(headers) ? headers : Object.entries(headers)) {
      if (value === undefined || value === null) continue;
      head += `${escape(name)}:${escape(value)}\n`;
    }
    if (bytes.length || command === 'SEND') head += `content-length:${bytes.length}\n`;
    head += '\n';
    if (typeof body === 'string') return `${head}${body}\0`;
    const h = encoder.encode(head);
    const out = new Uint8Array(h.length + bytes.length + 1);
    out.set(h, 0);
    out.set(bytes, h.length);
    return out;
  }

  /** A received frame: command, headers (first value wins, as in STOMP 1.2), body bytes. */
  class Frame {
    constructor(command, headers, body) {
      this.command = command;
      this.headers = headers;
      this.body = body;
    }

    /** The body as text (UTF-8). */
    text() {
      return decoder.decode(this.body);
    }
  }

  /**
   * Parse the frames in one WebSocket message (a string or an ArrayBuffer); heart-beats (EOLs
   * between frames) are skipped. Throws on a malformed frame.
   */
  function parseFrames(data) {
    const buf = typeof data === 'string' ? encoder.encode(data) : new Uint8Array(data);
    const frames = [];
    let pos = 0;
    const readLine = () => {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) throw new Error('truncated frame (no end of line)');
      let end = nl;
      if (end > pos && buf[end - 1] === 13) end -= 1;
      const line = decoder.decode(buf.subarray(pos, end));
      pos = nl + 1;
      return line;
    };
    for (;;) {
      while (pos < buf.length && (buf[pos] === 10 || buf[pos] === 13)) pos += 1; // heart-beats
      if (pos >= buf.length) break;
      const command = readLine();
      const unescape = command === 'CONNECTED' ? String : unescapeHeader;
      const headers = Object.create(null);
      for (let line = readLine(); line !== ''; line = readLine()) {
        const colon = line.indexOf(':');
        if (colon < 0) throw new Error(`bad header line "${line}"`);
        const name = unescape(line.slice(0, colon));
        if (!(name in headers)) headers[name] = unescape(line.slice(colon + 1));
      }
      let end;
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (!Number.isInteger(n) || n < 0) throw new Error(`bad content-length "${headers['content-length']}"`);
        end = pos + n;
        if (end >= buf.length || buf[end] !== 0) throw new Error('frame body does not end with NUL');
      } else {
        end = buf.indexOf(0, pos);
        if (end < 0) throw new Error('frame without NUL');
      }
      frames.push(new Frame(command, headers, buf.slice(pos, end)));
      pos = end + 1;
    }
    return frames;
  }

  /** One STOMP session over one WebSocket. Not reused: make a new Client to reconnect. */
  class Client {
    /**
     * url: ws(s)://HOST/stomp. Options: heartBeat [cx, cy] in ms (what this client can send,
     * what it wants to receive), host (the CONNECT host header), connectHeaders (login,
     * passcode, Authorization…).
     */
    constructor(url, { heartBeat = [0, 20000], host = location.hostname, connectHeaders = {} } = {}) {
      this.url = url;
      this.heartBeat = heartBeat;
      this.host = host;
      this.connectHeaders = connectHeaders;
      this.ws = null;
      this.connected = false;
      this.version = '';
      this.server = '';
      this.lastIn = 0;
      this.lastOut = 0;
      this.timers = [];
      this.onconnect = () => {};
      this.onmessage = () => {};
      this.onreceipt = () => {};
      this.onerror = () => {};
      this.onclose = () => {};
    }

    /** Open the WebSocket and send CONNECT. Throws like `new WebSocket` on a bad URL. */
    open() {
      const ws = new WebSocket(this.url, SUBPROTOCOLS);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      ws.onopen = () => {
        this.raw(encodeFrame('CONNECT', {
          'accept-version': '1.2,1.1',
          host: this.host,
          'heart-beat': `${this.heartBeat[0]},${this.heartBeat[1]}`,
          ...this.connectHeaders,
        }));
      };
      ws.onmessage = (ev) => this.received(ev.data);
      ws.onclose = (ev) => {
        this.stopTimers();
        this.connected = false;
        this.onclose(ev);
      };
    }

    /** Whether the WebSocket is open and CONNECTED arrived. */
    isOpen() {
      return this.connected && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
    }

    raw(data) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(data);
      this.lastOut = Date.now();
      return true;
    }

    /** Send a frame; false when not connected. */
    frame(command, headers, body) {
      if (!this.isOpen()) return false;
      return this.raw(encodeFrame(command, headers, body));
    }

    subscribe(destination, id, headers = {}) {
      return this.frame('SUBSCRIBE', { destination, id, ack: 'auto', ...headers });
    }

    send(destination, body, headers = {}) {
      return this.frame('SEND', { destination, ...headers }, body);
    }

    /** DISCONNECT (with a receipt the server answers before it closes), then close. */
    disconnect() {
      if (this.isOpen()) this.frame('DISCONNECT', { receipt: 'disconnect' });
      this.close(1000, 'bye');
    }

    close(code = 1000, reason = '') {
      this.stopTimers();
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(code, reason);
    }

    stopTimers() {
      for (const t of this.timers) clearInterval(t);
      this.timers = [];
    }

    received(data) {
      this.lastIn = Date.now();
      let frames;
      try {
        frames = parseFrames(data);
      } catch (e) {
        this.onerror(new Frame('ERROR', { message: `unreadable frame from the server: ${e.message}` }, new Uint8Array()));
        this.close(4000, 'unreadable frame');
        return;
      }
      for (const f of frames) {
        switch (f.command) {
          case 'CONNECTED':
            this.connected = true;
            this.version = f.headers.version || '1.0';
            this.server = f.headers.server || '';
            this.startHeartBeats(f.headers['heart-beat']);
            this.onconnect(f);
            break;
          case 'MESSAGE':
            this.onmessage(f);
            break;
          case 'RECEIPT':
            this.onreceipt(f.headers['receipt-id']);
            break;
          case 'ERROR':
            this.onerror(f);
            break;
          default:
            break;
        }
      }
    }

    /** Heart-beats as negotiated with the server's `heart-beat: sx,sy` (STOMP 1.1+). */
    startHeartBeats(header) {
      const [sx, sy] = String(header || '0,0').split(',').map((v) => Number(v) || 0);
      const [cx, cy] = this.heartBeat;
      if (cx > 0 && sy > 0) {
        const every = Math.max(cx, sy);
        this.timers.push(setInterval(() => {
          if (Date.now() - this.lastOut >= every / 2) this.raw('\n');
        }, every / 2));
      }
      if (cy > 0 && sx > 0) {
        const every = Math.max(cy, sx);
        this.timers.push(setInterval(() => {
          // Nothing from the server for three periods: the connection is dead.
          if (Date.now() - this.lastIn > every * 3) this.close(4000, 'no heart-beat from the server');
        }, every));
      }
    }
  }

  /**
   * Reconnect delays: exponential backoff with jitter. The n-th delay is a random 50–100 % of
   * min(maxMs, firstMs × 2^n); `reset()` starts over (after a connection that worked).
   */
  class Backoff {
    constructor(firstMs = 500, maxMs = 15000) {
      this.firstMs = firstMs;
      this.maxMs = maxMs;
      this.attempt = 0;
    }

    /** The delay before the next attempt, in ms. */
    next() {
      const base = Math.min(this.maxMs, this.firstMs * 2 ** this.attempt);
      this.attempt += 1;
      return Math.round(base * (0.5 + Math.random() * 0.5));
    }

    reset() {
      this.attempt = 0;
    }
  }

  window.WsxStomp = { Client, Frame, Backoff, encodeFrame, parseFrames, escapeHeader, unescapeHeader };
})();
