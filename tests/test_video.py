"""Reading videos: true metadata, sampling without seeking, rotation, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emocore.devtools import media
from emocore.errors import VideoError
from emocore.video import find_videos, open_video


def _sample(path: Path, rate: float = 2.0, max_side: int | None = None) -> list:
    with open_video(path) as video:
        return list(video.sample(rate, max_side))


def test_real_clip_metadata_and_sampling(megamind: Path) -> None:
    with open_video(megamind) as video:
        info = video.info
        frames = list(video.sample(2.0))
    assert (info.width, info.height, info.rotation) == (720, 528, 0)
    assert info.fps == pytest.approx(23.976, abs=0.01)
    assert info.duration_s == pytest.approx(11.26, abs=0.05)
    assert info.frame_count == 270
    times = [f.time_s for f in frames]
    assert len(frames) == 23  # 0, 0.5, ..., 11.0
    assert times[0] == 0.0
    assert np.allclose(np.diff(times), 0.5, atol=1 / 23.976 + 1e-3)  # first frame at or after each 0.5 s
    assert frames[0].image.shape == (528, 720, 3) and frames[0].image.dtype == np.uint8


def test_sampling_rate_counts_exactly(tmp_path: Path) -> None:
    clip = media.color_cut_clip(tmp_path / "c.mp4", seconds=4.0, fps=25)
    # the first frame at or after each multiple of 0.5 s on the 25 fps grid
    assert [f.time_s for f in _sample(clip, rate=2.0)] == pytest.approx([0, 0.52, 1, 1.52, 2, 2.52, 3, 3.52])
    assert len(_sample(clip, rate=1.0)) == 4
    assert len(_sample(clip, rate=25.0)) == 100  # every frame


def test_sampled_frames_carry_the_right_picture(tmp_path: Path) -> None:
    clip = media.color_cut_clip(tmp_path / "c.mp4", seconds=4.0, cut_at=2.0)
    frames = _sample(clip)
    red, blue = frames[1].image.reshape(-1, 3).mean(0), frames[5].image.reshape(-1, 3).mean(0)
    assert red[0] > 150 and red[2] < 80
    assert blue[2] > 150 and blue[0] < 80


def test_max_side_scales_down_and_never_up(tmp_path: Path, bunny: Path) -> None:
    assert _sample(bunny, max_side=640)[0].image.shape == (360, 640, 3)
    small = media.color_cut_clip(tmp_path / "s.mp4", size=(320, 240))
    assert _sample(small, max_side=1280)[0].image.shape == (240, 320, 3)


@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_rotated_phone_video_is_read_upright(tmp_path: Path, rotation: int) -> None:
    clip = media.rotated_clip(tmp_path / f"r{rotation}.mp4", rotation)
    with open_video(clip) as video:
        info = video.info
        image = next(video.sample(2.0)).image
    assert info.rotation == rotation
    h, w = image.shape[:2]
    assert (info.width, info.height) == (w, h)
    assert (h, w) == ((180, 320) if rotation == 180 else (320, 180))
    # the white block of the coded top-left corner lands where a player shows it (media.rotated_clip)
    corner = {90: image[:20, -20:], 270: image[-20:, :20], 180: image[-20:, -20:]}[rotation]
    assert corner.mean() > 200
    assert image[:20, :20].mean() < 100 if rotation != 270 else image[:20, -20:].mean() < 100


def test_4k_clip_is_scaled_for_the_model(tmp_path: Path) -> None:
    clip = media.big_clip(tmp_path / "uhd.mp4", seconds=1.0)
    with open_video(clip) as video:
        assert (video.info.width, video.info.height) == (3840, 2160)
        frames = list(video.sample(2.0, max_side=1280))
    assert len(frames) == 2 and frames[0].image.shape == (720, 1280, 3)


def test_audio_first_file_reads_the_video_stream(tmp_path: Path) -> None:
    clip = media.with_audio_clip(tmp_path / "a.mp4", seconds=2.0)
    with open_video(clip) as video:
        assert video.info.has_audio and (video.info.width, video.info.height) == (320, 240)
        assert len(list(video.sample(2.0))) == 4


def test_one_frame_clip(tmp_path: Path) -> None:
    frames = _sample(media.one_frame_clip(tmp_path / "one.mp4"))
    assert len(frames) == 1 and frames[0].time_s == 0.0


def test_corrupt_middle_yields_the_readable_frames(tmp_path: Path, megamind: Path) -> None:
    broken = media.corrupt_middle_copy(megamind, tmp_path / "broken.avi")
    with open_video(broken) as video:
        frames = list(video.sample(2.0))
    assert 10 <= len(frames) <= 23
    assert frames[0].time_s == 0.0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: media.zero_byte(d / "empty.mp4"), "empty file"),
        (lambda d: media.text_as_video(d / "notes.mp4"), "not a readable video"),
        (lambda d: media.truncated_copy(media.color_cut_clip(d / "full.mp4"), d / "cut.mp4", 0.5), "not a readable video"),
        (lambda d: d / "missing.mp4", "does not exist"),
    ],
)
def test_bad_files_raise_one_line_reasons(tmp_path: Path, make, reason: str) -> None:
    with pytest.raises(VideoError, match=reason) as caught:
        _sample(make(tmp_path))
    assert "\n" not in str(caught.value)


def test_truncated_faststart_mp4_keeps_its_prefix(tmp_path: Path) -> None:
    full = media.color_cut_clip(tmp_path / "full.mp4", seconds=4.0, faststart=True)
    frames = _sample(media.truncated_copy(full, tmp_path / "cut.mp4", 0.6), rate=25)
    assert 30 <= len(frames) < 100


def test_find_videos_is_recursive_and_case_insensitive(tmp_path: Path) -> None:
    for name in ("a.mp4", "sub/b.MOV", "sub/deeper/c.webm", "d.txt", ".hidden/e.mp4", "f.mkv", "g.avi", "h.m4v"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)]
    assert found == ["a.mp4", "f.mkv", "g.avi", "h.m4v", "sub/b.MOV", "sub/deeper/c.webm"]
    assert find_videos(tmp_path / "a.mp4") == [tmp_path / "a.mp4"]
