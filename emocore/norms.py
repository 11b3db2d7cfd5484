"""Library norms: how an ad's emotion figures read against a library of ads.

An ad's raw mean over its face frames says little on its own: a mean over 2 frames is mostly
noise, and the face model leans to some emotions (sad, fear) on every ad. So each ad's mean is
read against a library (this cache, or another one: a team's archive):

- **Evidence**: n = the ad's face frames (sampled frames with a scored face; for a whole-frame
  model every scored frame).
- **Score** (evidence-aware, what the library ranks by): empirical-Bayes shrinkage of the ad's
  mean m towards the library's mean μ for that emotion, weighted by face frames:

      score = (n·m + k·μ) / (n + k)

  An ad with few face frames scores close to μ; one with many keeps its own mean.
- **Prior strength k** (in face frames), per emotion, by the method of moments over the library's
  ads with at least one face frame: σ²_w = the pooled within-ad variance of the raw per-frame
  values (Σ n_i·v_i / Σ (n_i − 1), v_i the ad's variance), τ² = the between-ad variance of the
  means less the part the frame noise explains (var(m_i) − σ²_w · mean(1/n_i)), and
  k = σ²_w / τ², clipped to [K_FLOOR, K_CEILING] (τ² ≤ 0, all ads alike: K_CEILING). With fewer
  than MIN_ADS_FOR_K such ads, k = K_FALLBACK. Frames a few hundred milliseconds apart are not
  independent draws (faces hold expressions, and the signal is smoothed), so σ²_w/n understates
  the noise of a short ad's mean; the floor keeps a handful of frames from ever counting as much
  evidence as the library's spread.
- μ: the plain mean of m_i over the library's ads with at least one face frame.
- **Percentile** (0–100): where the ad's score falls among the scores of the library's ads with
  enough evidence (≥ `min_face_frames`; mid-rank, so the median ad reads 50).
- **Lift**: score / μ (1.8 means 1.8× the library's mean for that emotion).
- **Dominant**: the emotion with the highest lift, for an ad with enough evidence (None
  otherwise); the raw argmax of the means is kept as `dominant_raw`.

Norms are computed at read time from the cache (one SQL query over the `ads` table, whose
`figures` column packs each ad's per-emotion figures; vectorised), so they are always current as
ads are added or removed; nothing else is stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emocore.store import FIGURE_FIELDS, Store, unpack_figures

#: Face frames an ad needs to be ranked and to have a dominant emotion: 3 s of face at the default
#: 2 frames/s, so a 4 s talking head ranks and a face glimpsed for a second or two does not.
DEFAULT_MIN_FACE_FRAMES = 6
#: Bounds of the prior strength k, in face frames.
K_FLOOR = 5.0
K_CEILING = 500.0
#: k for a library too small to estimate it from (fewer than MIN_ADS_FOR_K ads with a face).
K_FALLBACK = 10.0
MIN_ADS_FOR_K = 10


@dataclass(frozen=True, eq=False)
class EmotionNorm:
    """One emotion's norm in a library."""

    emotion: str
    mean: float
    """μ: the mean of the ads' means (ads with at least one face frame)."""
    k: float
    """Prior strength in face frames (see the module's docstring)."""
    scores: np.ndarray
    """Sorted scores of the library's ads with enough evidence (what percentiles are read against)."""
    ads: int
    """Ads with at least one face frame that μ and k come from."""
    within_variance: float | None
    between_variance: float | None
    fallback: bool
    """True when the library was too small to estimate k (k = K_FALLBACK)."""


