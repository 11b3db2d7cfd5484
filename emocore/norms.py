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

The soundtrack's signals (`emocore.audio.lanes.AUDIO_SIGNALS`, all but the loudness) have norms of
their own, computed the same way with the **seconds of sound** as the evidence n (`ads.audio_seconds`)
and the per-second means packed in `ads.audio_figures` (ads whose soundtrack was read, status 'ok'),
k in seconds of sound within the same bounds, percentiles among the ads with at least
`min_audio_seconds` of sound (`DEFAULT_MIN_AUDIO_SECONDS`). A laugh track's neighbouring seconds are
not independent either (YAMNet's 0.96 s patches overlap by half, and a second takes its patches' largest
value), so the same floor keeps a 3-second laugh from counting as much as the library's spread.

Norms are computed at read time from the cache (one SQL query over the `ads` table, whose
`figures` column packs each ad's per-emotion figures; vectorised), so they are always current as
ads are added or removed; nothing else is stored.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emocore.audio.lanes import AUDIO_SIGNALS
from emocore.store import FIGURE_FIELDS, Store, unpack_figures

#: Face frames an ad needs to be ranked and to have a dominant emotion: 3 s of face at the default
#: 2 frames/s, so a 4 s talking head ranks and a face glimpsed for a second or two does not.
DEFAULT_MIN_FACE_FRAMES = 6
#: Seconds of sound an ad needs to be ranked by a soundtrack signal (laughter, applause, the cues, ...):
#: a laugh of a second or two is not yet an ad's character.
DEFAULT_MIN_AUDIO_SECONDS = 3.0
#: The soundtrack signals that have norms and ranks (every one but the loudness, which is in dBFS).
AUDIO_RANKABLE: tuple[str, ...] = tuple(s for s in AUDIO_SIGNALS if s != "loudness")
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
    by_audio: Mapping[str, EmotionNorm] = field(default_factory=dict)
    """Per soundtrack signal (`AUDIO_RANKABLE`): its norm, with k and the evidence in seconds of sound."""
    min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS
    audio_ads: int = 0
    """Ads of the library whose soundtrack was read (audio status ok)."""

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.by_emotion)

    def norm(self, name: str, *, audio: bool = False) -> EmotionNorm | None:
        """The norm of a face emotion, or with `audio` of a soundtrack signal (None without one)."""
        return (self.by_audio if audio else self.by_emotion).get(name)

    def score(self, emotion: str, mean: np.ndarray | float, face_frames: np.ndarray | float, *,
              audio: bool = False) -> np.ndarray:
        """The evidence-aware score (NaN where the mean is missing or the emotion has no norm); with
        `audio`, of a soundtrack signal, the evidence being seconds of sound."""
        return shrink(mean, face_frames, self.norm(emotion, audio=audio))

    def percentile(self, emotion: str, score: np.ndarray | float, *, audio: bool = False) -> np.ndarray:
        """0–100: the mid-rank of `score` among the library's scores (NaN without a norm)."""
        norm = self.norm(emotion, audio=audio)
        score = np.asarray(score, dtype=np.float64)
        if norm is None or len(norm.scores) == 0:
            return np.full(score.shape, np.nan)
        flat = score.ravel()
        # sorted needles: searchsorted runs much faster (equal needles find the same places, so any sort will do)
        order = np.argsort(flat)
        below, upto = np.empty(len(flat)), np.empty(len(flat))
        below[order] = np.searchsorted(norm.scores, flat[order], side="left")
        upto[order] = np.searchsorted(norm.scores, flat[order], side="right")
        pct = 50.0 * (below + upto) / len(norm.scores)
        return np.where(np.isnan(flat), np.nan, pct).reshape(score.shape)

    def lift(self, emotion: str, score: np.ndarray | float, *, audio: bool = False) -> np.ndarray:
        """score / μ (NaN without a norm or with μ = 0)."""
        norm = self.norm(emotion, audio=audio)
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


