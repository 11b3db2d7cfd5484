"""The indexer: real clips through the real model into a real SQLite cache, incremental runs,
bad input that never stops a batch, and a kill -9 in the middle of a run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from processes import kill_9_when
from emocore.devtools import media
from emocore.errors import FolderNotFound
from emocore.indexer import IndexParams, index_folder
from emocore.models.base import EmotionModel, FrameScores
from emocore.store import Store
from emocore.video import find_videos

ROOT = Path(__file__).resolve().parent.parent


class RednessModel(EmotionModel):
    """A toy model with a known answer: 'red' is the share of red in the frame's mean colour."""

    name = "redness"
    version = "1"
    labels = ("red", "blue")

    def __init__(self) -> None:
        self.frames_seen = 0

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        self.frames_seen += len(frames)
        means = np.array([f.reshape(-1, 3).mean(0) for f in frames])
        red = means[:, 0] / (means[:, 0] + means[:, 2] + 1e-6)
        return FrameScores(np.stack([red, 1 - red], axis=1).astype(np.float32))


class Counting(EmotionModel):
    """Wraps a model, counting frames scored; same identity, so the same cache keys."""

    def __init__(self, inner: EmotionModel) -> None:
        self.inner, self.frames_seen = inner, 0
        self.name, self.version, self.labels = inner.name, inner.version, inner.labels

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        self.frames_seen += len(frames)
        return self.inner.analyse(frames)


def test_real_clips_through_the_real_model(tmp_path: Path, face_model: EmotionModel, carphone: Path,
                                           megamind: Path, bunny: Path) -> None:
    ads = tmp_path / "ads"
    ads.mkdir()
    for clip in (carphone, megamind, bunny):
        shutil.copy(clip, ads / clip.name)
    report = index_folder(ads, tmp_path / "cache", model=face_model, explain=None)
    assert [o.status for o in report.outcomes] == ["indexed"] * 3
    with Store(tmp_path / "cache", readonly=True) as store:
        assert store.check() == []
        talking = store.ad("carphone.mp4")
        tl = store.timeline(talking.key)
        assert talking.face_coverage >= 0.85 and len(tl.times) == 8
        seen = ~np.isnan(tl.raw).any(axis=1)
        assert (tl.faces[seen] >= 1).all()
        np.testing.assert_allclose(tl.raw[seen].sum(axis=1), 1.0, atol=1e-4)  # probabilities
        assert all(box is not None and box[2] > box[0] for box, s in zip(tl.boxes, seen) if s)
        film = store.ad("Megamind.avi")
        assert film.face_coverage > 0.6
        assert store.timeline(film.key).shots == pytest.approx([4.09, 6.42, 8.34], abs=0.05)
        figures = {e.emotion: e for e in store.emotions(film.key)}
        assert set(figures) == set(face_model.labels)
        assert film.dominant_raw == max(figures.values(), key=lambda e: e.mean).emotion
        assert film.face_frames == int((~np.isnan(store.timeline(film.key).raw).all(axis=1)).sum())
        assert film.face_seconds == pytest.approx(film.face_frames / 2.0)
        cartoon = store.timeline(store.ad("bigbuckbunny.mp4").key)
        missing = np.isnan(cartoon.raw).all(axis=1)
        assert missing.any()  # a bunny has no human face: "no face" rows stay NaN, not 0
        assert (cartoon.faces[missing] == 0).all()
        assert store.thumbnail(film.key, 0) is not None


def test_exact_scores_with_a_toy_model(tmp_path: Path) -> None:
    ads = tmp_path / "ads"
    media.color_cut_clip(ads / "cut.mp4", seconds=4.0, cut_at=2.0)
    params = IndexParams(sample_rate=2.0)
    report = index_folder(ads, tmp_path / "cache", model=RednessModel(), params=params, explain=None)
    assert report.count("indexed") == 1
    with Store(tmp_path / "cache", readonly=True) as store:
        ad = store.ad("cut.mp4")
        tl = store.timeline(ad.key)
        assert tl.shots == (2.0,)
        assert (tl.raw[:4, 0] > 0.75).all() and (tl.raw[4:, 0] < 0.25).all()
        assert ad.face_coverage is None and tl.faces.tolist() == [-1] * 8  # a whole-frame model finds no faces
        red = {e.emotion: e for e in store.emotions(ad.key)}["red"]
        # smoothing stops at the cut: each shot keeps its own level, no frame is blurred across it
        assert red.share_above == 4 / 8
        assert (tl.smoothed[:4, 0] > 0.75).all() and (tl.smoothed[4:, 0] < 0.25).all()
        assert red.peak_time_s < 2.0
        # a whole-frame model: every scored frame is evidence
        assert (ad.face_frames, ad.face_seconds) == (8, 4.0)


def test_unchanged_files_are_skipped_without_decoding(tmp_path: Path) -> None:
    ads = tmp_path / "ads"
    media.color_cut_clip(ads / "a.mp4", seed=1)
    media.color_cut_clip(ads / "b.mp4", seed=2)
    index_folder(ads, tmp_path / "cache", model=RednessModel(), explain=None)
    again = RednessModel()
    report = index_folder(ads, tmp_path / "cache", model=again, explain=None)
    assert [o.status for o in report.outcomes] == ["skipped", "skipped"]
    assert [o.note for o in report.outcomes] == ["unchanged", "unchanged"]
    assert again.frames_seen == 0


