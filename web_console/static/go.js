// Phone publisher: /go/{id}#token=<publish token>. Allow camera → (front/back, 360p/720p) →
// Go Live: WHIP POST to /whip/{id}/{source}; connection state, outgoing bitrate, tally (ON AIR /
// PREVIEW) over the events WebSocket. Reconnects by itself (new POST under the same source name:
// the server replaces the old session) when the connection fails or the network changes; Stop
// sends DELETE to the session's Location.

import { applyI18n, setupLangToggle, t } from './i18n.js';
import { EventsSocket, fmtKbps, productionId, randomId } from './common.js';

const pid = productionId();
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = `scenecloud.publish.${pid}`;
const SOURCE_KEY = 'scenecloud.go.source';
const PREFS_KEY = 'scenecloud.go.prefs';
const ICE_GATHER_MS = 2000;
const DISCONNECTED_GRACE_MS = 4000;

const G = {
  token: null,
  stream: null,
  facing: 'user',
  quality: 720,
  pc: null,
  location: null,
  live: false, // the user wants to be live (reconnect while true)
  state: 'idle',
  backoff: 1000,
  retryTimer: null,
  discTimer: null,
  stats: { bytes: 0, at: 0, kbps: null },
  tally: 'off',
  socket: null,
  attempts: 0,
  connectedAt: null,
  clickedAt: null,
  iceServers: [],
};
window.scenePublisher = G;

function readToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    const tok = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, tok);
    // drop the token from the address bar (and from screenshots / shared tabs)
    history.replaceState(null, '', location.pathname + location.search);
    return tok;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function showError(msg) {
  const el = $('error');
  el.textContent = msg || '';
  el.hidden = !msg;
}

function sourceName() {
  const v = $('source').value.trim();
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v) ? v : null;
}

// --- camera ------------------------------------------------------------------------------------
function constraints() {
  const q = G.quality === 360 ? { width: 640, height: 360 } : { width: 1280, height: 720 };
  return {
    video: {
      facingMode: { ideal: G.facing }, width: { ideal: q.width }, height: { ideal: q.height },
      frameRate: { ideal: 30, max: 30 },
    },
    audio: { echoCancellation: true, noiseSuppression: true },
  };
}

async function openCamera() {
  showError('');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints());
  } catch (err) {
    showError(t('go.nocamera', { msg: err && err.message ? err.message : err }));
    return false;
  }
  const old = G.stream;
  G.stream = stream;
  $('local').srcObject = stream;
  $('allow').hidden = true;
  if (G.pc) {
    // live: swap tracks without renegotiating
    for (const sender of G.pc.getSenders()) {
      const track = stream.getTracks().find((tr) => sender.track && tr.kind === sender.track.kind);
      if (track) await sender.replaceTrack(track).catch(() => {});
    }
  }
  if (old) for (const tr of old.getTracks()) tr.stop();
  return true;
}

function setPressed() {
  for (const b of document.querySelectorAll('[data-facing]')) {
    b.setAttribute('aria-pressed', b.dataset.facing === G.facing ? 'true' : 'false');
  }
  for (const b of document.querySelectorAll('[data-quality]')) {
    b.setAttribute('aria-pressed', Number(b.dataset.quality) === G.quality ? 'true' : 'false');
  }
  localStorage.setItem(PREFS_KEY, JSON.stringify({ facing: G.facing, quality: G.quality }));
}

// --- WHIP ----------------------------------------------------------------------------------------
function setState(s, vars) {
  G.state = s;
  const el = $('state');
  el.dataset.state = s;
  el.textContent = t(`go.state.${s}`, vars);
}

function whipUrl(source) {
  return `/whip/${encodeURIComponent(pid)}/${encodeURIComponent(source)}`;
}

function waitIce(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') { resolve(); return; }
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ICE_GATHER_MS);
  });
}

