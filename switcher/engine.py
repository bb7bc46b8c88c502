"""The switcher engine: one per production, a frame-synced clock thread around the pure core.

`Switcher` owns a `SwitcherState`; every state change goes through `submit(cmd)` (a bounded
queue) and is applied by the clock thread between ticks, so a cut lands on the next frame and
commands for one production are applied in order by one owner. `submit` returns a
`concurrent.futures.Future` resolved with the new state dict, or with the `SwitcherError` that
rejected the command (bridge with `asyncio.wrap_future`).

Each tick (`tick()`, called by the thread; tests call it directly, deterministically):
1. apply queued commands, advance transitions / FTB / overlay fades by one frame;
2. read exactly `samples_for_frame(index)` audio samples from *every* source (heard or not, so
   no ring overflows and every source stays aligned with its video);
3. take the newest video frame of each needed source (a slower source repeats its last frame,
   a faster one drops frames), fit it to its box (cached per source frame and box), composite
   program (scene, or both scenes of a transition), key overlays, apply FTB;
4. mix audio (AFV weights follow the transition position), build a `ProgramFrame` on the output
   clock (pts = index, time_base = 1/fps) and hand it to every output queue (bounded, drop
   oldest, counted: a slow output never blocks the tick);
5. publish events to listeners: ``{"type": "state", "state": {...}}`` on every change (and
   ~10 Hz while a transition/fade runs), ``{"type": "tally", "tally": {...}}`` when tally
   changes, ``{"type": "meters", "meters": {...}}`` ~10 times a second. Listeners are called on
   the clock thread and must not block (e.g. ``loop.call_soon_threadsafe``).

A source with no new frame freezes on its last frame; once no new frame came for
`signal_lost_after_s` (engine clock) its boxes show a "signal lost" card until frames return.
Program with nothing on it is black; the output never stops.

`ProgramFrame.video` is read-only for outputs: a full-screen source that already has the
program size and format is passed through without a copy (the output frame shares the source
frame's buffers, as FFmpeg's filters do), every other frame is freshly composited.

Clock: absolute deadlines ``t0 + slot * frame_duration`` on a monotonic clock. A tick starting
more than half a frame after its deadline counts as late. When more than `max_catchup_frames`
behind, the clock does not burst: the missed slots are skipped (counted in `skipped_frames`),
their audio is read and discarded from every source so A/V stay aligned, and output indices
continue without a gap (output media time stays continuous; it then lags wall time by the
skipped duration).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw

from .audio import AudioMixer
from .commands import Command
from .compositor import BLACK, Blender, Canvas, draw_border, fill_rect, paint
from .errors import Busy, SwitcherError
from .layouts import Rect
from .overlays import OverlayRenderer, load_font
from .program import AUDIO_RATE, ProgramFrame, samples_for_frame
from .scale import Fitted, FrameRef, Scaler, encode_jpeg, yuv420p_planes
from .state import Scene, SwitcherState

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], Any]


class OutputQueue:
    """A bounded hand-off of ProgramFrames to one consumer; when full the oldest frame is
    dropped (counted). `put` never blocks; `get` blocks up to `timeout`."""

    def __init__(self, name: str, maxsize: int = 4) -> None:
        self.name = name
        self.maxsize = maxsize
        self._q: deque[ProgramFrame] = deque()
        self._cond = threading.Condition()
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def put(self, item: ProgramFrame) -> None:
        with self._cond:
            if self.closed:
                return
            if len(self._q) >= self.maxsize:
                self._q.popleft()
                self.dropped += 1
            self._q.append(item)
            self.delivered += 1
            self._cond.notify()

    def get(self, timeout: float | None = None) -> ProgramFrame | None:
        """Next frame, or None on timeout / when closed and empty."""
        with self._cond:
            if not self._q and not self.closed:
                self._cond.wait(timeout)
            return self._q.popleft() if self._q else None

    def get_nowait(self) -> ProgramFrame | None:
        with self._cond:
            return self._q.popleft() if self._q else None

    def __len__(self) -> int:
        return len(self._q)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "queued": len(self._q), "delivered": self.delivered,
                "dropped": self.dropped}


class _FramePool:
    """Reuses output frames nobody holds any more (no Python reference left, and FFmpeg-level
    buffer refs released: `make_writable` copies otherwise), so compositing writes into warm
    memory instead of fresh pages each tick — what FFmpeg's buffer pools do."""

    def __init__(self, width: int, height: int, size: int = 6) -> None:
        self.width, self.height, self.size = width, height, size
        self._frames: list[av.VideoFrame] = []
        self.reused = 0

    def get(self) -> av.VideoFrame:
        for f in self._frames:
            if sys.getrefcount(f) <= 3:  # the list, the loop variable, the call argument
                f.make_writable()
                self.reused += 1
                return f
        f = av.VideoFrame(self.width, self.height, "yuv420p")
        if len(self._frames) < self.size:
            self._frames.append(f)
        return f


