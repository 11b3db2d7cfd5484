"""Library norms and the evidence-aware ranking: shrinkage, prior strength, percentiles, lift,
the lifted dominant emotion, and `queries.rank`'s one ordering, on real SQLite caches and on
simulated libraries whose right answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emocore import queries
from emocore.norms import (DEFAULT_MIN_FACE_FRAMES, K_FALLBACK, K_FLOOR, compute_norms, load_norms, load_norms_from,
                           prior_strength)
from emocore.scoring import smooth, summarise
from emocore.store import NewAd, Store, Timeline

LABELS = ("happy", "sad")


def _ad(key: str, happy: np.ndarray, sad: np.ndarray | None = None, *, status: str = "ok", at: float = 0.0) -> NewAd:
    """An ad scored at 2 frames/s; NaN in `happy` = no face in that frame."""
    times = np.arange(len(happy)) * 0.5
    sad = np.where(np.isnan(happy), np.nan, 1 - happy) if sad is None else sad
    raw = np.stack([happy, sad], axis=1).astype(np.float32)
    smoothed = smooth(times, raw, 1.5)
    summary = summarise(times, raw, smoothed, LABELS, 0.5, sample_rate=2.0)
    common = dict(key=key, content_hash=key * 2, params_hash="p", params={}, name=f"{key}.mp4", path=f"/ads/{key}.mp4",
                  size_bytes=1, model="toy", model_version="1", labels=LABELS)
    if status == "failed":
        return NewAd(**common, status="failed", error="not a readable video")
    faces = (~np.isnan(happy)).astype(np.int32)
    return NewAd(**common, info={"duration_s": len(happy) / 2}, emotions=summary.emotions,
                 timeline=Timeline(times=times, raw=raw, smoothed=smoothed, faces=faces,
                                   boxes=tuple((0, 0, 9, 9, 1.0) if f else None for f in faces), shots=()),
                 face_coverage=summary.face_coverage, dominant_raw=summary.dominant_raw,
                 face_frames=summary.face_frames, face_seconds=summary.face_seconds)


def _background(store: Store, count: int = 30, seed: int = 1) -> None:
    """Ordinary ads: 40 frames each, happy around 0.2 with per-ad differences and frame noise."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        level = 0.2 + rng.normal(0, 0.05)
        store.write_ad(_ad(f"bg{i:03d}", np.clip(level + rng.normal(0, 0.1, 40), 0, 1)))