@dataclass(frozen=True, eq=False)
class Norms:
    """A library's norms per emotion; `source` names the cache they come from."""

    source: str
    ads: int
    """Ads of the library that were read (indexed, status ok)."""
    min_face_frames: int
    by_emotion: Mapping[str, EmotionNorm] = field(default_factory=dict)

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.by_emotion)

    def score(self, emotion: str, mean: np.ndarray | float, face_frames: np.ndarray | float) -> np.ndarray:
        """The evidence-aware score (NaN where the mean is missing or the emotion has no norm)."""
        return shrink(mean, face_frames, self.by_emotion.get(emotion))

    def percentile(self, emotion: str, score: np.ndarray | float) -> np.ndarray:
        """0–100: the mid-rank of `score` among the library's scores (NaN without a norm)."""
        norm = self.by_emotion.get(emotion)
        score = np.asarray(score, dtype=np.float64)
        if norm is None or len(norm.scores) == 0:
            return np.full(score.shape, np.nan)
        flat = score.ravel()
        order = np.argsort(flat, kind="stable")  # sorted needles: searchsorted runs much faster
        below, upto = np.empty(len(flat)), np.empty(len(flat))
        below[order] = np.searchsorted(norm.scores, flat[order], side="left")
        upto[order] = np.searchsorted(norm.scores, flat[order], side="right")
        pct = 50.0 * (below + upto) / len(norm.scores)
        return np.where(np.isnan(flat), np.nan, pct).reshape(score.shape)

    def lift(self, emotion: str, score: np.ndarray | float) -> np.ndarray:
        """score / μ (NaN without a norm or with μ = 0)."""
        norm = self.by_emotion.get(emotion)
        score = np.asarray(score, dtype=np.float64)
        if norm is None or not norm.mean > 0:
            return np.full(score.shape, np.nan)
        return score / norm.mean


def shrink(mean: np.ndarray | float, face_frames: np.ndarray | float, norm: EmotionNorm | None) -> np.ndarray:
    """(n·m + k·μ) / (n + k), elementwise; NaN where m is missing, n < 1 or there is no norm."""
    m = np.asarray(mean, dtype=np.float64)
    n = np.asarray(face_frames, dtype=np.float64)
    if norm is None:
        return np.full(np.broadcast(m, n).shape, np.nan)
    with np.errstate(invalid="ignore"):
        out = (n * m + norm.k * norm.mean) / (n + norm.k)
    return np.where((n >= 1) & ~np.isnan(m), out, np.nan)


@dataclass(frozen=True)
class PriorStrength:
    k: float
    within_variance: float | None
    between_variance: float | None
    fallback: bool


