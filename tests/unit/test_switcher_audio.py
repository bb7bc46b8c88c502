"""Audio mixer: gains, mute, AFV crossfades, master, limiter, meters (pure numpy)."""

import numpy as np
import pytest

from switcher.audio import AudioMixer, Limiter, Meter, Strip, db_to_gain, to_dbfs

N = 1600  # one frame at 30 fps


def dc(level, n=N):
    return np.full((n, 2), level, np.float32)


def mix(m, blocks, strips=None, on_air=None, master_db=0.0, mute=False, ftb=0.0, n=N):
    return m.mix(blocks, strips or {}, on_air or {}, master_db, mute, ftb, n)


def settle(m, *args, frames=2, **kw):
    out = None
    for _ in range(frames):
        out = mix(m, *args, **kw)
    return out


def test_afv_program_heard_off_air_silent():
    m = AudioMixer()
    out = settle(m, {"a": dc(0.1), "b": dc(0.2)}, on_air={"a": 1.0})
    assert out == pytest.approx(np.full((N, 2), 0.1), abs=1e-6)


def test_gain_db_and_mute():
    m = AudioMixer()
    out = settle(m, {"a": dc(0.2)}, {"a": Strip(gain_db=-6.0)}, {"a": 1.0})
    assert out[-1, 0] == pytest.approx(0.2 * 10 ** (-6 / 20), rel=1e-5)
    out = settle(m, {"a": dc(0.2)}, {"a": Strip(mute=True)}, {"a": 1.0})
    assert not out.any()


def test_afv_off_always_heard_and_master_gain():
    m = AudioMixer()
    out = settle(m, {"a": dc(0.1), "b": dc(0.1)}, {"b": Strip(afv=False)}, {"a": 1.0},
                 master_db=-6.0)
    assert out[-1, 0] == pytest.approx(0.2 * db_to_gain(-6.0), rel=1e-5)
    out = settle(m, {"a": dc(0.1)}, {}, {"a": 1.0}, mute=True)
    assert not out.any()


def test_crossfade_follows_weights_without_steps():
    m = AudioMixer()
    settle(m, {"a": dc(0.1), "b": dc(0.1)}, on_air={"a": 1.0})
    out = mix(m, {"a": dc(0.1), "b": dc(0.1)}, on_air={"a": 0.5, "b": 0.5})
    assert out[-1, 0] == pytest.approx(0.1, rel=1e-5)
    # A cut from a to b: b ramps in across the block (click-free), fully in by the end.
    m = AudioMixer()
    settle(m, {"a": dc(0.0), "b": dc(0.3)}, on_air={"a": 1.0})
    out = mix(m, {"a": dc(0.0), "b": dc(0.3)}, on_air={"b": 1.0})
    steps = np.abs(np.diff(out[:, 0]))
    assert steps.max() < 0.001 and out[-1, 0] == pytest.approx(0.3, rel=1e-5)


def test_ftb_fades_audio():
    m = AudioMixer()
    out = settle(m, {"a": dc(0.4)}, on_air={"a": 1.0}, ftb=0.5)
    assert out[-1, 0] == pytest.approx(0.2, rel=1e-5)
    out = settle(m, {"a": dc(0.4)}, on_air={"a": 1.0}, ftb=1.0)
    assert not out[-1].any()


def test_limiter_never_clips():
    rng = np.random.default_rng(1)
    m = AudioMixer()
    peak = 0.0
    for i in range(300):
        loud = (rng.standard_normal((N, 2)) * (0.2 + 3 * (i % 50 == 0))).astype(np.float32)
        hot = np.sin(np.arange(N) / 7.0)[:, None].repeat(2, 1).astype(np.float32) * 0.9
        out = mix(m, {"a": loud, "b": hot, "c": hot}, {"a": Strip(gain_db=12)},
                  {"a": 1.0, "b": 1.0, "c": 1.0}, master_db=6.0)
        peak = max(peak, float(np.abs(out).max()))
        assert np.isfinite(out).all()
    assert peak <= 1.0
    assert m.limiter.active_blocks > 0


def test_limiter_transparent_below_ceiling_and_releases():
    lim = Limiter(release_ms=50)
    x = dc(0.5)
    assert lim.process(x.copy()) == pytest.approx(x)
    y = lim.process(dc(4.0))
    assert np.abs(y).max() <= lim.ceiling + 1e-6
    assert np.abs(y).max() >= lim.ceiling - 1e-3  # gain-reduced to the ceiling, not muted
    for _ in range(30):  # 1 s later the gain is back to unity
        z = lim.process(dc(0.5))
    assert z[-1, 0] == pytest.approx(0.5, rel=1e-3)


def test_meters_dbfs():
    me = Meter()
    me.add(dc(0.5))
    r = me.read()
    assert r["peak_db"] == pytest.approx(-6.02, abs=0.01)
    assert r["rms_db"] == pytest.approx(-6.02, abs=0.01)
    assert me.read() == {"peak_db": -100.0, "rms_db": -100.0}
    sine = np.sin(np.linspace(0, 200 * np.pi, 48000))[:, None].repeat(2, 1)
    me.add(sine.astype(np.float32))
    r = me.read()
    assert r["peak_db"] == pytest.approx(0.0, abs=0.01)
    assert r["rms_db"] == pytest.approx(-3.01, abs=0.05)
    assert to_dbfs(0.0) == -100.0


def test_mixer_meters_per_source_and_program():
    m = AudioMixer()
    settle(m, {"a": dc(0.5), "b": dc(0.25)}, {"b": Strip(mute=True)}, {"a": 1.0})
    r = m.read_meters()
    assert r["sources"]["a"]["peak_db"] == pytest.approx(-6.02, abs=0.01)
    assert r["sources"]["b"]["peak_db"] == pytest.approx(-12.04, abs=0.01)  # muted still meters
    assert r["program"]["peak_db"] == pytest.approx(-6.02, abs=0.01)
