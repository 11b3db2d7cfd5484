"""Shot boundaries from the decoding pass, on clips with cuts at known times."""

from __future__ import annotations

from pathlib import Path

import pytest

from emocore.devtools import media
from emocore.shots import ShotDetector
from emocore.video import open_video


def _shots(path: Path) -> list[float]:
    with open_video(path) as video:
        detector = ShotDetector(video.info.fps)
        for _ in video.sample(2.0, on_frame=detector.feed):
            pass
    return detector.boundaries()


def test_a_colour_cut_is_found_at_its_frame(tmp_path: Path) -> None:
    clip = media.color_cut_clip(tmp_path / "cut.mp4", seconds=4.0, cut_at=2.0, fps=25)
    assert _shots(clip) == [pytest.approx(2.0, abs=1e-6)]


def test_several_cuts_in_an_avi(tmp_path: Path) -> None:
    clip = media.color_cut_clip(
        tmp_path / "cuts.avi", seconds=5.0, cuts=(1.0, 2.6, 4.0), fps=25, codec="mpeg4",
        colors=((220, 40, 40), (40, 40, 220), (30, 120, 30)),
    )
    assert _shots(clip) == pytest.approx([1.0, 2.6, 4.0], abs=1 / 25 + 1e-6)


def test_a_single_shot_has_no_boundary(tmp_path: Path) -> None:
    assert _shots(media.color_cut_clip(tmp_path / "one.mp4", seconds=3.0, cuts=(), colors=((90, 90, 90), (90, 90, 90)))) == []


def test_real_film_cuts(megamind: Path) -> None:
    # Megamind.avi has three hard cuts; found once each, in order
    cuts = _shots(megamind)
    assert cuts == pytest.approx([4.09, 6.42, 8.34], abs=0.05)
