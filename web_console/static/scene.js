// Scene page: the public viewer. LL-HLS from /hls/{id}/index.m3u8 — native HLS where the browser
// plays it, hls.js (lowLatencyMode) otherwise; recovers from errors and stalls by itself; when the
// live ends (the media playlist gets EXT-X-ENDLIST) the same page plays the replay from the start.
// `?player=hlsjs` or `?player=native` forces a player (tests, troubleshooting).

import { applyI18n, setupLangToggle, t } from './i18n.js';
import { productionId } from './common.js';

const pid = productionId();
const $ = (id) => document.getElementById(id);
const video = $('video');
// The server names another origin for HLS when it runs the HLS edge (server.hls_port) or sits
// behind a CDN (server.hls_public_url); otherwise the stream is on this page's origin.
const HLS_BASE = document.querySelector('meta[name="hls-base"]')?.content || '';
const MULTIVARIANT = `${HLS_BASE}/hls/${encodeURIComponent(pid)}/index.m3u8`;
const PROBE_WAITING_MS = 2000;
const PROBE_LIVE_MS = 5000;
const STALL_MS = 6000;

const P = {
  mode: 'waiting', // waiting | live | replay | notfound
  engine: null, // hlsjs | native
  hls: null,
  restarts: 0,
  recoveries: 0,
  errors: [],
  backoff: 1000,
  lastTime: 0,
  lastProgress: performance.now(),
  probeTimer: null,
};
window.scenePlayer = P;

function forced() {
  const p = new URLSearchParams(location.search).get('player');
  return p === 'hlsjs' || p === 'native' ? p : null;
}

function nativeSupported() {
  return !!video.canPlayType('application/vnd.apple.mpegurl');
}

function chooseEngine() {
  const f = forced();
  if (f) return f;
  if (nativeSupported()) return 'native';
  return 'hlsjs';
}

