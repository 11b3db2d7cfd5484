"""The soundtrack in the index: decoded in the video's own pass, scored into per-second lanes and
stored with the ad; 'none' for a file without an audio track, 'failed' with a reason for a track
that cannot be read (the faces kept); `--no-audio`; incremental runs that add or re-read only the
soundtrack; crash safety of an audio-only update. Real models, small clips built at test time."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from processes import kill_9_when
from emocore.audio.decode import AudioFailed, NoAudio, decode_audio
from emocore.audio.lanes import AUDIO_SIGNALS, AudioLanes, score_lanes
from emocore.devtools import audio_media
from emocore.indexer import audio_spec, index_folder
from emocore.models.base import EmotionModel
from emocore.store import Store, unpack_figures

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000
LAUGH_AT = 3.0
VIDEO = (160, 120, 10)  # width, height, fps: a small grey picture


class Counting(EmotionModel):
    """Wraps a model, counting the frames it scores; same identity, so the same cache keys."""

    def __init__(self, inner: EmotionModel) -> None:
        self.inner, self.frames_seen = inner, 0
        self.name, self.version, self.labels = inner.name, inner.version, inner.labels

    def analyse(self, frames):  # type: ignore[no-untyped-def]
        self.frames_seen += len(frames)
        return self.inner.analyse(frames)

    def analyse_scaled(self, frames, scales):  # type: ignore[no-untyped-def]
        self.frames_seen += len(frames)
        return self.inner.analyse_scaled(frames, scales)


def _laugh(rate: int = RATE) -> np.ndarray:
    try:
        return audio_media.read_pcm(audio_media.recording("laugh_mobster.ogg"), rate=rate)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"cannot fetch the test recording: {exc}")


@pytest.fixture(scope="module")
def laugh_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of grey H.264 video with a 48 kHz stereo AAC track: a real laugh (1.3 s) at 3 s, silence elsewhere."""
    laugh = _laugh()
    mono = np.zeros(6 * RATE, np.float32)
    start = int(LAUGH_AT * RATE)
    mono[start:start + laugh.size] = laugh
    return audio_media.audio_file(tmp_path_factory.mktemp("laugh") / "laugh.mp4", np.stack([mono, 0.8 * mono]),
                                  rate=RATE, layout="stereo", video=VIDEO)


def _ads(tmp_path: Path, *clips: Path) -> Path:
    folder = tmp_path / "ads"
    folder.mkdir(exist_ok=True)
    for clip in clips:
        (folder / clip.name).write_bytes(clip.read_bytes())
    return folder


def _audio_rows(cache: Path, key: str) -> int:
    with sqlite3.connect(cache / "emocore.sqlite") as con:
        return con.execute("SELECT COUNT(*) FROM audio WHERE ad_key = ?", (key,)).fetchone()[0]