def test_changed_content_or_parameters_are_redone(tmp_path: Path) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    media.color_cut_clip(ads / "a.mp4", seed=1)
    index_folder(ads, cache, model=RednessModel(), explain=None)
    media.color_cut_clip(ads / "a.mp4", seed=2, cut_at=1.0)  # same name, new bytes
    assert index_folder(ads, cache, model=RednessModel(), explain=None).outcomes[0].status == "indexed"
    report = index_folder(ads, cache, model=RednessModel(), params=IndexParams(sample_rate=1.0), explain=None)
    assert report.outcomes[0].status == "indexed"
    with Store(cache, readonly=True) as store:
        assert len(store.ads()) == 3  # old content, new content, new parameters


def test_the_same_video_under_two_names_is_scored_once(tmp_path: Path) -> None:
    ads = tmp_path / "ads"
    clip = media.color_cut_clip(ads / "original.mp4")
    shutil.copy(clip, ads / "copy of original.mp4")
    model = RednessModel()
    report = index_folder(ads, tmp_path / "cache", model=model, explain=None)
    assert sorted(o.status for o in report.outcomes) == ["indexed", "skipped"]
    assert next(o.note for o in report.outcomes if o.status == "skipped").startswith("same content as")
    assert model.frames_seen == 8
    with Store(tmp_path / "cache", readonly=True) as store:
        assert len(store.ads()) == 1 and len(store.files()) == 2


def test_bad_input_never_stops_a_batch_and_loses_nothing(tmp_path: Path, carphone: Path, megamind: Path) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    media.color_cut_clip(ads / "good first.mp4", seed=3)
    index_folder(ads, cache, model=RednessModel(), explain=None)  # something already in the cache
    media.zero_byte(ads / "empty.mp4")
    media.text_as_video(ads / "notes.mp4")
    media.truncated_copy(media.color_cut_clip(tmp_path / "full.mp4"), ads / "truncated.mp4", 0.5)
    media.corrupt_middle_copy(megamind, ads / "corrupt middle.avi")
    media.one_frame_clip(ads / "one frame.mp4")
    media.rotated_clip(ads / "phone portrait.mp4", 90)
    media.big_clip(ads / "uhd 4k.mp4", seconds=1.0)
    media.with_audio_clip(ads / "with audio.mp4")
    shutil.copy(carphone, ads / "Café crème – spot ünïcode.mp4")
    (ads / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    report = index_folder(ads, cache, model=RednessModel(), explain=None)
    status = {o.path.name: (o.status, o.error) for o in report.outcomes}
    assert status["good first.mp4"][0] == "skipped"
    assert status["empty.mp4"] == ("failed", "empty file (0 bytes)")
    assert status["notes.mp4"][0] == "failed" and "not a readable video" in status["notes.mp4"][1]
    assert status["truncated.mp4"][0] == "failed"
    assert status["dangling.mp4"] == ("failed", "file does not exist (broken link)")
    for name in ("corrupt middle.avi", "one frame.mp4", "phone portrait.mp4", "uhd 4k.mp4", "with audio.mp4",
                 "Café crème – spot ünïcode.mp4"):
        assert status[name][0] == "indexed", (name, status[name])
    assert all("\n" not in (o.error or "") for o in report.outcomes)
    with Store(cache, readonly=True) as store:
        assert store.check() == []
        assert store.ad("good first.mp4").status == "ok"
        assert store.ad("phone portrait.mp4").width == 180
        assert store.ad("notes.mp4").status == "failed"
        assert {f.path.rsplit("/", 1)[-1] for f in store.files() if f.status == "failed"} >= {
            "empty.mp4", "notes.mp4", "truncated.mp4", "dangling.mp4"}


def test_an_unreadable_file_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ads = tmp_path / "ads"
    locked = media.color_cut_clip(ads / "locked.mp4")
    media.color_cut_clip(ads / "open.mp4", seed=5)
    if os.geteuid() == 0:  # root reads anything: make reading this one file fail as it would for a user
        import emocore.indexer as indexer

        real = indexer.content_hash

        def denied(path: Path) -> str:
            if path.name == "locked.mp4":
                raise PermissionError(13, "Permission denied")
            return real(path)

        monkeypatch.setattr(indexer, "content_hash", denied)
    else:
        locked.chmod(0)
    report = index_folder(ads, tmp_path / "cache", model=RednessModel(), explain=None)
    status = {o.path.name: (o.status, o.error) for o in report.outcomes}
    assert status["locked.mp4"] == ("failed", "cannot read file (Permission denied)")
    assert status["open.mp4"][0] == "indexed"


def test_no_videos_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no videos here")
    assert index_folder(tmp_path / "docs", tmp_path / "cache", model=RednessModel(), explain=None).outcomes == ()
    with pytest.raises(FolderNotFound):
        index_folder(tmp_path / "nowhere", tmp_path / "cache", model=RednessModel(), explain=None)


@pytest.mark.slow
def test_kill_9_mid_index_then_rerun_finishes(tmp_path: Path, demo_dir: Path, weights_ready: None) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    ads.mkdir()
    for clip in find_videos(demo_dir):  # the videos only (the folder also holds setup's record of what it built)
        shutil.copy(clip, ads / clip.name)
    expected = len(list(ads.iterdir()))
    cmd = [sys.executable, str(ROOT / "cli.py"), "index", str(ads), "--cache", str(cache), "--no-explain"]
    kill_9_when(cmd, ROOT, cache / "emocore.sqlite", "SELECT COUNT(*) FROM ads")
    with Store(cache) as store:
        assert store.check() == []
        partial = len(store.ads())
    assert 1 <= partial < expected
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"skipped {partial} unchanged" in done.stdout
    with Store(cache, readonly=True) as store:
        assert store.check() == []
        assert len(store.ads("ok")) == expected