// --- state probe -------------------------------------------------------------------------------
/** {exists, ready, ended} from the multivariant playlist and its first media playlist. */
async function probe() {
  let resp;
  try {
    resp = await fetch(MULTIVARIANT, { cache: 'no-store' });
  } catch (_) {
    return { exists: true, ready: false, ended: false, offline: true };
  }
  if (resp.status === 404) return { exists: false, ready: false, ended: false };
  if (!resp.ok) return { exists: true, ready: false, ended: false };
  const text = await resp.text();
  const lines = text.split(/\r?\n/);
  const i = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF'));
  const uri = i >= 0 ? lines.slice(i + 1).find((l) => l && !l.startsWith('#')) : null;
  if (!uri) return { exists: true, ready: false, ended: false };
  try {
    const media = await fetch(new URL(uri, new URL(MULTIVARIANT, location.href)), { cache: 'no-store' });
    if (!media.ok) return { exists: true, ready: false, ended: false };
    const m = await media.text();
    return { exists: true, ready: /#EXTINF/.test(m), ended: m.includes('#EXT-X-ENDLIST') };
  } catch (_) {
    return { exists: true, ready: false, ended: false, offline: true };
  }
}

function setMode(mode) {
  P.mode = mode;
  const badge = $('badge');
  badge.className = `badge ${mode}`;
  badge.dataset.mode = mode;
  badge.textContent = mode === 'live' ? t('scene.live') : mode === 'replay' ? t('scene.replay')
    : t('scene.offline');
  const msg = $('msg');
  msg.textContent = mode === 'waiting' ? t('scene.waiting')
    : mode === 'notfound' ? t('scene.notfound') : '';
}

async function watch() {
  clearTimeout(P.probeTimer);
  const st = await probe();
  if (!st.exists) {
    if (P.mode !== 'live' && P.mode !== 'replay') setMode('notfound');
  } else if (st.ready) {
    if (P.mode === 'waiting' || P.mode === 'notfound') {
      start(st.ended ? 'replay' : 'live');
    } else if (P.mode === 'live' && st.ended) {
      toReplay();
    }
  } else if (P.mode === 'notfound') {
    setMode('waiting');
  }
  const every = P.mode === 'live' ? PROBE_LIVE_MS : P.mode === 'replay' ? 0 : PROBE_WAITING_MS;
  if (every) P.probeTimer = setTimeout(watch, every);
}

// --- players -----------------------------------------------------------------------------------
function teardown() {
  if (P.hls) {
    P.hls.destroy();
    P.hls = null;
  }
  video.removeAttribute('src');
  video.load();
}

function start(mode) {
  teardown();
  setMode(mode);
  P.engine = chooseEngine();
  P.lastProgress = performance.now();
  if (P.engine === 'hlsjs') startHlsJs(mode);
  else startNative(mode);
  $('unmute').hidden = !video.muted;
}

function toReplay() {
  if (P.mode === 'replay') return;
  start('replay');
  clearTimeout(P.probeTimer);
}

function restart(reason) {
  P.restarts += 1;
  P.errors.push({ restart: reason, at: Date.now() });
  const delay = P.backoff;
  P.backoff = Math.min(15000, P.backoff * 2);
  $('msg').textContent = t('scene.reconnecting');
  setTimeout(() => { if (P.mode === 'live' || P.mode === 'replay') start(P.mode); }, delay);
}

function play() {
  const p = video.play();
  if (p && p.catch) {
    p.catch(() => {
      // autoplay with sound refused: play muted and offer the sound button
      video.muted = true;
      $('unmute').hidden = false;
      video.play().catch(() => {});
    });
  }
}

function startHlsJs(mode) {
  const Hls = window.Hls;
  if (!Hls || !Hls.isSupported()) {
    if (nativeSupported()) { P.engine = 'native'; startNative(mode); return; }
    $('msg').textContent = 'hls.js unavailable';
    return;
  }
  const hls = new Hls(mode === 'live'
    ? { lowLatencyMode: true, backBufferLength: 30, enableWorker: true }
    : { lowLatencyMode: false, startPosition: 0, enableWorker: true });
  P.hls = hls;
  let lastMediaError = 0;
  hls.on(Hls.Events.ERROR, (_, d) => {
    P.errors.push({ fatal: d.fatal, type: d.type, details: d.details });
    if (P.errors.length > 50) P.errors.shift();
    if (!d.fatal) return;
    if (d.type === Hls.ErrorTypes.MEDIA_ERROR) {
      const now = performance.now();
      P.recoveries += 1;
      if (now - lastMediaError < 3000) hls.swapAudioCodec();
      lastMediaError = now;
      hls.recoverMediaError();
    } else if (d.type === Hls.ErrorTypes.NETWORK_ERROR && P.recoveries < 20) {
      P.recoveries += 1;
      setTimeout(() => { if (P.hls === hls) hls.startLoad(); }, Math.min(8000, 500 * P.recoveries));
    } else {
      restart(d.details);
    }
  });
  hls.on(Hls.Events.LEVEL_UPDATED, (_, d) => {
    if (P.mode === 'live' && d.details && d.details.live === false) {
      // EXT-X-ENDLIST: the live is over; play the replay from the start
      setTimeout(toReplay, 0);
    }
  });
  hls.on(Hls.Events.MANIFEST_PARSED, play);
  hls.loadSource(MULTIVARIANT);
  hls.attachMedia(video);
}

function startNative(mode) {
  video.src = MULTIVARIANT;
  if (mode === 'replay') {
    video.addEventListener('loadedmetadata', () => { video.currentTime = 0; }, { once: true });
  }
  play();
}

// --- stall watchdog ----------------------------------------------------------------------------
video.addEventListener('timeupdate', () => {
  if (video.currentTime !== P.lastTime) {
    P.lastTime = video.currentTime;
    P.lastProgress = performance.now();
    P.backoff = 1000;
    if ($('msg').textContent === t('scene.reconnecting')) $('msg').textContent = '';
  }
});
video.addEventListener('error', () => {
  if (P.engine === 'native' && (P.mode === 'live' || P.mode === 'replay')) restart('media error');
});
video.addEventListener('ended', () => {
  if (P.mode === 'live') watch(); // a native player reached ENDLIST: check, then replay
});

setInterval(() => {
  if (P.mode !== 'live' && P.mode !== 'replay') return;
  if (video.paused || video.ended) return;
  const stuck = performance.now() - P.lastProgress;
  if (stuck < STALL_MS) return;
  P.lastProgress = performance.now();
  if (P.engine === 'hlsjs' && P.hls && stuck < 3 * STALL_MS) {
    P.recoveries += 1;
    P.hls.startLoad(); // reload from the current position; a second stall restarts
    const live = P.hls.liveSyncPosition;
    if (P.mode === 'live' && live && live > video.currentTime + 1) video.currentTime = live;
  } else {
    restart('stalled');
  }
}, 1000);

// --- info line ---------------------------------------------------------------------------------
setInterval(() => {
  const parts = [t('scene.production', { id: pid })];
  if (P.hls && P.mode === 'live' && Number.isFinite(P.hls.latency) && P.hls.latency > 0) {
    parts.push(`${P.hls.latency.toFixed(1)} s`);
  }
  if (P.engine) parts.push(P.engine === 'hlsjs' ? 'hls.js' : 'native HLS');
  $('info').textContent = parts.join(' · ');
}, 1000);

$('unmute').addEventListener('click', () => {
  video.muted = false;
  $('unmute').hidden = true;
  play();
});

async function loadTitle() {
  // Optional public endpoint (title/state without a token); the id is shown until then.
  try {
    const r = await fetch(`/api/productions/${encodeURIComponent(pid)}/public`, { cache: 'no-store' });
    if (!r.ok) return;
    const d = await r.json();
    if (d && typeof d.title === 'string' && d.title) {
      $('title').textContent = d.title;
      document.title = `${d.title} · Scene Cloud`;
    }
  } catch (_) { /* keep the id */ }
}

applyI18n();
setupLangToggle($('lang'));
window.addEventListener('langchange', () => setMode(P.mode));
setMode('waiting');
loadTitle();
window.addEventListener('online', () => { if (P.mode === 'live') start('live'); });
// hls.min.js is loaded with `defer`; module scripts run after deferred classic scripts
watch();