function parseLinks(header) {
  // Link: <stun:host:3478>; rel="ice-server", <turn:...>; rel="ice-server"; username=..; credential=..
  if (!header) return [];
  const out = [];
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /<([^>]+)>(.*)/.exec(part.trim());
    if (!m || !/rel="?ice-server"?/.test(m[2])) continue;
    const server = { urls: m[1] };
    const u = /username="?([^";]+)"?/.exec(m[2]);
    const c = /credential="?([^";]+)"?/.exec(m[2]);
    if (u) server.username = u[1];
    if (c) server.credential = c[1];
    out.push(server);
  }
  return out;
}

async function connect() {
  clearTimeout(G.retryTimer);
  const source = sourceName();
  if (!G.live || !source || !G.stream) return;
  closePc();
  G.attempts += 1;
  setState('connecting');
  const pc = new RTCPeerConnection({ iceServers: G.iceServers, bundlePolicy: 'max-bundle' });
  G.pc = pc;
  for (const track of G.stream.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [G.stream] });
  }
  pc.addEventListener('connectionstatechange', () => onPcState(pc));
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    if (G.pc !== pc) return;
    const resp = await fetch(whipUrl(source), {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${G.token}` },
      body: pc.localDescription.sdp,
    });
    const answer = await resp.text();
    if (G.pc !== pc) return;
    if (resp.status === 401 || resp.status === 403) {
      showError(t('go.badtoken', { status: resp.status }));
      stop(false);
      return;
    }
    if (resp.status !== 201) throw new Error(`WHIP ${resp.status}: ${answer.slice(0, 200)}`);
    const links = parseLinks(resp.headers.get('Link'));
    if (links.length) G.iceServers = links;
    G.location = new URL(resp.headers.get('Location'), location.href).toString();
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    showError('');
  } catch (err) {
    if (G.pc !== pc) return;
    showError(String(err && err.message ? err.message : err));
    scheduleRetry();
  }
}

function onPcState(pc) {
  if (G.pc !== pc) return;
  const s = pc.connectionState;
  clearTimeout(G.discTimer);
  if (s === 'connected') {
    G.backoff = 1000;
    if (G.connectedAt === null && G.clickedAt !== null) G.connectedAt = performance.now();
    setState('connected');
  } else if (s === 'failed') {
    setState('failed');
    scheduleRetry();
  } else if (s === 'disconnected') {
    setState('disconnected');
    // often recovers by itself (a blip); if not, start over
    G.discTimer = setTimeout(() => { if (G.pc === pc && pc.connectionState !== 'connected') scheduleRetry(); },
      DISCONNECTED_GRACE_MS);
  } else if (s === 'new' || s === 'connecting') {
    setState('connecting');
  }
}

function scheduleRetry() {
  if (!G.live) return;
  closePc();
  const delay = G.backoff * (0.8 + Math.random() * 0.4);
  G.backoff = Math.min(15000, G.backoff * 2);
  setState('reconnecting', { s: Math.max(1, Math.round(delay / 1000)) });
  clearTimeout(G.retryTimer);
  G.retryTimer = setTimeout(connect, delay);
}

function closePc() {
  clearTimeout(G.discTimer);
  if (G.pc) {
    const pc = G.pc;
    G.pc = null;
    pc.close();
  }
  G.stats = { bytes: 0, at: 0, kbps: null };
}

async function goLive() {
  const source = sourceName();
  if (!source) {
    $('source').focus();
    $('source').setAttribute('aria-invalid', 'true');
    return;
  }
  $('source').removeAttribute('aria-invalid');
  localStorage.setItem(SOURCE_KEY, source);
  G.clickedAt = performance.now();
  G.connectedAt = null;
  if (!G.stream && !(await openCamera())) return;
  G.live = true;
  G.backoff = 1000;
  $('golive').hidden = true;
  $('stop').hidden = false;
  $('source').disabled = true;
  startTally(source);
  connect();
}

async function stop(sendDelete = true) {
  G.live = false;
  clearTimeout(G.retryTimer);
  const loc = G.location;
  G.location = null;
  closePc();
  if (sendDelete && loc) {
    try {
      await fetch(loc, { method: 'DELETE', headers: { Authorization: `Bearer ${G.token}` } });
    } catch (_) { /* the server ends it on its own when media stops */ }
  }
  if (G.socket) { G.socket.close(); G.socket = null; }
  setTally('off');
  setState('closed');
  $('golive').hidden = false;
  $('stop').hidden = true;
  $('source').disabled = false;
  $('bitrate').textContent = '–';
}

// --- tally ---------------------------------------------------------------------------------------
function setTally(v) {
  G.tally = v;
  const el = $('tally');
  el.className = `tally ${v}`;
  el.dataset.tally = v;
  el.textContent = v === 'program' ? t('go.onair') : v === 'preview' ? t('go.preview')
    : G.live ? t('go.standby') : '';
  document.body.classList.toggle('onair', v === 'program');
}

function startTally(source) {
  if (G.socket) G.socket.close();
  G.socket = new EventsSocket(pid, { token: G.token, source }, {
    onEvent: (ev) => { if (ev.type === 'tally' && ev.source === source) setTally(ev.tally); },
  }).start();
  setTally('off');
}

// --- stats ---------------------------------------------------------------------------------------
setInterval(async () => {
  const pc = G.pc;
  if (!pc || pc.connectionState !== 'connected') return;
  const report = await pc.getStats();
  let bytes = 0;
  report.forEach((s) => { if (s.type === 'outbound-rtp') bytes += s.bytesSent || 0; });
  const now = performance.now();
  if (G.stats.at) {
    G.stats.kbps = ((bytes - G.stats.bytes) * 8) / (now - G.stats.at);
    $('bitrate').textContent = fmtKbps(G.stats.kbps);
  }
  G.stats.bytes = bytes;
  G.stats.at = now;
}, 1000);

// --- network changes -------------------------------------------------------------------------------
function networkChanged() {
  if (!G.live) return;
  // the old path is probably gone (Wi-Fi → 4G): publish again at once under the same name
  G.backoff = 1000;
  connect();
  if (G.socket) G.socket.kick();
}
window.addEventListener('online', networkChanged);
if (navigator.connection && navigator.connection.addEventListener) {
  navigator.connection.addEventListener('change', networkChanged);
}
window.addEventListener('pagehide', () => {
  if (G.location) {
    // best effort: end the session when the page goes away
    fetch(G.location, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${G.token}` } })
      .catch(() => {});
  }
});

