"""Index parameters as typed records: they round-trip through `asdict`, through the JSON the store keeps,
and through a real index; what an older write lacks takes its default; what this emocore does not know
is refused with a one-line error."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from emocore.devtools import media
from emocore.errors import ParamsError
from emocore.indexer import index_folder, params_hash
from emocore.models.base import EmotionModel, FrameScores
from emocore.params import IndexParams, ScoringParams, ShotParams
from emocore.store import NewAd, Store

CHANGED = IndexParams(sample_rate=4.0, max_side=640, scoring=ScoringParams(window_s=0.0, threshold=0.3, prominence=0.25),
                      shots=ShotParams(threshold=30.0, min_shot_s=1.0), thumb_width=120)


class Greyness(EmotionModel):
    """A toy whole-frame model: 'grey' is the frame's mean brightness."""

    name = "greyness"
    version = "1"
    labels = ("grey", "dark")

    def analyse(self, frames) -> FrameScores:  # noqa: ANN001
        grey = np.array([f.mean() / 255.0 for f in frames], dtype=np.float32)
        return FrameScores(np.stack([grey, 1 - grey], axis=1))


@pytest.mark.parametrize("params", [IndexParams(), CHANGED, IndexParams(sample_rate=30, max_side=64)])
def test_index_params_round_trip_through_asdict_and_json(params: IndexParams) -> None:
    assert IndexParams.from_dict(asdict(params)) == params
    assert IndexParams.from_dict(json.loads(json.dumps(asdict(params)))) == params
    assert ScoringParams.from_dict(asdict(params.scoring)) == params.scoring
    assert ShotParams.from_dict(asdict(params.shots)) == params.shots


def test_what_an_indexed_ad_was_made_with_reads_back_typed(tmp_path: Path) -> None:
    """A real index (a real clip, a real store): the ad's `index_params` are the parameters given."""
    media.color_cut_clip(tmp_path / "ads" / "cut.mp4", seconds=3.0, cut_at=1.5)
    report = index_folder(tmp_path / "ads", tmp_path / "cache", model=Greyness(), params=CHANGED, explain=None)
    assert report.count("indexed") == 1
    with Store(tmp_path / "cache", readonly=True) as store:
        ad = store.ad("cut.mp4")
        assert ad.index_params == CHANGED
        assert ad.params == params_hash(Greyness(), CHANGED)[1]  # the record is the JSON the key was hashed from
        assert len(store.timeline(ad.key).times) == 12  # 4 frames/s over 3 s: the stored rate was used


def test_fields_an_older_write_lacks_take_their_defaults(tmp_path: Path) -> None:
    # an ad written before `prominence` existed, and a row written without any index parameters
    older = {"sample_rate": 1.0, "max_side": 1280, "scoring": {"window_s": 2.0, "threshold": 0.5},
             "shots": {"threshold": 27.0, "min_shot_s": 0.5}, "thumb_width": 240}
    with Store(tmp_path) as store:
        for key, params in (("old", {"index": older, "model": {}, "schema": 2}), ("bare", {})):
            store.write_ad(NewAd(key=key, content_hash=key, params_hash="p", params=params, name=f"{key}.mp4",
                                 path=f"/{key}.mp4", size_bytes=1, model="toy", model_version="1", labels=("a",)))
        # shots were found on every frame before `every_frame` existed: such ads read back as made so
        before = ShotParams(every_frame=True)
        assert store.ad("old").index_params == IndexParams(sample_rate=1.0, scoring=ScoringParams(window_s=2.0),
                                                           shots=before)
        assert store.ad("old").index_params.scoring.prominence == ScoringParams().prominence
        assert store.ad("bare").index_params == IndexParams(shots=before)
        assert not IndexParams().shots.every_frame


@pytest.mark.parametrize(("data", "message"), [
    ({"sample_rate": 2.0, "audio_rate": 16000}, r"index parameters hold 'audio_rate', unknown to this emocore"),
    ({"scoring": {"window_s": 1.5, "smoothing": "gauss"}}, r"index parameters: scoring hold 'smoothing', unknown"),
    ({"sample_rate": "2"}, r"index parameters: sample_rate must be float, got '2'"),
    ({"max_side": 640.5}, r"index parameters: max_side must be int, got 640.5"),
    ({"thumb_width": True}, r"index parameters: thumb_width must be int, got True"),
    ({"shots": [27.0, 0.5]}, r"index parameters: shots must be a mapping, got list"),
    ({"sample_rate": 0.0}, r"index parameters: sample rate must be in \(0, 30\]"),
    ({"scoring": {"prominence": 2.0}}, r"index parameters: scoring: prominence must be in \[0, 1\]"),
])
def test_what_this_emocore_does_not_know_is_refused_in_one_line(data: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message) as caught:
        IndexParams.from_dict(data)
    assert "\n" not in str(caught.value)


def test_an_unknown_stored_parameter_is_refused_when_read(tmp_path: Path) -> None:
    """The store keeps what it was given; reading it as typed parameters names what is unknown."""
    with Store(tmp_path) as store:
        store.write_ad(NewAd(key="new", content_hash="c", params_hash="p", name="new.mp4", path="/new.mp4",
                             params={"index": {**asdict(IndexParams()), "audio_rate": 16000}}, size_bytes=1,
                             model="toy", model_version="1", labels=("a",)))
        ad = store.ad("new")  # listing still works
        with pytest.raises(ParamsError, match="'audio_rate', unknown to this emocore"):
            ad.index_params