@dataclass
class _Track:
    """What the engine last saw of one source's video."""

    item: Any = None  # the VideoItem on screen (frozen when the source stalls)
    seq: int = -1
    source: int = 0  # id() of the source object the seq belongs to (a reconnect restarts it)
    min_unseen: int = 1 << 30  # fewest unseen frames at a pick in the current sync window
    window: int = 0  # picks in the current sync window
    last_new: float = 0.0  # engine clock when a new frame (or first need) was seen


def _percentile(values: deque[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(np.fromiter(values, float), q)), 3)


class Switcher:
    def __init__(self, get_sources: Callable[[], Mapping[str, Any]], *, width: int = 1280,
                 height: int = 720, fps: int = 30, signal_lost_after_s: float = 2.0,
                 command_queue: int = 64, max_catchup_frames: int = 3,
                 preview_every: int = 3, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, name: str = "switcher") -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError("width/height must be even and >= 16")
        if not 1 <= fps <= 120:
            raise ValueError("fps must be 1..120")
        self.width, self.height, self.fps = width, height, fps
        self.name = name
        self.signal_lost_after_s = signal_lost_after_s
        self.max_catchup_frames = max_catchup_frames
        self.preview_every = max(1, preview_every)
        self._get_sources = get_sources
        self._clock, self._wall = clock, wall
        self.state = SwitcherState(fps, width, height)  # owned by the tick thread
        self._commands: queue.Queue[tuple[Command, Future]] = queue.Queue(command_queue)
        self._scaler = Scaler()
        self._blender = Blender(width, height)
        self._ref = FrameRef()
        self._pool = _FramePool(width, height)
        self._overlays = OverlayRenderer()
        self._mixer = AudioMixer(AUDIO_RATE)
        self._scratch = (Canvas.alloc(width, height), Canvas.alloc(width, height))
        self._tracks: dict[str, _Track] = {}
        self._fit_cache: dict[tuple, Fitted] = {}
        self._card_cache: dict[tuple, Fitted] = {}
        self._rect_cache: dict[tuple, tuple[list[Rect], bool]] = {}
        self._outputs: list[OutputQueue] = []
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # guards outputs/listeners lists and snapshots
        self.index = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_program: av.VideoFrame | None = None
        self._marked: Any = None  # the source frame whose marks went out last
        self._picks: dict[str, Any] = {}
        self._last_preview: av.VideoFrame | None = None
        self._preview_wanted_until = 0.0
        self._preview_ready = threading.Event()
        self._source_ids: tuple[str, ...] = ()
        self._last_tally: dict[str, str] = {}
        self._state_dict = self.state.to_dict()
        self._published_version = -1
        self._meter_every = max(1, round(fps / 10))
        # stats
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_frames = 0
        self.tick_errors = 0
        self.commands_applied = 0
        self.commands_rejected = 0
        self.commands_busy = 0
        self.listener_errors = 0
        self._composite_ms: deque[float] = deque(maxlen=600)
        self._tick_ms: deque[float] = deque(maxlen=600)
        self._last_error_log = 0.0

    # --- public API (any thread) ----------------------------------------------------------
    def submit(self, cmd: Command) -> Future:
        """Queue a command for the next tick. The future resolves with the state dict after
        the command (or a SwitcherError: Invalid/NotFound/Conflict; Busy if the queue is
        full)."""
        fut: Future = Future()
        try:
            self._commands.put_nowait((cmd, fut))
        except queue.Full:
            self.commands_busy += 1
            fut.set_exception(Busy("switcher command queue is full"))
        return fut

    def state_dict(self) -> dict[str, Any]:
        """The latest JSON-able state snapshot (a fresh copy is built per change; treat it as
        read-only)."""
        return self._state_dict

    def add_output(self, name: str, maxsize: int = 4) -> OutputQueue:
        q = OutputQueue(name, maxsize)
        with self._lock:
            self._outputs = [*self._outputs, q]
        return q

    def remove_output(self, q: OutputQueue) -> None:
        q.close()
        with self._lock:
            self._outputs = [o for o in self._outputs if o is not q]

    def add_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners = [f for f in self._listeners if f is not fn]

    def last_frame(self, bus: str = "program") -> av.VideoFrame | None:
        """The newest composited frame of a bus (never modified after publication).
        Asking for preview turns on preview rendering for the next 10 seconds."""
        if bus == "preview":
            self._preview_wanted_until = self._clock() + 10.0
            return self._last_preview
        if bus == "program":
            return self._last_program
        raise ValueError("bus: expected program or preview")

    def snapshot_jpeg(self, bus: str = "program", quality: int = 80,
                      wait_s: float = 0.5) -> bytes | None:
        """JPEG of the newest program/preview picture (None before the first frame). Blocking
        (encodes, may wait up to `wait_s` for a preview to be rendered): call it from a worker
        thread."""
        frame = self.last_frame(bus)
        if bus == "preview" and (frame is None or not self._preview_ready.is_set()):
            if self.running:
                self._preview_ready.clear()
                self._preview_ready.wait(wait_s)
            frame = self._last_preview
        if frame is None:
            return None
        return encode_jpeg(frame, quality)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            outputs = [o.stats() for o in self._outputs]
        return {
            "ticks": self.ticks,
            "index": self.index,
            "late_ticks": self.late_ticks,
            "skipped_frames": self.skipped_frames,
            "tick_errors": self.tick_errors,
            "composite_ms_p50": _percentile(self._composite_ms, 50),
            "composite_ms_p95": _percentile(self._composite_ms, 95),
            "tick_ms_p50": _percentile(self._tick_ms, 50),
            "tick_ms_p95": _percentile(self._tick_ms, 95),
            "commands_applied": self.commands_applied,
            "commands_rejected": self.commands_rejected,
            "commands_busy": self.commands_busy,
            "commands_queued": self._commands.qsize(),
            "listener_errors": self.listener_errors,
            "scaler_contexts": self._scaler.contexts,
            "limiter_active_blocks": self._mixer.limiter.active_blocks,
            "outputs": outputs,
        }

    # --- thread ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-clock",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._fail_pending(Busy("switcher stopped"))

    def close(self) -> None:
        """Stop the clock and release worker threads (the switcher cannot restart)."""
        self.stop()
        with self._lock:
            outputs, self._outputs = self._outputs, []
        for q in outputs:
            q.close()

    def _fail_pending(self, exc: SwitcherError) -> None:
        while True:
            try:
                _, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if not fut.done():
                fut.set_exception(exc)

    def _run(self) -> None:
        period = 1.0 / self.fps
        t0 = self._clock()
        slot = 0
        while not self._stop.is_set():
            deadline = t0 + slot * period
            now = self._clock()
            if now < deadline:
                if self._stop.wait(deadline - now):
                    break
                now = self._clock()
            lag = now - deadline
            if lag > period * self.max_catchup_frames:
                skip = int(lag / period)
                self.skipped_frames += skip
                self.late_ticks += 1
                slot += skip
                self._discard_audio(skip)
                self._log_throttled("%s: %d frame(s) late, skipped", self.name, skip)
            elif lag > period / 2:
                self.late_ticks += 1
            try:
                self.tick()
            except Exception:
                self.tick_errors += 1
                self._log_throttled("%s: tick failed", self.name, exc_info=True)
                self.index += 1  # the slot is lost; keep the output clock moving
            slot += 1

    def _log_throttled(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = self._clock()
        if now - self._last_error_log >= 5.0:
            self._last_error_log = now
            log.warning(msg, *args, exc_info=exc_info)

    def _discard_audio(self, frames: int) -> None:
        n = frames * AUDIO_RATE // self.fps
        for src in self._sources().values():
            try:
                src.audio.read(n)
            except Exception:
                pass

    # --- the tick ------------------------------------------------------------------------------
    def _sources(self) -> Mapping[str, Any]:
        try:
            return self._get_sources()
        except Exception:
            self._log_throttled("%s: get_sources failed", self.name, exc_info=True)
            return {}

    def _drain_commands(self, ids: tuple[str, ...]) -> list[tuple[Future, dict[str, Any]]]:
        """Apply queued commands. Rejections are answered at once; accepted ones are returned
        to be answered once the frame showing them is composited and published."""
        done: list[tuple[Future, dict[str, Any]]] = []
        while True:
            try:
                cmd, fut = self._commands.get_nowait()
            except queue.Empty:
                return done
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                self.state.apply(cmd, ids)
            except SwitcherError as e:
                self.commands_rejected += 1
                fut.set_exception(e)
                continue
            except Exception as e:  # a bug: report it to the caller, keep ticking
                self.commands_rejected += 1
                log.exception("%s: command %r failed", self.name, cmd)
                fut.set_exception(e)
                continue
            self.commands_applied += 1
            done.append((fut, self.state.to_dict(ids)))

    def tick(self) -> ProgramFrame:
        """Produce the next program frame (the clock thread calls this once per slot)."""
        t_start = time.perf_counter()
        wall = self._wall()
        now = self._clock()
        sources = self._sources()
        ids = tuple(sources)
        self._source_ids = ids
        self._picks: dict[str, Any] = {}  # each source's frame for this tick (picked once)
        accepted = self._drain_commands(ids)
        changed = bool(accepted)
        if changed:
            self._overlays.prune(set(self.state.overlays))
        changed |= self.state.tick()
        st = self.state
        plan = st.plan()
        index = self.index
        n = samples_for_frame(index, self.fps)

        # Audio of every source, every tick (keeps all rings in step with their video).
        blocks: dict[str, np.ndarray] = {}
        for sid, src in sources.items():
            try:
                blocks[sid] = src.audio.read(n)
            except Exception:
                self._log_throttled("%s: audio read of %s failed", self.name, sid,
                                    exc_info=True)

        # Video.
        t_comp = time.perf_counter()
        used: dict[tuple, Fitted] = {}
        shown: list[Any] = []
        t = plan.transition
        frame = None
        if t is None and not plan.overlays and plan.ftb_level == 0.0 \
                and plan.program is not None and plan.program.kind == "source":
            # A plain full-screen source of the program size: no pixel work at all, the output
            # frame shares the source frame's buffers (like FFmpeg passing a frame through).
            pic = self._picture(plan.program.name, self.width, self.height, sources, now, used,
                                shown)
            if pic is not None and pic.covers_box and pic.frame is not None:
                frame = self._ref.ref(pic.frame)
        if frame is None:
            frame = self._pool.get()
            out = Canvas.of_frame(frame)
            if t is None:
                shown.clear()
                self._render_scene(plan.program, out, sources, now, used, shown)
            else:
                shown_a: list[Any] = []
                shown_b: list[Any] = []
                a = self._render_scene(t.frm, self._scratch[0], sources, now, used, shown_a,
                                       direct=True)
                b = self._render_scene(t.to, self._scratch[1], sources, now, used, shown_b,
                                       direct=True)
                shown = shown_b + shown_a if t.position >= 0.5 else shown_a + shown_b
                self._blender.transition(t.kind, a, b, t.position, out, st.dip_yuv(t))
            if plan.overlays:
                self._overlays.composite(out, list(plan.overlays), now=wall,
                                         t=index / self.fps)
            if plan.ftb_level > 0.0:
                self._blender.fade(out, BLACK, plan.ftb_level)
        frame.pts = index
        frame.time_base = Fraction(1, self.fps)
        composite_ms = (time.perf_counter() - t_comp) * 1000.0

        # Preview bus, only while someone looks at it.
        if now < self._preview_wanted_until and index % self.preview_every == 0:
            pframe = av.VideoFrame(self.width, self.height, "yuv420p")
            self._render_scene(st.preview, Canvas.of_frame(pframe), sources, now, used, [])
            self._last_preview = pframe
            self._preview_ready.set()
        self._fit_cache = used
        if len(self._tracks) > len(sources) + 32:  # forget sources gone long ago
            for sid in [s for s in self._tracks if s not in sources]:
                del self._tracks[sid]

        # Audio mix.
        weights = st.on_air_weights()
        audio = self._mixer.mix(blocks, st.strips, weights, st.master_gain_db,
                                st.master_mute, plan.ftb_level, n)
        changed |= st.finish_frame()

        marks: dict[str, float] = {"tick": wall}
        item = shown[0] if shown else None
        if item is not None and item is not self._marked:
            # A source frame's own clocks go with the first program frame that shows it; a
            # repeat (the source is slower than the output, or stalled) is not a new capture,
            # and its ever older marks would read as an ever longer switcher wait.
            self._marked = item
            marks["arrived"] = item.arrived
            marks["decoded"] = item.decoded
            if item.captured is not None:
                marks["captured"] = item.captured
        marks["composited"] = self._wall()
        on_air = tuple(sorted(s for s, w in weights.items() if w > 0.0))
        pf = ProgramFrame(index=index, fps=self.fps, video=frame, audio=audio, marks=marks,
                          on_air=on_air)
        self._last_program = frame
        with self._lock:
            outputs = self._outputs
        for q in outputs:
            q.put(pf)

        self.index += 1
        self.ticks += 1
        self._composite_ms.append(composite_ms)
        self._publish(changed, ids, index)
        # Reply to accepted commands now: the frame showing them is on program (and in
        # last_frame/snapshots), and state_dict() agrees with the reply.
        for fut, state in accepted:
            fut.set_result(state)
        self._tick_ms.append((time.perf_counter() - t_start) * 1000.0)
        return pf

    # --- rendering helpers ---------------------------------------------------------------------
    def _rects(self, scene: Scene) -> tuple[list[Rect], tuple[int, int, int], bool]:
        """A scene's boxes, its background and whether the boxes tile the whole canvas (then
        no background shows and the canvas needs no fill)."""
        if scene.kind == "source":
            return [Rect(scene.name, 0, 0, self.width, self.height, 0, 0, BLACK)], BLACK, True
        lay = self.state.layouts.get(scene.name)
        if lay is None:
            return [], BLACK, False
        k = (id(lay), lay)
        cached = self._rect_cache.get(k)
        if cached is None:
            if len(self._rect_cache) > 256:
                self._rect_cache.clear()
            rects = lay.resolve(self.width, self.height)
            cached = self._rect_cache[k] = (rects, _tiles(rects, self.width, self.height))
        return cached[0], lay.background_yuv(), cached[1]

    def _render_scene(self, scene: Scene | None, canvas: Canvas, sources: Mapping[str, Any],
                      now: float, used: dict[tuple, Fitted], shown: list[Any],
                      direct: bool = False) -> Canvas:
        """Render a scene into `canvas` and return it; with `direct`, a scene that is one
        picture covering the whole canvas is returned as a read-only view of that picture
        instead (no copy; used as a transition input)."""
        if scene is None:
            canvas.fill(BLACK)
            return canvas
        rects, bg, tiled = self._rects(scene)
        pics = [(r, self._picture(r.source, r.w, r.h, sources, now, used, shown))
                for r in rects]
        full = (len(pics) == 1 and pics[0][1] is not None and pics[0][1].covers_box
                and pics[0][0].w == canvas.width and pics[0][0].h == canvas.height)
        if full and direct:
            pic = pics[0][1]
            assert pic is not None
            return Canvas(pic.y, pic.u, pic.v)
        if not full and not tiled:
            canvas.fill(bg)
        for r, pic in pics:
            if r.border:
                draw_border(canvas, r.x, r.y, r.w, r.h, r.border, r.border_yuv)
            if pic is None:
                fill_rect(canvas, r.x, r.y, r.w, r.h, BLACK)
            else:
                paint(canvas, pic, r.x, r.y, BLACK)
        return canvas

    def _picture(self, sid: str | None, w: int, h: int, sources: Mapping[str, Any],
                 now: float, used: dict[tuple, Fitted], shown: list[Any]) -> Fitted | None:
        if sid is None:
            return None
        track = self._tracks.get(sid)
        if track is None:
            track = self._tracks[sid] = _Track(last_new=now)
        src = sources.get(sid)
        if sid in self._picks:
            item = self._picks[sid]
        else:
            item = self._picks[sid] = self._pick(src, track) if src is not None else None
        if item is not None and item.seq != track.seq:
            track.item, track.seq, track.last_new = item, item.seq, now
        if now - track.last_new > self.signal_lost_after_s:
            return self._card(sid, w, h)
        if track.item is None:
            return None
        shown.append(track.item)
        k = (sid, track.seq, w, h)
        pic = used.get(k) or self._fit_cache.get(k)
        if pic is None:
            pic = self._scaler.fit(track.item.frame, w, h)
        used[k] = pic
        return pic

    # Frames a source may run ahead of the output clock before the synchronizer drops some.
    SYNC_DEPTH = 2
    # Picks after which a spare frame that was never needed is dropped (latency back down).
    SYNC_WINDOW = 90

    def _pick(self, src: Any, track: _Track) -> Any:
        """Frame synchronizer: the next frame of a source for this tick.

        Taking only the newest frame makes a source at the output's own rate judder when the
        two clocks meet near the same phase (one tick sees no new frame, the next sees two: a
        repeat and a skip). Instead frames are taken in order, at most SYNC_DEPTH behind the
        newest: arrival jitter is absorbed for at most one frame of delay, a faster source
        still drops (the older ones), a slower one still repeats."""
        if id(src) != track.source:  # a new source object (reconnect): its seq starts over
            track.source, track.seq = id(src), -1
        after = getattr(src, "video_after", None)
        if after is None:
            return src.latest_video()
        unseen = after(track.seq)
        track.min_unseen = min(track.min_unseen, len(unseen))
        track.window += 1
        if track.window >= self.SYNC_WINDOW:
            # A whole window with a frame to spare at every pick: the source is steady, the
            # reserve only adds a frame of delay. Drop it (it is rebuilt if jitter returns).
            spare = track.min_unseen >= self.SYNC_DEPTH
            track.window, track.min_unseen = 0, 1 << 30
            if spare and unseen:
                return unseen[-1]
        if not unseen:
            return None
        if len(unseen) > self.SYNC_DEPTH or track.item is None:
            return unseen[-self.SYNC_DEPTH] if len(unseen) >= self.SYNC_DEPTH else unseen[-1]
        return unseen[0]

    def _card(self, sid: str, w: int, h: int) -> Fitted:
        k = (sid, w, h)
        card = self._card_cache.get(k)
        if card is None:
            if len(self._card_cache) > 64:
                self._card_cache.clear()
            card = self._card_cache[k] = render_card(w, h, "SIGNAL LOST", sid)
        return card

    # --- events ---------------------------------------------------------------------------------
    def _publish(self, changed: bool, ids: tuple[str, ...], index: int) -> None:
        st = self.state
        running = (st.transition is not None or st.ftb_level != st.ftb_target
                   or any(ov.level != (1.0 if ov.visible else 0.0)
                          for ov in st.overlays.values()))
        periodic = running and index % self._meter_every == 0
        tally = st.tally(ids)
        if running or changed or st.version != self._published_version \
                or tally != self._last_tally:
            # The snapshot is refreshed every tick while something moves; listeners hear
            # about it on every discrete change and ~10 Hz while it moves.
            self._state_dict = st.to_dict(ids)
            if changed or periodic or st.version != self._published_version \
                    or tally != self._last_tally:
                self._emit({"type": "state", "state": self._state_dict})
            self._published_version = st.version
        if tally != self._last_tally:
            self._last_tally = tally
            self._emit({"type": "tally", "tally": tally})
        if index % self._meter_every == 0:
            self._emit({"type": "meters", "index": index,
                        "meters": self._mixer.read_meters()})

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            listeners = self._listeners
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                self.listener_errors += 1
                self._log_throttled("%s: event listener failed", self.name, exc_info=True)


def render_card(w: int, h: int, title: str, subtitle: str = "") -> Fitted:
    """A flat dark card with centred text, as yuv420p planes covering a w x h box."""
    img = Image.new("RGB", (w, h), (32, 32, 40))
    d = ImageDraw.Draw(img)
    big = load_font(max(8, h // 12))
    small = load_font(max(6, h // 20))
    bb = d.textbbox((0, 0), title, font=big)
    tw, th = bb[2] - bb[0], bb[3] - bb[1]
    d.text(((w - tw) // 2 - bb[0], h // 2 - th - bb[1]), title, font=big, fill=(230, 230, 230))
    if subtitle:
        sb = d.textbbox((0, 0), subtitle, font=small)
        d.text(((w - (sb[2] - sb[0])) // 2 - sb[0], h // 2 + th // 2 - sb[1]), subtitle,
               font=small, fill=(170, 170, 170))
    frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24").reformat(
        format="yuv420p")
    y, u, v = yuv420p_planes(frame)
    return Fitted(y, u, v, 0, 0, w, h)


def _tiles(rects: list[Rect], width: int, height: int) -> bool:
    """Do the boxes cover every pixel of a width x height canvas? (Once per layout.)"""
    if sum(r.w * r.h for r in rects) < width * height:
        return False
    covered = np.zeros((height // 2, width // 2), dtype=bool)
    for r in rects:
        covered[max(0, r.y) // 2:(r.y + r.h) // 2, max(0, r.x) // 2:(r.x + r.w) // 2] = True
    return bool(covered.all())