def prior_strength(means: np.ndarray, variances: np.ndarray, face_frames: np.ndarray) -> PriorStrength:
    """k (with the variances it comes from) by the method of moments (see the module's docstring)."""
    n = np.asarray(face_frames, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    use = (n >= 1) & ~np.isnan(m)
    if use.sum() < MIN_ADS_FOR_K:
        return PriorStrength(K_FALLBACK, None, None, True)
    n, m, v = n[use], m[use], v[use]
    several = (n >= 2) & ~np.isnan(v)
    dof = (n[several] - 1).sum()
    if dof <= 0:
        return PriorStrength(K_FALLBACK, None, None, True)
    within = float((n[several] * v[several]).sum() / dof)
    between = float(m.var(ddof=1) - within * (1.0 / n).mean())
    if between <= 0 or within <= 0:
        k = K_CEILING if within > 0 else K_FLOOR
    else:
        k = float(np.clip(within / between, K_FLOOR, K_CEILING))
    return PriorStrength(k, within, between, False)


def compute_norms(table: pd.DataFrame, *, source: str, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> Norms:
    """Norms from a library table (`read_table`'s shape: one row per ad with `status`,
    `face_frames` and, per emotion e, `mean_<e>` and `var_<e>`); only ads with status ok count."""
    if min_face_frames < 1:
        raise ValueError(f"the minimum evidence must be at least 1 face frame, got {min_face_frames}")
    ok = (table["status"] == "ok").to_numpy() if len(table) else np.zeros(0, dtype=bool)
    n_all = table["face_frames"].to_numpy(dtype=np.float64, na_value=0.0) if len(table) else np.zeros(0)
    by_emotion: dict[str, EmotionNorm] = {}
    for emotion in sorted(c[len("mean_"):] for c in table.columns if c.startswith("mean_")):
        m = table[f"mean_{emotion}"].to_numpy(dtype=np.float64, na_value=np.nan)[ok]
        v = (table[f"var_{emotion}"].to_numpy(dtype=np.float64, na_value=np.nan)[ok] if f"var_{emotion}" in table
             else np.full(len(m), np.nan))
        n = n_all[ok]
        has = (n >= 1) & ~np.isnan(m)
        if not has.any():
            continue
        prior = prior_strength(m, v, n)
        mu = float(m[has].mean())
        enough = has & (n >= min_face_frames)
        scores = (n[enough] * m[enough] + prior.k * mu) / (n[enough] + prior.k)
        by_emotion[emotion] = EmotionNorm(emotion, mu, prior.k, np.sort(scores), int(has.sum()),
                                          prior.within_variance, prior.between_variance, prior.fallback)
    return Norms(source=source, ads=int(ok.sum()), min_face_frames=min_face_frames, by_emotion=by_emotion)


#: Per-emotion columns `read_table` unpacks from `ads.figures` (prefix per packed field).
FIGURE_PREFIXES = {"mean": "mean", "variance": "var", "peak": "peak", "peak_time_s": "peak_time",
                   "share_above": "share"}


#: Columns of `ads` read as numbers by `read_table`.
NUMERIC_COLUMNS = frozenset({"face_frames", "face_seconds", "duration_s", "frames", "face_coverage", "indexed_at",
                             "fps", "width", "height", "rotation", "size_bytes", "decode_errors", "elapsed_s"})


def read_table(store: Store, columns: Sequence[str] = ("key", "status", "face_frames")) -> pd.DataFrame:
    """One row per ad, newest first, with `columns` of the `ads` table (always `status` and `face_frames`) and,
    per emotion e, `mean_<e>`, `var_<e>`, `peak_<e>`, `peak_time_<e>`, `share_<e>` (unpacked from
    `ads.figures`, the packed copy of the ad's `emotions` rows): one query, no join."""
    wanted = list(dict.fromkeys([*columns, "status", "face_frames"]))
    rows = store.connection.execute(
        f"SELECT {', '.join(wanted)}, labels, figures FROM ads ORDER BY indexed_at DESC, key").fetchall()
    data = list(zip(*rows)) if rows else [() for _ in range(len(wanted) + 2)]
    out: dict[str, object] = {}
    for c, values in zip(wanted, data[:-2]):
        out[c] = np.array(values, dtype=np.float64 if c in NUMERIC_COLUMNS else object)  # None → NaN
    labels, blobs = np.array(data[-2], dtype=object), list(data[-1])
    count = len(rows)
    for text in dict.fromkeys(labels.tolist()):
        names = json.loads(text)
        rows_of = np.flatnonzero(labels == text)
        whole = len(rows_of) == count
        values = unpack_figures(blobs if whole else [blobs[i] for i in rows_of], len(names))
        for j, name in enumerate(names):
            for field_name, prefix in FIGURE_PREFIXES.items():
                column = values[:, j, FIGURE_FIELDS.index(field_name)]
                if whole and f"{prefix}_{name}" not in out:
                    out[f"{prefix}_{name}"] = np.ascontiguousarray(column)
                    continue
                target = out.setdefault(f"{prefix}_{name}", np.full(count, np.nan))
                target[rows_of] = column  # type: ignore[index]
    return pd.DataFrame(out)


def load_norms(store: Store, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> Norms:
    """The norms of the library a store holds (computed now from one query, so always current)."""
    return compute_norms(read_table(store), source=str(store.root), min_face_frames=min_face_frames)


def load_norms_from(root: Path | str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> Norms:
    """The norms of another cache folder (read-only), e.g. a team's archive."""
    with Store(root, readonly=True) as store:
        return load_norms(store, min_face_frames=min_face_frames)


__all__ = ["DEFAULT_MIN_FACE_FRAMES", "EmotionNorm", "K_CEILING", "K_FALLBACK", "K_FLOOR", "MIN_ADS_FOR_K", "Norms",
           "PriorStrength", "compute_norms", "load_norms", "load_norms_from", "prior_strength", "read_table", "shrink"]
