// Director console: sign-in, multiview, preview/program monitors, transitions, layouts,
// overlays, audio mixer, sources, publish link. State comes from the events WebSocket (several
// consoles stay in sync); commands go through POST /switcher and their reply is applied at once.

import { applyI18n, setupLangToggle, t } from './i18n.js';
import {
  Api, ApiError, EventsSocket, JpegPoller, fmtKbps, h, meterFraction, productionId, throttle,
} from './common.js';
import { qrSvg } from './qr.js';

const pid = productionId();
const TOKEN_KEY = `scenecloud.director.${pid}`;
const PUB_KEY = `scenecloud.publish.${pid}`;
const $ = (id) => document.getElementById(id);

const MONITOR_FPS = { program: 15, preview: 12 };
const THUMB_FPS = 4;
const TRANSITIONS = ['mix', 'dip', 'wipe_right', 'wipe_left', 'wipe_down', 'wipe_up'];
const LAYOUT_SLOTS = { full: 1, pip: 2, side_by_side: 2, grid2x2: 4 };

const S = {
  api: null,
  production: null,
  state: null,
  sources: [],
  meters: null,
  tiles: new Map(), // sid -> {el, img, poller, parts}
  strips: new Map(), // sid | '__master' -> {el, range, mute, afv, db, meter}
  socket: null,
  monitors: {},
  tbarDragging: false,
  tbarBusy: false,
  tbarPending: null,
  lastCut: null,
};
// for tests and benchmarks: the live objects (no secrets beyond what the page already holds)
window.sceneConsole = S;