def test_laughter_is_stored_where_it_is_and_equals_a_separate_decode(tmp_path: Path, laugh_clip: Path, face_model,
                                                                     audio_model) -> None:
    cache = tmp_path / "cache"
    report = index_folder(_ads(tmp_path, laugh_clip), cache, model=face_model, explain=None, audio=audio_model)
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.audio, outcome.audio_error, outcome.note) == ("indexed", "ok", None, None)
    with Store(cache, readonly=True) as store:
        ad = store.ad(outcome.ad_key)
        assert (ad.status, ad.audio_status, ad.audio_error, ad.audio_model) == ("ok", "ok", None, audio_spec())
        assert ad.frames == 12 and ad.has_audio  # the faces' pass: 2 frames/s of 6 s
        lanes = store.audio(ad.key)
        assert isinstance(lanes, AudioLanes) and lanes.seconds == 6 and ad.audio_seconds == 6
        laughter = lanes.column("laughter")
        assert int(np.argmax(laughter)) in (3, 4) and laughter.max() > 0.5  # the laugh: 3.0–4.3 s
        assert laughter[:2].max() < 0.1 and laughter[5] < 0.5
        assert lanes.column("funny").max() == pytest.approx(laughter.max(), abs=1e-6)
        figures = unpack_figures([store.connection.execute(
            "SELECT audio_figures FROM ads WHERE key = ?", (ad.key,)).fetchone()[0]], len(AUDIO_SIGNALS))
        assert figures.shape[:2] == (1, len(AUDIO_SIGNALS))
        # the same-pass track is the one `decode_audio` reads alone: the same lanes
        alone = score_lanes(decode_audio(laugh_clip), audio_model, duration_s=ad.duration_s)
        assert isinstance(alone, AudioLanes)
        np.testing.assert_allclose(lanes.matrix(), alone.matrix(), atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(lanes.patch_centers_s, alone.patch_centers_s, atol=1e-9)


def test_a_file_without_an_audio_track_is_none_never_zeros(tmp_path: Path, face_model, audio_model) -> None:
    clip = audio_media.video_only(tmp_path / "src" / "mute.mp4", seconds=2, size=(160, 120))
    cache = tmp_path / "cache"
    (outcome,) = index_folder(_ads(tmp_path, clip), cache, model=face_model, explain=None, audio=audio_model).outcomes
    assert (outcome.status, outcome.audio, outcome.audio_error, outcome.note) == (
        "indexed", "none", "no audio track", "no audio")
    with Store(cache, readonly=True) as store:
        ad = store.ad(outcome.ad_key)
        assert (ad.audio_status, ad.audio_error, ad.audio_seconds, ad.audio_model) == (
            "none", "no audio track", 0.0, audio_spec())
        assert store.audio(ad.key) == NoAudio("no audio track")
        assert store.connection.execute("SELECT audio_figures FROM ads WHERE key = ?", (ad.key,)).fetchone()[0] is None
    assert _audio_rows(cache, outcome.ad_key) == 0


def _odd(kind: str, folder: Path, laugh_clip: Path) -> Path:
    """A clip with an odd soundtrack, and 1 s or more of grey video."""
    if kind == "damaged":
        return audio_media.damaged_audio_copy(laugh_clip, folder / "damaged.mp4", span=(0.2, 0.8))
    if kind == "8kHz":
        return audio_media.audio_file(folder / "8k.mp4", audio_media.tone(2.0, 8000)[None], rate=8000, video=VIDEO)
    if kind == "5.1":
        tone = audio_media.tone(2.0, RATE)
        return audio_media.audio_file(folder / "surround.mp4", np.stack([tone * (c + 1) / 8 for c in range(6)]),
                                      rate=RATE, layout="5.1", video=VIDEO)
    if kind == "few ms":
        return audio_media.audio_file(folder / "blip.mp4", audio_media.tone(0.005, RATE)[None], rate=RATE,
                                      video=VIDEO, video_seconds=1.0)
    assert kind == "silence"
    return audio_media.audio_file(folder / "silence.mp4", np.zeros((2, 2 * RATE), np.float32), rate=RATE,
                                  layout="stereo", video=VIDEO)


@pytest.mark.parametrize("kind", ["damaged", "8kHz", "5.1", "few ms", "silence"])
def test_odd_soundtracks_index_with_audio_ok_or_failed_and_the_faces_kept(kind: str, tmp_path: Path, laugh_clip: Path,
                                                                          face_model, audio_model) -> None:
    clip = _odd(kind, tmp_path / "src", laugh_clip)
    cache = tmp_path / "cache"
    (outcome,) = index_folder(_ads(tmp_path, clip), cache, model=face_model, explain=None, audio=audio_model).outcomes
    assert outcome.status == "indexed" and outcome.audio in ("ok", "failed"), outcome
    with Store(cache, readonly=True) as store:
        ad = store.ad(outcome.ad_key)
        assert ad.status == "ok" and ad.frames >= 2 and len(store.timeline(ad.key).times) == ad.frames
        assert ad.audio_status == outcome.audio and ad.audio_model == audio_spec()
        stored = store.audio(ad.key)
        if outcome.audio == "failed":
            assert isinstance(stored, AudioFailed) and stored.reason and "\n" not in stored.reason
            assert outcome.note == f"audio failed: {stored.reason}"
            assert _audio_rows(cache, ad.key) == 0
        else:
            assert isinstance(stored, AudioLanes) and stored.seconds >= 1 and ad.audio_seconds >= 1
    if kind in ("8kHz", "5.1", "silence"):  # a plain track of an odd shape reads fine
        assert outcome.audio == "ok"
    if kind == "silence":
        assert np.nanmax(stored.column("loudness")) <= -99 and np.nanmax(stored.column("laughter")) < 0.1
    if kind == "damaged" and outcome.audio == "ok":
        assert "damaged audio packets skipped" in (outcome.note or "")


def test_no_audio_never_loads_the_model_and_a_later_run_adds_only_the_soundtrack(
        tmp_path: Path, laugh_clip: Path, face_model, audio_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from emocore.audio import yamnet

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audio model was loaded")

    ads, cache = _ads(tmp_path, laugh_clip), tmp_path / "cache"
    counting = Counting(face_model)
    with monkeypatch.context() as patch:
        patch.setattr(yamnet, "load_audio_model", refuse)
        patch.setattr(yamnet.AudioModel, "__init__", refuse)
        (first,) = index_folder(ads, cache, model=counting, explain=None, audio=False).outcomes
        assert (first.status, first.audio, first.note) == ("indexed", None, None)
    with Store(cache, readonly=True) as store:
        before = store.ad(first.ad_key)
        timeline = store.timeline(first.ad_key)
    assert (before.audio_status, before.audio_model, before.audio_seconds) == (None, None, 0.0)
    assert counting.frames_seen == 12

    (second,) = index_folder(ads, cache, model=counting, explain=None, audio=audio_model).outcomes
    assert (second.status, second.audio, second.ad_key) == ("skipped", "ok", first.ad_key)
    assert "soundtrack read" in second.note
    assert counting.frames_seen == 12  # no face scored again
    with Store(cache, readonly=True) as store:
        after = store.ad(first.ad_key)
        assert (after.audio_status, after.audio_model, after.audio_seconds) == ("ok", audio_spec(), 6.0)
        assert (after.indexed_at, after.elapsed_s, after.frames) == (before.indexed_at, before.elapsed_s, before.frames)
        np.testing.assert_array_equal(store.timeline(first.ad_key).raw, timeline.raw)
        lanes = store.audio(first.ad_key)
        assert isinstance(lanes, AudioLanes) and int(np.argmax(lanes.column("laughter"))) in (3, 4)

    # current: nothing read again; --no-audio --force redoes the faces and keeps the stored soundtrack
    (third,) = index_folder(ads, cache, model=counting, explain=None, audio=audio_model).outcomes
    assert (third.status, third.audio) == ("skipped", None)
    (fourth,) = index_folder(ads, cache, model=counting, explain=None, audio=False, force=True).outcomes
    assert (fourth.status, fourth.audio) == ("indexed", None) and counting.frames_seen == 24
    with Store(cache, readonly=True) as store:
        kept = store.ad(first.ad_key)
        assert (kept.audio_status, kept.audio_model, kept.audio_seconds) == ("ok", audio_spec(), 6.0)
        assert kept.indexed_at > before.indexed_at
        np.testing.assert_array_equal(store.audio(first.ad_key).matrix(), lanes.matrix())


def test_another_audio_spec_is_read_again(tmp_path: Path, laugh_clip: Path, face_model, audio_model) -> None:
    ads, cache = _ads(tmp_path, laugh_clip), tmp_path / "cache"
    (first,) = index_folder(ads, cache, model=face_model, explain=None, audio=audio_model).outcomes
    with Store(cache) as store:
        store.write_audio(first.ad_key, AudioFailed("read by an older model"), "yamnet older lanes-00000000")
    (again,) = index_folder(ads, cache, model=face_model, explain=None, audio=audio_model).outcomes
    assert (again.status, again.audio) == ("skipped", "ok")
    with Store(cache, readonly=True) as store:
        ad = store.ad(first.ad_key)
        assert (ad.audio_status, ad.audio_error, ad.audio_model) == ("ok", None, audio_spec())
        assert isinstance(store.audio(ad.key), AudioLanes)
    assert audio_spec(audio_model) == audio_spec() and audio_spec().startswith("yamnet ")


def test_a_failure_between_decoding_and_writing_leaves_the_ad_unchanged(
        tmp_path: Path, laugh_clip: Path, face_model, audio_model, monkeypatch: pytest.MonkeyPatch) -> None:
    import emocore.indexer

    ads, cache = _ads(tmp_path, laugh_clip), tmp_path / "cache"
    (first,) = index_folder(ads, cache, model=face_model, explain=None, audio=False).outcomes

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # what Ctrl-C does after the track is decoded

    monkeypatch.setattr(emocore.indexer, "score_lanes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        index_folder(ads, cache, model=face_model, explain=None, audio=audio_model)
    with Store(cache, readonly=True) as store:
        assert store.check() == []
        ad = store.ad(first.ad_key)
        assert (ad.audio_status, ad.audio_model) == (None, None) and store.audio(ad.key) is None
    assert _audio_rows(cache, first.ad_key) == 0


@pytest.mark.slow
def test_kill_9_during_audio_only_updates_then_rerun_finishes(tmp_path: Path, face_model) -> None:
    """Indexed without audio, then `index` adding the soundtracks is killed mid-way: every ad is whole (its
    old state or its new one), and the same command finishes the job."""
    laugh = _laugh()
    src = tmp_path / "src"
    for i in range(12):
        mono = np.resize(np.concatenate([laugh, np.zeros(RATE, np.float32)]), 10 * RATE) * (0.5 + i / 24)
        audio_media.audio_file(src / f"ad{i:02d}.mp4", mono[None], rate=RATE, video=(64, 48, 2))
    ads, cache = _ads(tmp_path, *sorted(src.iterdir())), tmp_path / "cache"
    index_folder(ads, cache, model=face_model, explain=None, audio=False)  # what `index --no-audio` writes
    cmd = [sys.executable, str(ROOT / "cli.py"), "index", str(ads), "--cache", str(cache), "--no-explain"]
    kill_9_when(cmd, ROOT, cache / "emocore.sqlite", "SELECT COUNT(*) FROM ads WHERE audio_status IS NOT NULL")
    with Store(cache, readonly=True) as store:
        assert store.check() == []
        ads_now = store.ads()
        heard = [ad for ad in ads_now if ad.audio_status is not None]
        assert len(ads_now) == 12 and 1 <= len(heard) < 12
        for ad in ads_now:  # whole: the lanes are there exactly when the status says so
            assert (ad.audio_status == "ok") == (_audio_rows(cache, ad.key) == 1)
            assert ad.audio_status in (None, "ok") and ad.audio_model in (None, audio_spec())
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    left = 12 - len(heard)
    assert f"soundtracks read {left} ({left} ok, 0 no audio, 0 audio failed)" in " ".join(done.stdout.split())
    with Store(cache, readonly=True) as store:
        assert [ad.audio_status for ad in store.ads()] == ["ok"] * 12


def test_setup_makes_the_demo_ad_with_a_soundtrack_once_and_remakes_a_damaged_one(tmp_path: Path, megamind: Path,
                                                                                  audio_model) -> None:
    from emocore.provision import BUILT_RECORD, DEMO_NAME, DEMO_SOURCE, fetch_demo_soundtrack_ad

    demo = tmp_path / "demo-ads"
    demo.mkdir()
    (demo / DEMO_SOURCE).write_bytes(megamind.read_bytes())
    said: list[str] = []
    made = fetch_demo_soundtrack_ad(demo, report=said.append)
    assert made == demo / DEMO_NAME and made.is_file() and any("building" in s for s in said)
    assert sorted(p.name for p in demo.iterdir()) == sorted([BUILT_RECORD, DEMO_NAME, DEMO_SOURCE])  # no partial
    built = made.stat().st_mtime_ns
    said.clear()
    assert fetch_demo_soundtrack_ad(demo, report=said.append) == made and said == []  # made once
    assert made.stat().st_mtime_ns == built
    lanes = score_lanes(decode_audio(made), audio_model)
    assert isinstance(lanes, AudioLanes)
    assert lanes.column("laughter")[2:5].max() > 0.5 and lanes.column("applause")[7:11].max() > 0.5
    made.write_bytes(made.read_bytes()[:1000])  # damaged: made again
    assert fetch_demo_soundtrack_ad(demo, report=said.append) == made and any("building" in s for s in said)
    assert score_lanes(decode_audio(made), audio_model).seconds == lanes.seconds