// --- boot ----------------------------------------------------------------------------------------
function boot() {
  applyI18n();
  setupLangToggle($('lang'));
  window.addEventListener('langchange', () => {
    setState(G.state, { s: Math.max(1, Math.round(G.backoff / 1000)) });
    setTally(G.tally);
  });
  try {
    const prefs = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}');
    if (prefs.facing === 'user' || prefs.facing === 'environment') G.facing = prefs.facing;
    if (prefs.quality === 360 || prefs.quality === 720) G.quality = prefs.quality;
  } catch (_) { /* defaults */ }
  setPressed();
  let name = localStorage.getItem(SOURCE_KEY);
  if (!name) {
    name = `phone-${randomId(4)}`;
    localStorage.setItem(SOURCE_KEY, name);
  }
  $('source').value = name;
  setState('idle');
  setTally('off');
  G.token = readToken();
  if (!G.token) {
    showError(t('go.notoken'));
    $('golive').disabled = true;
  }
  $('allow').addEventListener('click', openCamera);
  for (const b of document.querySelectorAll('[data-facing]')) {
    b.addEventListener('click', () => {
      G.facing = b.dataset.facing;
      setPressed();
      if (G.stream) openCamera();
    });
  }
  for (const b of document.querySelectorAll('[data-quality]')) {
    b.addEventListener('click', () => {
      G.quality = Number(b.dataset.quality);
      setPressed();
      if (G.stream) openCamera();
    });
  }
  $('golive').addEventListener('click', goLive);
  $('stop').addEventListener('click', () => stop(true));
}

boot();