// --- helpers ---------------------------------------------------------------------------------
let toastTimer = null;
function toast(msg) {
  const el = $('toast');
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

function errorText(err) {
  if (err instanceof ApiError) {
    const b = err.body || {};
    return `${err.status} ${b.error || ''}: ${b.detail || err.message}${b.field ? ` (${b.field})` : ''}`;
  }
  return String(err && err.message ? err.message : err);
}

async function send(body) {
  try {
    const state = await S.api.command(body);
    applyState(state);
    return state;
  } catch (err) {
    toast(t('error.generic', { msg: errorText(err) }));
    if (err instanceof ApiError && err.status === 401) signOut();
    return null;
  }
}

function sceneName(scene) {
  if (!scene) return '–';
  if (scene.source) return scene.source;
  if (scene.layout) return `▦ ${scene.layout}`;
  return '–';
}

function sourceIds() { return S.sources.map((s) => s.id); }

// --- sign-in ---------------------------------------------------------------------------------
function showSignIn(errorKey, vars) {
  $('app').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = errorKey ? t(errorKey, vars) : '';
  $('token').focus();
}

async function trySignIn(token) {
  const api = new Api(pid, token);
  let prod;
  try {
    prod = await api.get();
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn('signin.bad');
    } else if (err instanceof ApiError && err.status === 404) {
      showSignIn('signin.missing');
    } else {
      showSignIn('signin.error', { msg: errorText(err) });
    }
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  start(api, prod);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (S.socket) S.socket.close();
  S.socket = null;
  for (const m of Object.values(S.monitors)) m.stop();
  for (const tile of S.tiles.values()) tile.poller.stop();
  S.tiles.clear();
  $('multiview').replaceChildren();
  $('token').value = '';
  setConn(null);
  showSignIn();
}

// --- start -----------------------------------------------------------------------------------
function start(api, prod) {
  S.api = api;
  S.production = prod;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('title').textContent = prod.title || pid;
  document.title = `${prod.title || pid} · Scene Cloud`;
  S.sources = prod.sources || [];
  S.state = null;
  applyState({
    program: prod.program, preview: prod.preview, transition: prod.transition, ftb: prod.ftb,
    layouts: prod.layouts || {}, overlays: prod.overlays || {}, audio: prod.audio,
    tally: Object.fromEntries(S.sources.map((s) => [s.id, s.tally || 'off'])), version: -1,
  });
  renderSources();
  for (const bus of ['program', 'preview']) {
    const img = $(bus === 'program' ? 'pgm' : 'pvw');
    const m = new JpegPoller(img, `${api.base}/${bus}.jpg`, api.token, MONITOR_FPS[bus]);
    S.monitors[bus] = m.start();
  }
  S.socket = new EventsSocket(pid, { token: api.token }, {
    onEvent,
    onStatus: (s) => {
      setConn(s);
      if (s === 'unauthorized') signOut();
    },
  }).start();
  setupPublish(prod);
}

function setConn(status) {
  const el = $('conn');
  if (!status) { el.textContent = ''; el.className = 'pill'; return; }
  const map = {
    connecting: ['conn.connecting', 'warn'], live: ['conn.live', 'ok'],
    reconnecting: ['conn.reconnecting', 'bad'], unauthorized: ['signin.bad', 'bad'],
  };
  const [key, cls] = map[status] || ['conn.offline', 'bad'];
  el.textContent = t(key);
  el.className = `pill ${cls}`;
  el.dataset.status = status;
}

function onEvent(ev) {
  switch (ev.type) {
    case 'state': applyState(ev.state); break;
    case 'tally':
      if (S.state) S.state.tally = ev.tally;
      renderTally();
      break;
    case 'meters': S.meters = ev.meters; renderMeters(); break;
    case 'sources': S.sources = ev.sources; renderSources(); break;
    default: break;
  }
}

function applyState(state) {
  if (!state) return;
  if (S.state && state.version !== -1 && S.state.version > state.version) return; // stale
  S.state = state;
  renderState();
}

// --- multiview -------------------------------------------------------------------------------
function makeTile(src) {
  const img = h('img', { class: 'thumb nosignal', alt: '' });
  const parts = {
    num: h('span', { class: 'num' }),
    state: h('span'),
    line1: h('span', { class: 'stats' }),
    line2: h('span', { class: 'stats' }),
    meter: h('i'),
  };
  const el = h('button', {
    type: 'button', class: 'tile', 'aria-label': src.id, dataset: { source: src.id },
    onclick: () => send({ op: 'preview', source: src.id }),
  },
  img,
  h('span', { class: 'meter', 'aria-hidden': 'true' }, parts.meter),
  h('span', { class: 'meta' },
    h('span', { class: 'name' }, h('span', {}, src.id), parts.num),
    parts.state, parts.line1, parts.line2));
  const poller = new JpegPoller(img, `${S.api.base}/sources/${encodeURIComponent(src.id)}/snapshot.jpg`,
    S.api.token, THUMB_FPS);
  return { el, img, poller: poller.start(), parts };
}

function renderSources() {
  const mv = $('multiview');
  const ids = sourceIds();
  for (const [sid, tile] of S.tiles) {
    if (!ids.includes(sid)) {
      tile.poller.stop();
      tile.el.remove();
      S.tiles.delete(sid);
    }
  }
  S.sources.forEach((src, i) => {
    let tile = S.tiles.get(src.id);
    if (!tile) {
      tile = makeTile(src);
      S.tiles.set(src.id, tile);
    }
    if (mv.children[i] !== tile.el) mv.insertBefore(tile.el, mv.children[i] || null);
    const p = tile.parts;
    p.num.textContent = i < 9 ? String(i + 1) : '';
    p.state.textContent = `${t(`state.${src.state}`) || src.state} · ${src.kind}`;
    p.state.className = `state-${src.state}`;
    const res = src.width ? `${src.width}×${src.height}` : '–';
    const fps = src.fps !== null && src.fps !== undefined ? `${Number(src.fps).toFixed(0)} fps` : '';
    p.line1.textContent = `${res} ${fps} · ${fmtKbps(src.bitrate_kbps)}`;
    const net = src.network || {};
    const loss = net.video_loss_pct ?? null;
    const rtt = net.rtt_ms ?? null;
    p.line2.textContent = loss !== null || rtt !== null
      ? `${t('stat.loss')} ${loss ?? '–'}% · ${t('stat.rtt')} ${rtt ?? '–'} ms` : '';
    tile.poller.setFps(src.state === 'ended' ? 0.5 : THUMB_FPS);
  });
  $('nosources').hidden = ids.length > 0;
  renderTally();
  renderStats();
  renderLayoutSlots();
  renderMixer();
}

function renderTally() {
  const tally = (S.state && S.state.tally) || {};
  for (const [sid, tile] of S.tiles) {
    const src = S.sources.find((s) => s.id === sid);
    const v = tally[sid] || (src && src.tally) || 'off';
    tile.el.dataset.tally = v;
    tile.el.title = `${sid} · ${t(`tally.${v}`)}`;
  }
}

function renderMeters() {
  const m = S.meters;
  if (!m) return;
  for (const [sid, tile] of S.tiles) {
    const mm = m.sources && m.sources[sid];
    tile.parts.meter.style.height = `${Math.round(meterFraction(mm ? mm.peak_db : null) * 100)}%`;
  }
  for (const [sid, strip] of S.strips) {
    const mm = sid === '__master' ? m.program : m.sources && m.sources[sid];
    strip.meter.style.width = `${Math.round(meterFraction(mm ? mm.peak_db : null) * 100)}%`;
  }
}

function renderStats() {
  if (!$('stats-panel').open) return;
  const rows = S.sources.map((s) => {
    const net = s.network || {};
    return h('tr', {},
      h('td', {}, s.id), h('td', {}, s.kind), h('td', {}, t(`state.${s.state}`)),
      h('td', {}, s.video_codec || '–'),
      h('td', {}, s.width ? `${s.width}×${s.height}` : '–'),
      h('td', {}, s.fps ?? '–'), h('td', {}, fmtKbps(s.bitrate_kbps)),
      h('td', {}, s.frames_received ?? 0), h('td', {}, s.frames_dropped ?? 0),
      h('td', {}, net.video_loss_pct ?? '–'), h('td', {}, net.video_jitter_ms ?? '–'),
      h('td', {}, net.rtt_ms ?? '–'),
      h('td', {}, s.last_frame_age_s ?? '–'),
      h('td', {}, h('button', {
        type: 'button', class: 'danger', 'aria-label': t('add.remove', { id: s.id }),
        onclick: () => removeSource(s.id),
      }, '✕')));
  });
  const head = h('tr', {}, ...['stat.kind', 'stat.kind', 'stat.state', 'stat.codec', 'stat.res',
    'stat.fps', 'stat.bitrate', 'stat.frames', 'stat.dropped', 'stat.loss', 'stat.jitter',
    'stat.rtt', 'stat.age', ''].map((k, i) => h('th', {}, i === 0 ? 'id' : (k ? t(k) : ''))));
  $('stats').replaceChildren(h('table', { class: 'stats' }, h('thead', {}, head),
    h('tbody', {}, rows)));
}

async function removeSource(sid) {
  try {
    await S.api.del(`/sources/${encodeURIComponent(sid)}`);
  } catch (err) {
    toast(t('error.generic', { msg: errorText(err) }));
  }
}

// --- state -----------------------------------------------------------------------------------
function renderState() {
  const st = S.state;
  if (!st) return;
  $('pgm-name').textContent = sceneName(st.program);
  $('pvw-name').textContent = sceneName(st.preview);
  const ftb = st.ftb || {};
  $('ftb').setAttribute('aria-pressed', ftb.active ? 'true' : 'false');
  const tr = st.transition || {};
  const sel = $('transition');
  const dur = $('duration');
  if (document.activeElement !== sel && tr.type) sel.value = tr.type;
  if (document.activeElement !== dur && tr.duration_ms !== undefined) dur.value = tr.duration_ms;
  if (!S.tbarDragging && !S.tbarBusy) {
    $('tbar').value = tr.running && tr.manual ? Math.round(tr.position * 1000) : 0;
  }
  renderTally();
  renderOverlays();
  renderLayouts();
  renderMixer();
}

// --- transitions -----------------------------------------------------------------------------
async function cut() {
  S.lastCut = performance.now();
  const res = await send({ op: 'cut' });
  if (res) {
    S.monitors.program.kick();
    S.monitors.preview.kick();
  }
}

async function auto() {
  const body = { op: 'auto', transition: $('transition').value };
  const d = parseInt($('duration').value, 10);
  if (Number.isFinite(d)) body.duration_ms = Math.max(0, Math.min(10000, d));
  if (await send(body)) S.monitors.program.kick();
}

async function tbarSend() {
  if (S.tbarBusy) return;
  S.tbarBusy = true;
  while (S.tbarPending !== null) {
    const position = S.tbarPending;
    S.tbarPending = null;
    await send({ op: 'tbar', position, transition: $('transition').value });
    S.monitors.program.kick();
  }
  S.tbarBusy = false;
  if (!S.tbarDragging) renderState();
}

function setupControls() {
  $('cut').addEventListener('click', cut);
  $('auto').addEventListener('click', auto);
  $('ftb').addEventListener('click', async () => {
    const d = parseInt($('duration').value, 10);
    const body = { op: 'ftb' };
    if (Number.isFinite(d)) body.duration_ms = Math.max(0, Math.min(10000, d));
    if (await send(body)) S.monitors.program.kick();
  });
  const tbar = $('tbar');
  tbar.addEventListener('pointerdown', () => { S.tbarDragging = true; });
  const release = () => { S.tbarDragging = false; };
  tbar.addEventListener('pointerup', release);
  tbar.addEventListener('pointercancel', release);
  tbar.addEventListener('input', () => {
    S.tbarPending = Math.max(0, Math.min(1, tbar.value / 1000));
    tbarSend();
  });
  tbar.addEventListener('change', () => { S.tbarDragging = false; });

  // Shortcuts: 1–9 preview, Space cut, Enter auto. Not while typing or inside the side
  // panels' forms (there Enter submits and Space toggles, as usual).
  const ignore = (e) => {
    const el = e.target;
    if (!el || !el.closest || $('app').hidden || e.ctrlKey || e.metaKey || e.altKey) return true;
    if (el.closest('form, .side, details, #signin, select, textarea')) return true;
    return el.tagName === 'INPUT' && !['range', 'checkbox', 'button'].includes(el.type);
  };
  document.addEventListener('keydown', (e) => {
    if (ignore(e)) return;
    if (/^[1-9]$/.test(e.key)) {
      const src = S.sources[Number(e.key) - 1];
      if (src) send({ op: 'preview', source: src.id });
      e.preventDefault();
    } else if (e.key === ' ') {
      e.preventDefault();
      if (!e.repeat) cut();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (!e.repeat) auto();
    }
  }, true);
  document.addEventListener('keyup', (e) => {
    if (!ignore(e) && e.key === ' ') e.preventDefault(); // no button activation on release
  }, true);
}

// --- layouts ---------------------------------------------------------------------------------
function sourceSelect(value, label) {
  const sel = h('select', { 'aria-label': label },
    h('option', { value: '' }, t('layout.empty')),
    ...sourceIds().map((id) => h('option', { value: id }, id)));
  sel.value = value && sourceIds().includes(value) ? value : '';
  return sel;
}

function renderLayoutSlots(force) {
  const kind = $('layout-kind').value;
  if (!changed('slots', [kind, sourceIds(), document.documentElement.lang]) && force !== true) return;
  const box = $('layout-sources');
  const custom = kind === 'custom';
  $('layout-boxes').hidden = !custom;
  $('layout-addbox').hidden = !custom;
  if (custom) {
    box.replaceChildren();
    if (!$('layout-boxes').children.length) {
      addBoxRow({ x: 0, y: 0, w: 0.5, h: 1 }, 0);
      addBoxRow({ x: 0.5, y: 0, w: 0.5, h: 1 }, 1);
    } else {
      for (const row of $('layout-boxes').children) {
        const sel = row.querySelector('select');
        const v = sel.value;
        sel.replaceWith(sourceSelect(v, sel.getAttribute('aria-label')));
      }
    }
    return;
  }
  const n = LAYOUT_SLOTS[kind] || 1;
  const prev = Array.from(box.querySelectorAll('select'), (s) => s.value);
  const ids = sourceIds();
  box.replaceChildren(...Array.from({ length: n }, (_, i) => {
    const label = t('layout.source', { n: i + 1 });
    return h('label', {}, label, sourceSelect(prev[i] ?? ids[i] ?? '', label));
  }));
}

function addBoxRow(b, i) {
  const ids = sourceIds();
  const num = (name, v) => h('input', {
    type: 'number', step: '0.05', min: '0', max: '1', value: String(v), name,
    'aria-label': `${name} ${i + 1}`,
  });
  const row = h('div', { class: 'boxrow' },
    sourceSelect(ids[i] || '', t('layout.source', { n: i + 1 })),
    num('x', b.x), num('y', b.y), num('w', b.w), num('h', b.h),
    h('button', {
      type: 'button', 'aria-label': t('layout.removebox'), onclick: () => row.remove(),
    }, '✕'));
  $('layout-boxes').append(row);
}

const memo = {};
function changed(key, value) {
  const v = JSON.stringify(value);
  if (memo[key] === v) return false;
  memo[key] = v;
  return true;
}

function renderLayouts() {
  const layouts = (S.state && S.state.layouts) || {};
  if (!changed('layouts', [layouts, S.state.preview, S.state.program, document.documentElement.lang])) return;
  const names = Object.keys(layouts);
  const list = $('layouts');
  if (!names.length) {
    list.replaceChildren(h('p', { class: 'muted' }, t('layout.none')));
    return;
  }
  list.replaceChildren(...names.map((name) => {
    const lay = layouts[name];
    const srcs = lay.sources || (lay.boxes || []).map((b) => b.source);
    const onPvw = S.state.preview && S.state.preview.layout === name;
    const onPgm = S.state.program && S.state.program.layout === name;
    return h('div', { class: 'item' },
      h('span', { class: 'grow' }, h('b', {}, name), ` · ${t(`layout.kind.${lay.kind}`)} · `,
        srcs.map((s) => s || '–').join(', ')),
      onPgm ? h('span', { class: 'pill bad' }, t('tally.program'))
        : onPvw ? h('span', { class: 'pill ok' }, t('tally.preview')) : null,
      h('button', {
        type: 'button', 'aria-label': `${t('layout.toPreview')} ${name}`,
        onclick: () => send({ op: 'preview', layout: name }),
      }, t('layout.toPreview')),
      h('button', {
        type: 'button', class: 'danger', 'aria-label': `${t('layout.delete')} ${name}`,
        onclick: () => send({ op: 'layout', action: 'delete', name }),
      }, '✕'));
  }));
}

function setupLayouts() {
  $('layout-kind').addEventListener('change', () => renderLayoutSlots(true));
  $('stats-panel').addEventListener('toggle', renderStats);
  $('layout-addbox').addEventListener('click', () => {
    addBoxRow({ x: 0.25, y: 0.25, w: 0.5, h: 0.5 }, $('layout-boxes').children.length);
  });
  $('layout-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target;
    const kind = f.kind.value;
    const body = { op: 'layout', name: f.name.value.trim(), kind };
    if (kind === 'custom') {
      body.boxes = Array.from($('layout-boxes').children, (row, z) => {
        const v = (n) => Number(row.querySelector(`input[name="${n}"]`).value);
        return {
          source: row.querySelector('select').value || null,
          x: v('x'), y: v('y'), w: v('w'), h: v('h'), z,
        };
      });
    } else {
      body.sources = Array.from($('layout-sources').querySelectorAll('select'),
        (s) => s.value || null);
    }
    if (await send(body)) send({ op: 'preview', layout: body.name });
  });
}

