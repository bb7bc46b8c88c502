// Shared helpers: API calls with a bearer token, the events WebSocket with automatic
// reconnection, polled JPEG monitors, and small DOM helpers.

/** The production id from the page URL (/console/{id}, /scene/{id}, /go/{id}). */
export function productionId() {
  const parts = location.pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[1] || '');
}

/** Create an element: h('button', {class: 'x', onclick: f, 'aria-label': 'y'}, 'text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** JSON API client for one production. */
export class Api {
  constructor(production, token) {
    this.production = production;
    this.token = token;
    this.base = `/api/productions/${encodeURIComponent(production)}`;
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.token}`, ...(extra || {}) };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), cache: 'no-store' };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const resp = await fetch(this.base + path, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  get(path = '') { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body); }
  del(path) { return this.request('DELETE', path); }
  command(body) { return this.post('/switcher', body); }
}

/**
 * The production's events WebSocket: sends {"token": ..., "source"?: ...} first, reconnects
 * with exponential backoff (0.5 s doubling to 10 s, jittered). Callbacks: onEvent(ev),
 * onStatus('connecting' | 'live' | 'reconnecting' | 'unauthorized').
 */
export class EventsSocket {
  constructor(production, hello, { onEvent, onStatus } = {}) {
    this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
      + `/api/productions/${encodeURIComponent(production)}/events`;
    this.hello = hello;
    this.onEvent = onEvent || (() => {});
    this.onStatus = onStatus || (() => {});
    this.backoff = 500;
    this.closed = false;
    this.ws = null;
    this.timer = null;
    this.status = 'connecting';
    this.connects = 0;
  }

  setStatus(s) {
    if (s === this.status) return;
    this.status = s;
    this.onStatus(s);
  }

  start() {
    this.closed = false;
    this.onStatus(this.status);
    this._open();
    return this;
  }

  _open() {
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (_) {
      this._retry();
      return;
    }
    this.ws = ws;
    let authorized = true;
    ws.onopen = () => ws.send(JSON.stringify(this.hello));
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      if (ev.type === 'error' && ev.error === 'unauthorized') {
        authorized = false;
        this.setStatus('unauthorized');
        return;
      }
      if (ev.type === 'hello') {
        this.backoff = 500;
        this.connects += 1;
        this.setStatus('live');
      }
      this.onEvent(ev);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed || !authorized) return;
      this._retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _retry() {
    this.setStatus('reconnecting');
    const delay = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(10000, this.backoff * 2);
    this.timer = setTimeout(() => this._open(), delay);
  }

  /** Drop the current connection (e.g. after a network change) and reconnect now. */
  kick() {
    if (this.closed) return;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
    this.backoff = 500;
    this._retry();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
  }
}

/**
 * Polls a JPEG URL (with the Authorization header) into an <img>: at most one request in
 * flight (a tick that finds one running is dropped), `fps` ticks a second, `kick()` asks for
 * a frame as soon as possible. Emits `frame` events on `target` with timing details.
 */
export class JpegPoller extends EventTarget {
  constructor(img, url, token, fps) {
    super();
    this.img = img;
    this.url = url;
    this.token = token;
    this.interval = 1000 / fps;
    this.inflight = false;
    this.again = false;
    this.timer = null;
    this.objectUrl = null;
    this.frames = 0;
    this.errors = 0;
    this.lastStatus = 0;
    this.running = false;
  }

  start() {
    if (this.running) return this;
    this.running = true;
    this.timer = setInterval(() => this.tick(), this.interval);
    this.tick();
    return this;
  }

  stop() {
    this.running = false;
    clearInterval(this.timer);
    this.timer = null;
  }

  setFps(fps) {
    this.interval = 1000 / fps;
    if (this.running) {
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), this.interval);
    }
  }

  kick() {
    if (this.inflight) this.again = true;
    else this.tick();
  }

  async tick() {
    if (this.inflight || !this.running) return;
    this.inflight = true;
    const started = performance.now();
    try {
      const resp = await fetch(this.url, {
        headers: { Authorization: `Bearer ${this.token}` }, cache: 'no-store',
      });
      this.lastStatus = resp.status;
      if (resp.ok) {
        const blob = await resp.blob();
        const url = URL.createObjectURL(blob);
        await new Promise((resolve) => {
          this.img.onload = resolve;
          this.img.onerror = resolve;
          this.img.src = url;
        });
        if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
        this.objectUrl = url;
        this.frames += 1;
        this.img.classList.remove('nosignal');
        this.dispatchEvent(new CustomEvent('frame', {
          detail: { started, shown: performance.now(), img: this.img },
        }));
      } else {
        this.errors += 1;
        if (resp.status === 404) this.img.classList.add('nosignal');
        await resp.arrayBuffer().catch(() => null);
      }
    } catch (_) {
      this.errors += 1;
    } finally {
      this.inflight = false;
      if (this.again && this.running) {
        this.again = false;
        this.tick();
      }
    }
  }
}

/** Calls `fn` at most once per `ms`; the last call always lands. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let pending = null;
  return (...args) => {
    pending = args;
    const now = performance.now();
    const run = () => {
      last = performance.now();
      timer = null;
      const a = pending;
      pending = null;
      fn(...a);
    };
    if (now - last >= ms) run();
    else if (!timer) timer = setTimeout(run, ms - (now - last));
  };
}

export function fmtKbps(kbps) {
  if (kbps === null || kbps === undefined) return '–';
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mb/s` : `${Math.round(kbps)} kb/s`;
}

/** Peak dBFS → meter fraction (−60 dB … 0 dB). */
export function meterFraction(db) {
  if (db === null || db === undefined) return 0;
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

export function randomId(n = 4) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => (b % 36).toString(36)).join('');
}