def test_two_happy_frames_do_not_outrank_a_whole_smile(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        _background(store)
        glimpse = np.full(40, np.nan)
        glimpse[[10, 11]] = 0.95  # two happy face frames in a 20 s ad
        store.write_ad(_ad("glimpse", glimpse))
        store.write_ad(_ad("smile", np.full(40, 0.7)))  # smiling for the whole ad
        store.write_ad(_ad("broken", np.zeros(1), status="failed"))
        table = queries.library(store)
    by_key = table.set_index("key")
    assert by_key.loc["glimpse", "mean_happy"] > by_key.loc["smile", "mean_happy"]  # the raw mean says glimpse
    assert by_key.loc["smile", "score_happy"] > by_key.loc["glimpse", "score_happy"]  # the score does not
    for minimum in (1, DEFAULT_MIN_FACE_FRAMES):
        ranked = queries.rank(table, "happy", min_face_frames=minimum)
        keys = list(ranked["key"])
        assert keys[0] == "smile" and keys[-1] == "broken"
        assert keys.index("smile") < keys.index("glimpse")
    ranked = queries.rank(table, "happy")
    # too little evidence: after every ranked ad, before the failed one, never interleaved
    assert list(ranked["standing"]) == ["ranked"] * 31 + ["too little evidence", "failed"]
    assert list(ranked["rank"][:31]) == list(range(1, 32)) and ranked["rank"][31:].isna().all()
    assert ranked.iloc[31]["key"] == "glimpse"
    assert pd.isna(by_key.loc["glimpse", "dominant"]) and by_key.loc["glimpse", "dominant_raw"] == "happy"
    ascending = queries.rank(table, "happy", descending=False)
    assert list(ascending["key"][:31]) == list(ranked["key"][:31])[::-1]
    assert list(ascending["key"][31:]) == ["glimpse", "broken"]


def _simulated(ads: int = 400, frames: int = 60, seed: int = 7) -> pd.DataFrame:
    """The user's simulation: every ad's frames from ONE per-frame distribution, face coverage
    from 3 % to 100 %; a library table as `read_table` gives it."""
    rng = np.random.default_rng(seed)
    coverage = rng.uniform(0.03, 1.0, ads)
    n = np.maximum(1, np.round(coverage * frames)).astype(int)
    means, variances = [], []
    for count in n:
        values = rng.beta(2, 5, count)  # one distribution for every ad
        means.append(values.mean())
        variances.append(values.var())
    return pd.DataFrame({"key": [f"ad{i:03d}" for i in range(ads)], "name": [f"ad{i:03d}.mp4" for i in range(ads)],
                         "status": "ok", "face_frames": n.astype(float), "indexed_at": np.arange(ads, dtype=float),
                         "dominant_raw": "happy", "mean_happy": means, "var_happy": variances})


def test_one_distribution_does_not_put_only_low_coverage_ads_on_top() -> None:
    table = _simulated()
    norms = compute_norms(table, source="simulation", min_face_frames=1)
    scored = queries.with_norms(table, norms, min_face_frames=1)
    by_mean = scored.sort_values("mean_happy", ascending=False).head(20)
    assert (by_mean["face_frames"] <= 6).mean() >= 0.5  # what the user saw: the raw mean favours thin evidence
    top = queries.rank(scored, "happy", min_face_frames=1).head(20)
    assert top["face_frames"].median() > table["face_frames"].median()
    assert (top["face_frames"] <= 6).sum() == 0
    assert norms.by_emotion["happy"].k > 30  # all ads alike: strong shrinkage (truth: infinite)


def test_prior_strength_recovers_the_variance_ratio() -> None:
    rng = np.random.default_rng(0)
    ads, within, between = 2000, 0.04, 0.0025  # k = 16 face frames
    n = rng.integers(5, 80, ads)
    levels = 0.3 + rng.normal(0, math.sqrt(between), ads)
    frames = [lv + rng.normal(0, math.sqrt(within), c) for lv, c in zip(levels, n)]
    prior = prior_strength(np.array([f.mean() for f in frames]), np.array([f.var() for f in frames]), n)
    assert not prior.fallback
    assert prior.within_variance == pytest.approx(within, rel=0.05)
    assert prior.k == pytest.approx(16, rel=0.3)


def test_a_tiny_library_falls_back_to_a_fixed_prior() -> None:
    prior = prior_strength(np.array([0.2, 0.5, 0.4]), np.array([0.01, 0.02, 0.01]), np.array([20, 30, 40]))
    assert prior.fallback and prior.k == K_FALLBACK
    assert prior_strength(np.array([0.2] * 20), np.full(20, 0.01), np.full(20, 30)).k >= K_FLOOR


def test_score_percentile_and_lift_by_hand() -> None:
    table = pd.DataFrame({"key": ["a", "b", "c", "d"], "name": list("abcd"), "status": "ok",
                          "face_frames": [10.0, 10.0, 10.0, 2.0], "indexed_at": [4.0, 3.0, 2.0, 1.0],
                          "dominant_raw": "happy", "mean_happy": [0.1, 0.2, 0.6, 0.9],
                          "var_happy": [0.0, 0.0, 0.0, 0.0]})
    norms = compute_norms(table, source="hand", min_face_frames=5)
    happy = norms.by_emotion["happy"]
    assert happy.fallback and happy.k == K_FALLBACK  # 4 ads: too few to estimate k
    assert happy.mean == pytest.approx(0.45)
    score = norms.score("happy", np.array([0.6, 0.9]), np.array([10, 2]))
    np.testing.assert_allclose(score, [(10 * 0.6 + 10 * 0.45) / 20, (2 * 0.9 + 10 * 0.45) / 12])
    assert len(happy.scores) == 3  # only ads with enough evidence are the yardstick
    pct = norms.percentile("happy", np.array([happy.scores[0], happy.scores[2], 1.0, np.nan]))
    np.testing.assert_allclose(pct[:3], [100 / 6, 500 / 6, 100])
    assert np.isnan(pct[3])
    assert norms.lift("happy", 0.9) == pytest.approx(2.0)
    assert np.isnan(norms.score("angry", 0.5, 10))  # no norm for an emotion the library lacks


def test_dominant_is_the_highest_lift_not_the_highest_raw_mean(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with Store(tmp_path) as store:
        for i in range(12):  # a library where sad always reads high (the model's bias) and happy low
            happy = np.clip(0.1 + rng.normal(0, 0.03, 30), 0, 1)
            store.write_ad(_ad(f"lib{i:02d}", happy, np.clip(0.6 + rng.normal(0, 0.03, 30), 0, 1)))
        store.write_ad(_ad("cheerful", np.full(30, 0.3), np.full(30, 0.6)))  # happy 3× the library, sad as usual
        library = queries.library(store)
        table = library.set_index("key")
        standing = queries.ad_norms(store, "cheerful.mp4")
    from_table = queries.ad_norms(library, "cheerful")  # the same standing read off a library table
    assert from_table.by_emotion() == standing.by_emotion() and from_table.dominant == standing.dominant
    assert table.loc["cheerful", "dominant_raw"] == "sad"
    assert table.loc["cheerful", "dominant"] == "happy"
    assert table.loc["cheerful", "lift_happy"] > 2 and table.loc["cheerful", "pct_happy"] > 95  # the top of 13 (mid-rank)
    assert (standing.dominant, standing.dominant_raw, standing.enough_evidence) == ("happy", "sad", True)
    assert standing.by_emotion()["happy"].percentile == pytest.approx(table.loc["cheerful", "pct_happy"])
    assert standing.by_emotion()["happy"].lift == pytest.approx(table.loc["cheerful", "lift_happy"])


def test_norms_stay_current_and_can_come_from_another_cache(tmp_path: Path) -> None:
    archive, new = tmp_path / "archive", tmp_path / "new"
    with Store(archive) as store:
        for i in range(12):
            store.write_ad(_ad(f"old{i:02d}", np.full(30, 0.1 + 0.01 * i)))
    with Store(new) as store:
        store.write_ad(_ad("fresh", np.full(30, 0.3)))
        store.write_ad(_ad("other", np.full(30, 0.5)))
        own = load_norms(store)
        assert own.ads == 2 and own.by_emotion["happy"].mean == pytest.approx(0.4)
        store.write_ad(_ad("third", np.full(30, 0.2)))
        assert load_norms(store).ads == 3  # computed when read: always current
        archived = load_norms_from(archive)
        against_archive = queries.ad_norms(store, "fresh", archived)
        against_own = queries.ad_norms(store, "fresh")
    assert archived.source == str(archive) and archived.ads == 12
    assert against_archive.by_emotion()["happy"].percentile == 100  # happier than every archived ad
    assert against_own.by_emotion()["happy"].percentile == pytest.approx(50)
    assert against_archive.by_emotion()["happy"].lift > against_own.by_emotion()["happy"].lift


def test_ranking_an_unknown_emotion_names_the_known_ones(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.write_ad(_ad("a", np.full(20, 0.3)))
        table = queries.library(store)
    with pytest.raises(ValueError, match="unknown emotion 'joy'.*happy, sad"):
        queries.rank(table, "joy")
    with pytest.raises(ValueError, match="at least 1"):
        queries.rank(table, "happy", min_face_frames=0)