// --- overlays --------------------------------------------------------------------------------
function renderOverlays() {
  const ovs = (S.state && S.state.overlays) || {};
  const brief = Object.fromEntries(Object.entries(ovs).map(([k, v]) => [k, { ...v, level: 0 }]));
  if (!changed('overlays', [brief, document.documentElement.lang])) return;
  const names = Object.keys(ovs);
  const list = $('overlays');
  if (!names.length) {
    list.replaceChildren(h('p', { class: 'muted' }, t('ov.none')));
    return;
  }
  list.replaceChildren(...names.map((name) => {
    const ov = ovs[name];
    const desc = ov.title || ov.subtitle || ov.text || ov.format || (ov.kind === 'logo' ? 'PNG' : '');
    const showing = !!ov.visible;
    return h('div', { class: 'item', dataset: { overlay: name } },
      h('span', { class: 'grow' }, h('b', {}, name), ` · ${t(`ov.${ov.kind}`)} · ${desc}`),
      h('span', { class: `pill ${showing ? 'bad' : ''}` }, showing ? t('ov.visible') : t('ov.hidden')),
      h('button', {
        type: 'button', 'aria-pressed': showing ? 'true' : 'false',
        'aria-label': `${showing ? t('ov.hide') : t('ov.show')} ${name}`,
        onclick: () => send({ op: 'overlay', action: showing ? 'hide' : 'show', name }),
      }, showing ? t('ov.hide') : t('ov.show')),
      h('button', {
        type: 'button', class: 'danger', 'aria-label': `${t('ov.delete')} ${name}`,
        onclick: () => send({ op: 'overlay', action: 'delete', name }),
      }, '✕'));
  }));
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(',', 2)[1] || '');
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function setupOverlays() {
  const lt = $('lt-form');
  const ltBody = () => ({
    op: 'overlay', action: 'define', name: lt.name.value.trim(), kind: 'lower_third',
    title: lt.title.value, subtitle: lt.subtitle.value,
  });
  lt.addEventListener('submit', (e) => { e.preventDefault(); send(ltBody()); });
  lt.querySelector('.show-now').addEventListener('click', async () => {
    if (await send(ltBody())) {
      await send({ op: 'overlay', action: 'show', name: lt.name.value.trim() });
      S.monitors.program.kick();
    }
  });
  $('logo-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target;
    const file = f.file.files[0];
    if (!file) return;
    const png = await readBase64(file);
    send({
      op: 'overlay', action: 'define', name: f.name.value.trim(), kind: 'logo',
      png_base64: png, corner: f.corner.value,
    });
  });
  $('clock-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    send({
      op: 'overlay', action: 'define', name: f.name.value.trim(), kind: 'clock',
      format: f.format.value, tz: f.tz.value.trim() || 'UTC', corner: f.corner.value,
    });
  });
  $('ticker-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    send({
      op: 'overlay', action: 'define', name: f.name.value.trim(), kind: 'ticker',
      text: f.text.value,
    });
  });
}