def _norm(name: str, m: np.ndarray, v: np.ndarray, n: np.ndarray, minimum: float) -> EmotionNorm | None:
    """One signal's norm from the ads' means `m`, variances `v` and evidence `n` (None: no ad has evidence)."""
    has = (n >= 1) & ~np.isnan(m)
    if not has.any():
        return None
    prior = prior_strength(m, v, n)
    mu = float(m[has].mean())
    enough = has & (n >= minimum)
    scores = (n[enough] * m[enough] + prior.k * mu) / (n[enough] + prior.k)
    return EmotionNorm(name, mu, prior.k, np.sort(scores), int(has.sum()), prior.within_variance,
                       prior.between_variance, prior.fallback)


def compute_norms(table: pd.DataFrame, *, source: str, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
                  min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> Norms:
    """Norms from a library table (`read_table`'s shape: one row per ad with `status`,
    `face_frames` and, per emotion e, `mean_<e>` and `var_<e>`; for the soundtrack `audio_status`,
    `audio_seconds`, `audio_mean_<s>` and `audio_var_<s>`); only ads with status ok count (for the
    soundtrack: audio status ok too)."""
    if min_face_frames < 1:
        raise ValueError(f"the minimum evidence must be at least 1 face frame, got {min_face_frames}")
    if not min_audio_seconds >= 1:
        raise ValueError(f"the minimum evidence must be at least 1 second of sound, got {min_audio_seconds}")
    ok = (table["status"] == "ok").to_numpy(dtype=bool) if len(table) else np.zeros(0, dtype=bool)
    n_all = table["face_frames"].to_numpy(dtype=np.float64, na_value=0.0) if len(table) else np.zeros(0)
    by_emotion: dict[str, EmotionNorm] = {}
    for emotion in sorted(c[len("mean_"):] for c in table.columns if c.startswith("mean_")):
        m = table[f"mean_{emotion}"].to_numpy(dtype=np.float64, na_value=np.nan)[ok]
        v = (table[f"var_{emotion}"].to_numpy(dtype=np.float64, na_value=np.nan)[ok] if f"var_{emotion}" in table
             else np.full(len(m), np.nan))
        norm = _norm(emotion, m, v, n_all[ok], min_face_frames)
        if norm is not None:
            by_emotion[emotion] = norm
    by_audio: dict[str, EmotionNorm] = {}
    heard = np.zeros(len(table), dtype=bool)
    if "audio_status" in table.columns and len(table):
        heard = ok & (table["audio_status"] == "ok").to_numpy(dtype=bool)
        seconds = table["audio_seconds"].to_numpy(dtype=np.float64, na_value=0.0)[heard]
        for signal in AUDIO_RANKABLE:
            if f"audio_mean_{signal}" not in table.columns:
                continue
            m = table[f"audio_mean_{signal}"].to_numpy(dtype=np.float64, na_value=np.nan)[heard]
            v = (table[f"audio_var_{signal}"].to_numpy(dtype=np.float64, na_value=np.nan)[heard]
                 if f"audio_var_{signal}" in table else np.full(len(m), np.nan))
            norm = _norm(signal, m, v, seconds, min_audio_seconds)
            if norm is not None:
                by_audio[signal] = norm
    return Norms(source=source, ads=int(ok.sum()), min_face_frames=min_face_frames, by_emotion=by_emotion,
                 by_audio=by_audio, min_audio_seconds=float(min_audio_seconds), audio_ads=int(heard.sum()))


#: Per-emotion columns `read_table` unpacks from `ads.figures` (prefix per packed field).
FIGURE_PREFIXES = {"mean": "mean", "variance": "var", "peak": "peak", "peak_time_s": "peak_time",
                   "share_above": "share"}


#: Columns of `ads` read as numbers by `read_table`.
NUMERIC_COLUMNS = frozenset({"face_frames", "face_seconds", "duration_s", "frames", "face_coverage", "indexed_at",
                             "fps", "width", "height", "rotation", "size_bytes", "decode_errors", "elapsed_s",
                             "audio_seconds"})
#: Text columns of `ads` whose few possible values `read_table` reads as their positions here.
CODED: dict[str, tuple[str | None, ...]] = {"status": ("ok", "failed"), "audio_status": (None, "ok", "none", "failed")}
#: The soundtrack's columns `read_table` always reads (both in the library's covering index).
AUDIO_READ_COLUMNS = ("audio_status", "audio_seconds")


def nan_column(index: pd.Index) -> pd.Series:
    """A column of NaN for columns of nothing (a soundtrack no ad has): several columns of a frame may hold
    this one Series, which pandas copies before any write to one of them (copy-on-write)."""
    return pd.Series(np.full(len(index), np.nan), index=index)


def read_table(store: Store, columns: Sequence[str] = ("key", "status", "face_frames"),
               audio_signals: Sequence[str] = AUDIO_SIGNALS) -> pd.DataFrame:
    """One row per ad, newest first, with `columns` of the `ads` table (always `status`, `face_frames`,
    `audio_status` and `audio_seconds`) and, per emotion e, `mean_<e>`, `var_<e>`, `peak_<e>`,
    `peak_time_<e>`, `share_<e>` (unpacked from `ads.figures`, the packed copy of the ad's `emotions`
    rows), and per soundtrack signal s (`AUDIO_SIGNALS`) the same five with an `audio_` prefix
    (`audio_mean_<s>`, ...; from `ads.audio_figures`, NaN for an ad without lanes): one query, no join.
    `audio_signals`: the soundtrack signals whose columns are wanted (fewer read faster; () none).

    Read for 100,000 ads at once: the query is covered by the library's index (`store.LIBRARY_INDEX`,
    when `columns` are among its columns), the rows are turned into columns with the cyclic garbage
    collector paused (the rows are plain tuples: collecting while they are made only rescans them), the
    figures are unpacked from one joined buffer, and the numbers go into the frame as one block."""
    wanted = list(dict.fromkeys([*columns, "status", "face_frames", *AUDIO_READ_COLUMNS]))
    connection = store.connection
    newest = connection.execute("SELECT labels FROM ads ORDER BY indexed_at DESC, key LIMIT 1").fetchone()
    common = newest[0] if newest else "[]"
    # the statuses come as small integers and the newest ad's labels as 0 (Python shares those objects,
    # where every text is a new string): the same values, read in a fraction of the time
    selected = [f"CASE {c} {' '.join(f'WHEN {v!r} THEN {i}' for i, v in enumerate(CODED[c]) if v is not None)} "
                f"ELSE {CODED[c].index(None) if None in CODED[c] else 'NULL'} END" if c in CODED else c
                for c in wanted]
    selected += ["CASE labels WHEN :common THEN 0 ELSE labels END", "figures"]
    if audio_signals:
        selected.append("audio_figures")
    query = f"SELECT {', '.join(selected)} FROM ads ORDER BY indexed_at DESC, key"
    collecting = gc.isenabled()
    gc.disable()
    try:
        rows = connection.execute(query, {"common": common}).fetchall()
        count = len(rows)
        data = list(zip(*rows)) if rows else [() for _ in selected]
        del rows
        if not audio_signals:
            data.append(())
        texts = {c: (np.array(CODED[c], dtype=object)[np.array(values, dtype=np.int64)] if c in CODED
                     else np.array(values, dtype=object))
                 for c, values in zip(wanted, data) if c not in NUMERIC_COLUMNS}
        labels = [common] * count if data[-3].count(0) == count else [common if v == 0 else v for v in data[-3]]
        blobs, audio_blobs = data[-2], data[-1]
        label_sets = list(dict.fromkeys(labels)) if count else []
        numbers = [c for c in wanted if c in NUMERIC_COLUMNS]
        figure_names = [f"{prefix}_{name}" for text in label_sets for name in json.loads(text)
                        for prefix in FIGURE_PREFIXES.values()]
        figure_names = list(dict.fromkeys(figure_names))
        audio_names = [f"audio_{prefix}_{name}" for name in audio_signals for prefix in FIGURE_PREFIXES.values()]
        heard = any(b is not None for b in audio_blobs)
        # every number in one (columns, ads) block: the frame holds it as it is, without copying each column
        block = np.full((len(numbers) + len(figure_names) + (len(audio_names) if heard else 0), count), np.nan)
        for i, c in enumerate(numbers):
            block[i] = np.array(data[wanted.index(c)], dtype=np.float64)  # None → NaN
        del data
        fields = [FIGURE_FIELDS.index(f) for f in FIGURE_PREFIXES]
        at = {name: len(numbers) + i for i, name in enumerate(figure_names)}
        for text in label_sets:
            names = json.loads(text)
            if len(label_sets) == 1:
                rows_of, values = None, unpack_figures(blobs, len(names))
            else:
                rows_of = np.flatnonzero(np.array(labels, dtype=object) == text)
                values = unpack_figures([blobs[i] for i in rows_of], len(names))
            for j, name in enumerate(names):
                for f, prefix in zip(fields, FIGURE_PREFIXES.values()):
                    if rows_of is None:
                        block[at[f"{prefix}_{name}"]] = values[:, j, f]
                    else:
                        block[at[f"{prefix}_{name}"], rows_of] = values[:, j, f]
        if audio_names and heard:
            audio = unpack_figures(audio_blobs, len(AUDIO_SIGNALS))
            start = len(numbers) + len(figure_names)
            for i, (name, prefix) in enumerate((n, p) for n in audio_signals for p in FIGURE_PREFIXES.values()):
                field_name = next(f for f, q in FIGURE_PREFIXES.items() if q == prefix)
                block[start + i] = audio[:, AUDIO_SIGNALS.index(name), FIGURE_FIELDS.index(field_name)]
    finally:
        if collecting:
            gc.enable()
    frame = pd.DataFrame(block.T, columns=[*numbers, *figure_names, *(audio_names if heard else ())], copy=False)
    if audio_names and not heard:  # no soundtrack read in this cache: its columns share one NaN column
        frame = pd.concat([frame, pd.DataFrame(dict.fromkeys(audio_names, nan_column(frame.index)), copy=False)], axis=1)
    for position, c in enumerate(wanted):
        if c in texts:
            frame.insert(position, c, texts[c])
    return frame


def load_norms(store: Store, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
               min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS,
               audio_signals: Sequence[str] = AUDIO_SIGNALS) -> Norms:
    """The norms of the library a store holds (computed now from one query, so always current);
    `audio_signals`: the soundtrack signals to have norms for (default all)."""
    return compute_norms(read_table(store, audio_signals=audio_signals), source=str(store.root),
                         min_face_frames=min_face_frames, min_audio_seconds=min_audio_seconds)


def load_norms_from(root: Path | str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
                    min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS,
                    audio_signals: Sequence[str] = AUDIO_SIGNALS) -> Norms:
    """The norms of another cache folder (read-only), e.g. a team's archive."""
    with Store(root, readonly=True) as store:
        return load_norms(store, min_face_frames=min_face_frames, min_audio_seconds=min_audio_seconds,
                          audio_signals=audio_signals)


__all__ = ["AUDIO_RANKABLE", "DEFAULT_MIN_AUDIO_SECONDS", "DEFAULT_MIN_FACE_FRAMES", "EmotionNorm", "K_CEILING", "K_FALLBACK",
           "K_FLOOR", "MIN_ADS_FOR_K", "Norms", "nan_column",
           "PriorStrength", "compute_norms", "load_norms", "load_norms_from", "prior_strength", "read_table", "shrink"]