// --- audio mixer -----------------------------------------------------------------------------
const FADER_MIN = -60;

function faderToDb(v) { return v <= FADER_MIN ? -100 : v; }
function dbText(db) { return db <= -100 ? '−∞' : `${db > 0 ? '+' : ''}${Number(db).toFixed(1)} dB`; }

function makeStrip(sid) {
  const master = sid === '__master';
  const name = master ? t('audio.master') : sid;
  const range = h('input', {
    type: 'range', min: String(FADER_MIN), max: '12', step: '0.5', value: '0',
    'aria-label': t('audio.gain', { name }),
  });
  const db = h('span', { class: 'muted' });
  const meter = h('i');
  const target = master ? { master: true } : { source: sid };
  const sendGain = throttle((v) => send({ op: 'audio', ...target, gain_db: faderToDb(v) }), 100);
  range.addEventListener('input', () => {
    db.textContent = dbText(faderToDb(Number(range.value)));
    sendGain(Number(range.value));
  });
  const mute = h('button', {
    type: 'button', 'aria-pressed': 'false', 'aria-label': `${t('audio.mute')} ${name}`,
    onclick: () => send({ op: 'audio', ...target, mute: mute.getAttribute('aria-pressed') !== 'true' }),
  }, t('audio.mute'));
  const afv = master ? null : h('input', {
    type: 'checkbox', 'aria-label': `${t('audio.afv')} ${name}`,
    onchange: () => send({ op: 'audio', source: sid, afv: afv.checked }),
  });
  const el = h('div', { class: 'strip', dataset: { strip: sid } },
    h('span', { class: 'n', title: name }, name), range, mute,
    afv ? h('label', { class: 'inline' }, afv, t('audio.afv')) : h('span'),
    h('span', {}), h('div', { class: 'hmeter db' }, meter), db);
  return { el, range, mute, afv, db, meter };
}

function renderMixer() {
  const audio = (S.state && S.state.audio) || { master: { gain_db: 0, mute: false }, sources: {} };
  const ids = ['__master', ...new Set([...sourceIds(), ...Object.keys(audio.sources || {})])];
  const box = $('mixer');
  for (const [sid, strip] of S.strips) {
    if (!ids.includes(sid)) { strip.el.remove(); S.strips.delete(sid); }
  }
  ids.forEach((sid, i) => {
    let strip = S.strips.get(sid);
    if (!strip) { strip = makeStrip(sid); S.strips.set(sid, strip); }
    if (box.children[i] !== strip.el) box.insertBefore(strip.el, box.children[i] || null);
    const cfg = sid === '__master' ? audio.master
      : (audio.sources && audio.sources[sid]) || { gain_db: 0, mute: false, afv: true };
    if (document.activeElement !== strip.range) {
      strip.range.value = String(Math.max(FADER_MIN, cfg.gain_db));
      strip.db.textContent = dbText(cfg.gain_db);
    }
    strip.mute.setAttribute('aria-pressed', cfg.mute ? 'true' : 'false');
    if (strip.afv) strip.afv.checked = cfg.afv !== false;
  });
}

// --- add source ------------------------------------------------------------------------------
function setupAddSource() {
  const f = $('add-form');
  const sync = () => {
    const pull = f.kind.value === 'pull';
    for (const el of f.querySelectorAll('.test-only')) el.hidden = pull;
    for (const el of f.querySelectorAll('.pull-only')) el.hidden = !pull;
    f.url.required = pull;
  };
  f.kind.addEventListener('change', sync);
  sync();
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { id: f.id.value.trim(), kind: f.kind.value };
    if (body.kind === 'test') {
      body.pattern = f.pattern.value;
      if (body.pattern === 'solid') body.color = f.color.value;
    } else {
      body.url = f.url.value.trim();
    }
    try {
      await S.api.post('/sources', body);
      f.id.value = '';
    } catch (err) {
      toast(t('error.generic', { msg: errorText(err) }));
    }
  });
}

// --- publish link ----------------------------------------------------------------------------
function showPublishLink(token) {
  const url = `${location.origin}/go/${encodeURIComponent(pid)}#token=${encodeURIComponent(token)}`;
  const a = $('pub-link');
  a.href = url;
  a.textContent = url;
  $('qr').replaceChildren(qrSvg(url, { label: t('publish.link') }));
  $('pub-out').hidden = false;
  $('pub-form').hidden = true;
}

function setupPublish(prod) {
  const token = prod.publish_token || sessionStorage.getItem(PUB_KEY);
  if (token) showPublishLink(token);
  else { $('pub-form').hidden = false; $('pub-out').hidden = true; }
}

function setupPublishForm() {
  $('pub-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = e.target.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(PUB_KEY, token);
    showPublishLink(token);
  });
  $('pub-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('pub-link').href);
      $('pub-copy').textContent = t('publish.copied');
    } catch (_) {
      const r = document.createRange();
      r.selectNodeContents($('pub-link'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
}

// --- boot ------------------------------------------------------------------------------------
function boot() {
  applyI18n();
  setupLangToggle($('lang'));
  window.addEventListener('langchange', () => {
    if (S.socket) setConn(S.socket.status);
    S.strips.forEach((s) => s.el.remove());
    S.strips.clear();
    if (S.api) { renderSources(); renderState(); }
    if ($('pub-link').href && !$('pub-out').hidden) {
      $('qr').firstChild?.setAttribute('aria-label', t('publish.link'));
    }
  });
  setupControls();
  setupLayouts();
  setupOverlays();
  setupAddSource();
  setupPublishForm();
  $('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (token) trySignIn(token);
  });
  $('signout').addEventListener('click', signOut);
  document.addEventListener('visibilitychange', () => {
    const hidden = document.hidden;
    for (const m of Object.values(S.monitors)) { if (hidden) m.stop(); else m.start(); }
    for (const tile of S.tiles.values()) { if (hidden) tile.poller.stop(); else tile.poller.start(); }
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) trySignIn(token);
  else showSignIn();
}

boot();
