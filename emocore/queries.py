"""Read-side queries over the cache, shaped for browsing: tables and bundles the dashboard shows.

Everything here only reads (`Store(root, readonly=True)`), so it is safe while an index runs, and
answers in one or two SQL queries however many ads the cache holds (the library of 10,000 ads is
one query for the ads and one for their emotion figures, pivoted in pandas; its norms come from
the same figures).

`rank` is THE ordering of ads for an emotion, used by `cli.py ls --rank` and the dashboard alike:
ads with enough evidence by their evidence-aware score (`emocore.norms`), then the ads with too
little evidence (face frames below the minimum), then the failed ones; never interleaved.

The soundtrack appears wherever a face emotion does. A library table holds, per soundtrack signal s
(`AUDIO_SIGNALS`: the lanes, the loudness in dBFS, the cues "funny" and "exciting"), the face
emotions' columns with an `audio_` prefix (`audio_mean_<s>`, `audio_peak_<s>`, `audio_score_<s>`,
`audio_pct_<s>`, `audio_lift_<s>`, ...: a face model's labels can be "funny" too), beside
`audio_status`, `audio_seconds` (seconds of sound: the evidence) and `audio_note` (the status in
words). `rank(table, "laughter")` ranks by a signal with the same machinery, the evidence being
seconds of sound (at least `DEFAULT_MIN_AUDIO_SECONDS` to be ranked), and lists the ads too short
of sound, without audio, whose soundtrack failed or was not analysed after the ranked ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from emocore.audio.decode import AudioFailed, NoAudio
from emocore.audio.lanes import AUDIO_SIGNALS, LANE_LABELS, LANE_NAMES, MOOD_CLASSES, AudioLanes
from emocore.files import content_hash
from emocore.errors import AdNotFound, CacheError, CorruptExplanation
from emocore.norms import AUDIO_RANKABLE, DEFAULT_MIN_AUDIO_SECONDS, DEFAULT_MIN_FACE_FRAMES, FIGURE_PREFIXES, Norms, \
    compute_norms, load_norms, nan_column, read_table
from emocore.scoring import EmotionSummary, Peak
from emocore.store import FIGURE_FIELDS, AdRow, AudioResult, FrameExplanation, Store, Timeline, unpack_figures
from emocore.trust import TrustFigures

LIBRARY_COLUMNS = ("key", "name", "path", "status", "error", "duration_s", "frames", "face_coverage",
                   "face_frames", "face_seconds", "dominant_raw", "model", "model_version", "indexed_at",
                   "audio_error")

#: The least `library` needs to rank (read from the library's covering index, `store.LIBRARY_INDEX`).
RANK_COLUMNS = ("key", "status", "face_frames", "face_seconds", "indexed_at")

#: `rank`'s `standing` column.
RANKED, THIN, FAILED = "ranked", "too little evidence", "failed"
#: `rank`'s `standing` of an ad ranked by a soundtrack signal whose soundtrack gives no lanes.
NO_AUDIO, AUDIO_FAILED, NOT_ANALYSED = "no audio", "audio failed", "not analysed"
#: The order of the standings (ranked first, failed last).
STANDINGS = (RANKED, THIN, NO_AUDIO, AUDIO_FAILED, NOT_ANALYSED, FAILED)


def audio_column(prefix: str, signal: str) -> str:
    """A soundtrack signal's column in a library table: `audio_column("mean", "laughter")` is
    "audio_mean_laughter" (prefixes: mean, var, peak, peak_time, share, score, pct, lift)."""
    return f"audio_{prefix}_{signal}"


def audio_note(status: str | None, error: str | None = None, seconds: float | None = None) -> str:
    """An ad's soundtrack status in words: "12 s of sound", "no audio", "audio failed: reason", "not analysed"."""
    if status == "ok":
        return f"{0.0 if seconds is None or pd.isna(seconds) else float(seconds):g} s of sound"
    if status == "none":
        return "no audio"
    if status == "failed":
        reason = " ".join(str(error).split()) if error is not None and not pd.isna(error) else ""
        return f"audio failed: {reason}" if reason else "audio failed"
    return "not analysed"


def _audio_notes(table: pd.DataFrame) -> np.ndarray:
    """`audio_note` of every row, vectorised (one note per distinct status, reason and seconds)."""
    count = len(table)
    status = table["audio_status"].to_numpy(dtype=object) if "audio_status" in table.columns \
        else np.full(count, None, dtype=object)
    seconds = table["audio_seconds"].to_numpy(dtype=np.float64, na_value=0.0) if "audio_seconds" in table.columns \
        else np.zeros(count)
    out = np.full(count, audio_note(None), dtype=object)
    out[status == "none"] = audio_note("none")
    ok = np.flatnonzero(status == "ok")
    if ok.size:
        distinct, where = np.unique(seconds[ok], return_inverse=True)
        out[ok] = np.array([audio_note("ok", None, v) for v in distinct], dtype=object)[where.ravel()]
    failed = np.flatnonzero(status == "failed")
    if failed.size:
        errors = table["audio_error"].to_numpy(dtype=object)[failed] if "audio_error" in table.columns \
            else np.full(failed.size, None, dtype=object)
        out[failed] = [audio_note("failed", e) for e in errors]
    return out


@dataclass(frozen=True)
class Signal:
    """What a library is ranked or compared by: a face emotion or a soundtrack signal, with its columns."""

    name: str
    audio: bool = False

    @property
    def label(self) -> str:
        """How to name it in tables and charts ("applause/cheering", "funny (laughter)", "happy")."""
        return LANE_LABELS.get(self.name, self.name) if self.audio else self.name

    @property
    def ref(self) -> str:
        """The name `resolve_signal` maps back to this signal in any library ("audio:funny" for the cue)."""
        return f"audio:{self.name}" if self.audio else self.name

    def column(self, prefix: str) -> str:
        return audio_column(prefix, self.name) if self.audio else f"{prefix}_{self.name}"

    @property
    def mean(self) -> str:
        return self.column("mean")

    @property
    def score(self) -> str:
        return self.column("score")

    @property
    def pct(self) -> str:
        return self.column("pct")

    @property
    def lift(self) -> str:
        return self.column("lift")

    @property
    def peak(self) -> str:
        return self.column("peak")

    @property
    def peak_time(self) -> str:
        return self.column("peak_time")

    @property
    def evidence(self) -> str:
        """The evidence column: face frames, or seconds of sound."""
        return "audio_seconds" if self.audio else "face_frames"


def store_signal(store: Store, name: str) -> Signal:
    """`resolve_signal` against the face emotions of every ad a store holds (one small query)."""
    import json

    labels = {label for (text,) in store.connection.execute("SELECT DISTINCT labels FROM ads") for label in json.loads(text)}
    return resolve_signal(pd.DataFrame(columns=[f"mean_{label}" for label in sorted(labels)]), name)


def resolve_signal(table: pd.DataFrame, name: str) -> Signal:
    """The signal `name` means in this library: a face emotion of the table first, else a soundtrack
    signal (`AUDIO_RANKABLE`); "audio:<s>" always means the soundtrack signal s (when a face model's
    labels hold "funny" too). ValueError naming both kinds for an unknown name or the loudness."""
    if name.startswith("audio:"):
        signal = Signal(name[len("audio:"):], audio=True)
    elif f"score_{name}" in table.columns or f"mean_{name}" in table.columns:
        return Signal(name)
    else:
        signal = Signal(name, audio=True)
    if signal.name in AUDIO_RANKABLE:
        return signal
    known = ", ".join(emotions_in(table)) or "none: the cache holds no indexed ad"
    why = " (loudness is a level in dBFS: it is shown, not ranked)" if signal.name == "loudness" else ""
    raise ValueError(f"unknown emotion {name!r}{why}; emotions in this library: {known}; "
                     f"soundtrack signals: {', '.join(AUDIO_RANKABLE)}")


def library(store: Store, norms: Norms | None = None, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
            columns: Sequence[str] = LIBRARY_COLUMNS,
            min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS,
            audio_signals: Sequence[str] = AUDIO_SIGNALS) -> pd.DataFrame:
    """One row per ad, newest first: identity, status, evidence (`face_frames`, `face_seconds`),
    `dominant` (highest lift, None below `min_face_frames`), `dominant_raw` (highest raw mean) and,
    per emotion e: `mean_<e>` (raw mean), `var_<e>`, `peak_<e>`, `peak_time_<e>`, `share_<e>`, and
    against the norms (default: this store's own library) `score_<e>` (evidence-aware), `pct_<e>`
    (0–100) and `lift_<e>` (score / the norm's mean). One query. `columns`: the ads' columns to read
    (RANK_COLUMNS, what ranking needs, reads faster; `details` adds the rest for the rows shown).

    The soundtrack: `audio_status`, `audio_seconds` (seconds of sound), `audio_note` (in words; the
    failure's reason when `audio_error` is among `columns`) and per signal s of `AUDIO_SIGNALS`
    `audio_mean_<s>`, `audio_var_<s>`, `audio_peak_<s>`, `audio_peak_time_<s>`, `audio_share_<s>`
    (the loudness in dBFS; NaN without lanes) and, but for the loudness, `audio_score_<s>`,
    `audio_pct_<s>` (ads with at least `min_audio_seconds` of sound) and `audio_lift_<s>`;
    `audio_signals`: the signals whose columns are wanted (fewer read faster: `ls` reads only the one
    it ranks by; () none)."""
    table = read_table(store, columns, audio_signals)
    if norms is None:
        norms = compute_norms(table, source=str(store.root), min_face_frames=min_face_frames,
                              min_audio_seconds=min_audio_seconds)
    return with_norms(table, norms, min_face_frames=min_face_frames, min_audio_seconds=min_audio_seconds)


def _audio_standings(table: pd.DataFrame, norms: Norms, min_audio_seconds: float) -> dict[str, np.ndarray | pd.Series]:
    """`audio_score_<s>`, `audio_pct_<s>`, `audio_lift_<s>` per rankable signal and `audio_note`."""
    added: dict[str, np.ndarray | pd.Series] = {}
    if "audio_status" not in table.columns:
        return added
    seconds = table["audio_seconds"].to_numpy(dtype=np.float64, na_value=0.0) if "audio_seconds" in table \
        else np.zeros(len(table))
    heard = ((table["status"] == "ok").to_numpy(dtype=bool) & (table["audio_status"] == "ok").to_numpy(dtype=bool))
    enough = heard & (seconds >= min_audio_seconds)
    n = np.where(heard, seconds, 0.0)
    nothing = None
    for signal in AUDIO_RANKABLE:
        column = audio_column("mean", signal)
        if column not in table.columns:
            continue
        if norms.norm(signal, audio=True) is None:  # no norm (no soundtrack in the norm library): NaN throughout
            nothing = nan_column(table.index) if nothing is None else nothing
            for prefix in ("score", "pct", "lift"):
                added[audio_column(prefix, signal)] = nothing
            continue
        score = norms.score(signal, table[column].to_numpy(dtype=np.float64, na_value=np.nan), n, audio=True)
        added[audio_column("score", signal)] = score
        added[audio_column("pct", signal)] = _percentiles(norms, signal, score, enough, audio=True)
        added[audio_column("lift", signal)] = norms.lift(signal, score, audio=True)
    added["audio_note"] = _audio_notes(table)
    return added


def _percentiles(norms: Norms, name: str, score: np.ndarray, enough: np.ndarray, *, audio: bool = False) -> np.ndarray:
    """`norms.percentile` of the rows with `enough` evidence (a standing in the library), NaN for the others
    (computed for those rows only)."""
    out = np.full(len(score), np.nan)
    if enough.any():
        out[enough] = norms.percentile(name, score[enough], audio=audio)
    return out


def with_norms(table: pd.DataFrame, norms: Norms, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
               min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> pd.DataFrame:
    """A library table with `score_<e>`, `pct_<e>`, `lift_<e>` and `dominant` (re)computed against
    `norms`, and the soundtrack's `audio_score_<s>`, `audio_pct_<s>`, `audio_lift_<s>` and `audio_note`
    when the table has `audio_status`, newest first."""
    n = table["face_frames"].to_numpy(dtype=np.float64, na_value=0.0)
    emotions = emotions_in(table)
    added: dict[str, np.ndarray | pd.Series] = {}
    lifts = np.full((len(table), len(emotions)), np.nan)
    enough = (n >= min_face_frames) & (table["status"] == "ok").to_numpy(dtype=bool)
    for j, e in enumerate(emotions):
        score = norms.score(e, table[f"mean_{e}"].to_numpy(dtype=np.float64, na_value=np.nan), n)
        added[f"score_{e}"] = score
        # a percentile is a standing in the library: an ad with too little evidence has none
        added[f"pct_{e}"] = _percentiles(norms, e, score, enough)
        added[f"lift_{e}"] = lifts[:, j] = norms.lift(e, score)
    dominant = np.full(len(table), None, dtype=object)
    if emotions:
        usable = enough & ~np.isnan(lifts).all(axis=1)
        best = np.argmax(np.where(np.isnan(lifts), -np.inf, lifts), axis=1)
        dominant[usable] = np.array(emotions, dtype=object)[best[usable]]
    added["dominant"] = dominant
    added.update(_audio_standings(table, norms, min_audio_seconds))
    kept = table.drop(columns=[c for c in added if c in table.columns])
    # copy=False: the new columns are held as they are (not copied into one block: 100 MB at 100,000 ads)
    out = pd.concat([kept, pd.DataFrame(added, index=table.index, copy=False)], axis=1)
    if "indexed_at" in out.columns:
        newest = -out["indexed_at"].to_numpy(dtype=np.float64, na_value=-np.inf)
        if len(newest) > 1 and (np.diff(newest) < 0).any():  # read_table's rows already come newest first
            out = out.iloc[np.argsort(newest, kind="stable")]
    return out.reset_index(drop=True)


def details(store: Store, table: pd.DataFrame, columns: Sequence[str] = LIBRARY_COLUMNS) -> pd.DataFrame:
    """`table` (rows keyed by `key`, e.g. the first rows of a ranking) with the ads' other `columns`
    added, in the same order: one query for the keys given."""
    missing = [c for c in columns if c not in table.columns]
    if not missing:
        return table
    if table.empty:
        return table.assign(**{c: pd.Series(dtype=object) for c in missing})
    keys = table["key"].tolist()
    select = f"SELECT key, {', '.join(missing)} FROM ads"
    if len(keys) > 5000:  # most of the library: one scan beats thousands of lookups
        rows = store.connection.execute(select).fetchall()
    else:
        rows = []
        for start in range(0, len(keys), 900):  # SQLite's limit on bound parameters
            chunk = keys[start:start + 900]
            rows += store.connection.execute(f"{select} WHERE key IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    found = pd.DataFrame(rows, columns=["key", *missing]).drop_duplicates("key").set_index("key")
    extra = found.reindex(keys)
    extra.index = table.index
    out = pd.concat([table, extra], axis=1)
    if "audio_error" in missing and "audio_status" in out.columns:  # the failures' reasons, now they are read
        out["audio_note"] = _audio_notes(out)
    return out


@dataclass(frozen=True)
class RankOrder:
    """`rank`'s order as positions into the table, without copying it (the library pages through it)."""

    order: np.ndarray
    """Positions (`iloc`) of the table's rows, in rank order."""
    groups: np.ndarray
    """Each ordered row's standing as a position in `labels` (0: ranked)."""
    labels: np.ndarray
    """The standings (`STANDINGS`) the groups stand for."""
    ranked: int
    """How many rows are ranked: the first `ranked` of the order, ranks 1 to `ranked`."""
    signal: Signal

    @property
    def standing(self) -> np.ndarray:
        """Each ordered row's standing (`STANDINGS`)."""
        return self.labels[self.groups]

    @property
    def rank(self) -> np.ndarray:
        """Each ordered row's rank (1, 2, …; NaN for the unranked)."""
        places = np.arange(1, len(self.order) + 1, dtype=np.float64)
        return np.where(places <= self.ranked, places, np.nan)


def rank(table: pd.DataFrame, emotion: str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
         descending: bool = True, min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> pd.DataFrame:
    """THE ordering of a library table for one emotion: ads with at least `min_face_frames` face
    frames by `score_<emotion>` (highest first unless `descending` is False; ties: more face
    frames first, then the table's order, newest first), then the ads with too little evidence
    (best score first, none last), then the failed ones. Adds `standing` ("ranked", "too little
    evidence", "failed") and `rank` (1, 2, … for ranked ads; missing for the others).

    `emotion` may be a soundtrack signal (`resolve_signal`: "laughter", "funny", ...): the same
    order by `audio_score_<signal>`, the evidence being seconds of sound (`min_audio_seconds` to be
    ranked; ties: more seconds first), then the ads with too little sound ("too little evidence"),
    then those with "no audio", then "audio failed", then "not analysed" (each in the table's order),
    then the failed ones."""
    found = rank_order(table, emotion, min_face_frames=min_face_frames, descending=descending,
                       min_audio_seconds=min_audio_seconds)
    out = table.iloc[found.order].reset_index(drop=True)
    extra = pd.DataFrame({
        "standing": found.standing,
        "rank": pd.array(list(range(1, found.ranked + 1)) + [None] * (len(out) - found.ranked), dtype="Int64"),
    })
    return pd.concat([out.drop(columns=[c for c in ("standing", "rank") if c in out.columns]), extra], axis=1)


def rank_order(table: pd.DataFrame, emotion: str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
               descending: bool = True, min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> RankOrder:
    """`rank`'s order (the same rules, the same errors) as positions into `table`: reads the few
    columns ranking needs and copies no row."""
    signal = resolve_signal(table, emotion)
    if min_face_frames < 1:
        raise ValueError(f"the minimum evidence must be at least 1 face frame, got {min_face_frames}")
    if not min_audio_seconds >= 1:
        raise ValueError(f"the minimum evidence must be at least 1 second of sound, got {min_audio_seconds}")
    if signal.score not in table.columns:
        raise ValueError(f"this library table has no {signal.score} column (read it with queries.library)")
    score = table[signal.score].to_numpy(dtype=np.float64, na_value=np.nan)
    n = table[signal.evidence].to_numpy(dtype=np.float64, na_value=0.0)
    ok = (table["status"] == "ok").to_numpy(dtype=bool)
    labels = np.array([RANKED, THIN, FAILED], dtype=object)
    if signal.audio:
        status = table["audio_status"].to_numpy(dtype=object)
        heard = ok & (status == "ok")
        ranked = heard & ~np.isnan(score) & (n >= min_audio_seconds)
        unheard = np.select([status == "none", status == "failed"], [3, 4], 5)
        group = np.where(ranked, 0, np.where(heard, 1, np.where(ok, unheard, 6)))
        labels = np.array([RANKED, THIN, None, NO_AUDIO, AUDIO_FAILED, NOT_ANALYSED, FAILED], dtype=object)
    else:
        ranked = ok & ~np.isnan(score) & (n >= min_face_frames)
        group = np.where(ranked, 0, np.where(ok, 1, 2))
    best_first = np.where(np.isnan(score), np.inf, -score)
    signed = np.where(group == 0, best_first if descending else np.where(np.isnan(score), np.inf, score), best_first)
    order = np.lexsort((-n, signed, group))  # stable: equal keys keep the table's order
    groups = group[order]
    return RankOrder(order, groups, labels, int((groups == 0).sum()), signal)


@dataclass(frozen=True)
class EmotionStanding:
    """One emotion of one ad against a library's norms."""

    emotion: str
    mean: float | None
    """The raw mean over the ad's face frames."""
    score: float | None
    """Evidence-aware score: (n·mean + k·μ) / (n + k)."""
    percentile: float | None
    lift: float | None


@dataclass(frozen=True)
class AdStanding:
    """An ad against a library's norms: its evidence, dominant emotions and per-emotion standing."""

    key: str
    face_frames: int
    face_seconds: float
    enough_evidence: bool
    dominant: str | None
    """Highest lift (None with too little evidence)."""
    dominant_raw: str | None
    """Highest raw mean (no norms applied)."""
    norms_source: str
    emotions: tuple[EmotionStanding, ...]

    def by_emotion(self) -> dict[str, EmotionStanding]:
        return {e.emotion: e for e in self.emotions}


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def ad_norms(source: Store | pd.DataFrame, key: str, norms: Norms | None = None, *,
             min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> AdStanding:
    """One ad's percentile and lift per emotion. `source` is a store (the ad found by key, key
    prefix, name or path; norms default to the store's own) or a `library` table (by key or name;
    its score/pct/lift columns are used as they are unless `norms` is given)."""
    if isinstance(source, Store):
        ad = source.ad(key)
        norms = norms or load_norms(source, min_face_frames=min_face_frames)
        row = {"key": ad.key, "status": ad.status, "face_frames": ad.face_frames, "face_seconds": ad.face_seconds,
               "dominant_raw": ad.dominant_raw, "indexed_at": ad.indexed_at}
        row.update({f"mean_{e.emotion}": e.mean for e in source.emotions(ad.key)})
        table = with_norms(pd.DataFrame([row]), norms, min_face_frames=min_face_frames)
        source_name = norms.source
    else:
        match = source[(source["key"] == key) | (source["name"] == key)]
        if match.empty:
            raise AdNotFound(f"no ad in the library matches {key!r}")
        table = match.iloc[:1]
        if norms is not None:
            table = with_norms(table, norms, min_face_frames=min_face_frames)
        source_name = norms.source if norms is not None else "this library"
    r = table.iloc[0]
    n = int(r["face_frames"] or 0)
    standing = tuple(
        EmotionStanding(e, _number(r.get(f"mean_{e}")), _number(r.get(f"score_{e}")), _number(r.get(f"pct_{e}")),
                        _number(r.get(f"lift_{e}")))
        for e in emotions_in(table)
    )
    dominant = r.get("dominant")
    return AdStanding(key=str(r["key"]), face_frames=n, face_seconds=float(r["face_seconds"] or 0.0),
                      enough_evidence=n >= min_face_frames and r["status"] == "ok",
                      dominant=None if dominant is None or pd.isna(dominant) else str(dominant),
                      dominant_raw=None if pd.isna(r["dominant_raw"]) else str(r["dominant_raw"]),
                      norms_source=source_name, emotions=standing)


@dataclass(frozen=True)
class AudioSignalStanding:
    """One soundtrack signal of one ad: its figures over the seconds of sound, and its standing
    against a library's norms (score, percentile, lift: None for the loudness, which is in dBFS)."""

    signal: str
    label: str
    mean: float | None
    """The mean over the seconds of sound (the loudness: mean dBFS)."""
    score: float | None
    """Evidence-aware score: (n·mean + k·μ) / (n + k), n = seconds of sound."""
    percentile: float | None
    lift: float | None
    peak: float | None
    peak_time_s: float | None
    share_above: float | None
    """Share of the ad's seconds at or above 0.5 (`emocore.audio.lanes.SHARE_THRESHOLD`)."""


@dataclass(frozen=True)
class AudioStanding:
    """An ad's soundtrack against a library's norms: status, evidence (seconds of sound), per-signal figures."""

    key: str
    status: str | None
    """'ok', 'none' (no audio track), 'failed' or None (not analysed)."""
    note: str
    """The status in words ("12 s of sound", "no audio", "audio failed: reason", "not analysed")."""
    seconds: float
    """Seconds of sound: the evidence behind every figure."""
    enough_evidence: bool
    min_audio_seconds: float
    norms_source: str
    signals: tuple[AudioSignalStanding, ...]
    """In the order of `AUDIO_SIGNALS` (none without lanes)."""

    def by_signal(self) -> dict[str, AudioSignalStanding]:
        return {s.signal: s for s in self.signals}


def _audio_record(store: Store, key: str) -> dict[str, object]:
    """One ad's soundtrack columns as a library table's row holds them (one query)."""
    row = store.connection.execute(
        "SELECT status, audio_status, audio_error, audio_seconds, audio_figures FROM ads WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        raise AdNotFound(f"no ad in {store.root} matches {key!r}")
    figures = unpack_figures([row[4]], len(AUDIO_SIGNALS))[0]
    record: dict[str, object] = {"key": key, "status": row[0], "audio_status": row[1], "audio_error": row[2],
                                 "audio_seconds": float(row[3] or 0.0)}
    for j, signal in enumerate(AUDIO_SIGNALS):
        for field_name, prefix in FIGURE_PREFIXES.items():
            record[audio_column(prefix, signal)] = figures[j, FIGURE_FIELDS.index(field_name)]
    return record


def audio_standing(source: Store | pd.DataFrame, key: str, norms: Norms | None = None, *,
                   min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> AudioStanding:
    """One ad's soundtrack figures and standing per signal. `source` is a store (the ad found by key,
    key prefix, name or path; norms default to the store's own) or a `library` table (by key or name;
    its audio_score/pct/lift columns are used as they are unless `norms` is given)."""
    if isinstance(source, Store):
        ad = source.ad(key)
        norms = norms or load_norms(source, min_audio_seconds=min_audio_seconds)
        row = pd.DataFrame([_audio_record(source, ad.key)])
        table = pd.concat([row, pd.DataFrame(_audio_standings(row, norms, min_audio_seconds))], axis=1)
        source_name = norms.source
    else:
        match = source[(source["key"] == key) | (source["name"] == key)] if "name" in source else \
            source[source["key"] == key]
        if match.empty:
            raise AdNotFound(f"no ad in the library matches {key!r}")
        table = match.iloc[:1].reset_index(drop=True)
        if norms is not None:
            added = _audio_standings(table, norms, min_audio_seconds)
            table = pd.concat([table.drop(columns=[c for c in added if c in table.columns]),
                               pd.DataFrame(added, index=table.index)], axis=1)
        source_name = norms.source if norms is not None else "this library"
    r = table.iloc[0]
    status = None if r.get("audio_status") is None or pd.isna(r.get("audio_status")) else str(r["audio_status"])
    seconds = float(_number(r.get("audio_seconds")) or 0.0)
    signals: tuple[AudioSignalStanding, ...] = ()
    if status == "ok":
        signals = tuple(
            AudioSignalStanding(s, LANE_LABELS.get(s, s), _number(r.get(audio_column("mean", s))),
                                _number(r.get(audio_column("score", s))), _number(r.get(audio_column("pct", s))),
                                _number(r.get(audio_column("lift", s))), _number(r.get(audio_column("peak", s))),
                                _number(r.get(audio_column("peak_time", s))), _number(r.get(audio_column("share", s))))
            for s in AUDIO_SIGNALS)
    note = r.get("audio_note")
    return AudioStanding(key=str(r["key"]), status=status,
                         note=str(note) if isinstance(note, str) else audio_note(status, r.get("audio_error"), seconds),
                         seconds=seconds,
                         enough_evidence=status == "ok" and r["status"] == "ok" and seconds >= min_audio_seconds,
                         min_audio_seconds=float(min_audio_seconds), norms_source=source_name, signals=signals)


def emotions_in(table: pd.DataFrame) -> list[str]:
    """The emotions a library table has figures for, in a stable order."""
    return sorted(c[len("mean_"):] for c in table.columns if c.startswith("mean_"))


@dataclass(frozen=True)
class AdBundle:
    """Everything the ad page shows about one ad."""

    ad: AdRow
    timeline: Timeline
    emotions: tuple[EmotionSummary, ...]
    explained: tuple[tuple[int, float], ...]
    """(frame index, time) of the frames that have explanations, by time."""
    audio: AudioResult = None
    """The soundtrack (`Store.audio`): per-second `AudioLanes`, `NoAudio`, `AudioFailed` (also when the
    stored lanes do not decode: its reason says so) or None (not analysed)."""

    @property
    def lanes(self) -> AudioLanes | None:
        """The soundtrack's per-second lanes, or None without them."""
        return self.audio if isinstance(self.audio, AudioLanes) else None

    @property
    def audio_note(self) -> str:
        """The soundtrack's status in words ("12 s of sound", "no audio", "audio failed: …", "not analysed")."""
        if isinstance(self.audio, AudioLanes):
            return audio_note("ok", None, self.audio.sound_seconds)
        if isinstance(self.audio, NoAudio):
            return audio_note("none")
        if isinstance(self.audio, AudioFailed):
            return audio_note("failed", self.audio.reason)
        return audio_note(None)


def ad_bundle(store: Store, key: str) -> AdBundle:
    ad = store.ad(key)
    seen: dict[int, float] = {}
    for frame in store.explained_frames(ad.key):
        seen.setdefault(frame.frame_idx, frame.time_s)
    try:
        audio = store.audio(ad.key)
    except CacheError as exc:  # unreadable lanes: the page shows why instead of failing
        audio = AudioFailed(str(exc))
    return AdBundle(ad, store.timeline(ad.key), store.emotions(ad.key), tuple(sorted(seen.items(), key=lambda x: x[1])),
                    audio)


#: `audio_table`'s columns: the second, every lane, the loudness, the cues, the loudest mood.
AUDIO_TABLE_COLUMNS = ("time_s", *LANE_NAMES, "loudness_dbfs", *(s for s in AUDIO_SIGNALS if s not in LANE_NAMES
                                                                  and s != "loudness"), "top_mood")


def audio_table(bundle: AdBundle | AdReport) -> pd.DataFrame:
    """The soundtrack second by second (`AUDIO_TABLE_COLUMNS`): `time_s` (second [t, t+1) of the file),
    each lane (probability 0–1), `loudness_dbfs` (RMS dBFS), the cues `funny` and `exciting`, and
    `top_mood` (the mood lane highest that second, None where no music mood reads above 0). NaN:
    no sound there. Empty (same columns) for an ad without lanes. `bundle`: an `AdBundle` or `AdReport`."""
    lanes = bundle.audio if isinstance(bundle.audio, AudioLanes) else None
    if lanes is None:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "top_mood" else np.float64)
                             for c in AUDIO_TABLE_COLUMNS})
    table = pd.DataFrame({"time_s": lanes.times})
    for name in AUDIO_SIGNALS:
        table["loudness_dbfs" if name == "loudness" else name] = np.asarray(lanes.column(name), np.float64)
    moods = table[list(MOOD_CLASSES)].to_numpy()
    has = ~np.isnan(moods).all(axis=1) & (np.nan_to_num(moods, nan=0.0).max(axis=1) > 0)
    best = np.argmax(np.nan_to_num(moods, nan=-np.inf), axis=1)
    table["top_mood"] = pd.Series(np.where(has, np.array(list(MOOD_CLASSES), dtype=object)[best], None), dtype=object)
    return table[list(AUDIO_TABLE_COLUMNS)]


def timeline_table(bundle: AdBundle) -> pd.DataFrame:
    """The data behind an ad's timeline chart, for CSV export: raw and smoothed per emotion, faces, shots,
    and the soundtrack on the same time axis: `audio_<s>` per signal of `AUDIO_SIGNALS`
    (`audio_loudness_dbfs` for the loudness), each sampled frame holding the value of the second it falls
    in (NaN: no sound there, or no lanes: see `audio_table` for the soundtrack second by second)."""
    tl, labels = bundle.timeline, bundle.ad.labels
    table = pd.DataFrame({"time_s": tl.times, "faces": tl.faces,
                          "face_px": tl.face_px if len(tl.face_px) == len(tl.times) else np.nan})
    for j, label in enumerate(labels):
        table[f"{label}_raw"] = tl.raw[:, j]
        table[f"{label}_smoothed"] = tl.smoothed[:, j]
    shot = np.searchsorted(np.asarray(tl.shots), tl.times, side="right")
    table["shot"] = shot
    lanes = bundle.lanes
    second = np.floor(np.asarray(tl.times, np.float64)).astype(np.int64)
    inside = (second >= 0) & (second < (lanes.seconds if lanes is not None else 0))
    for name in AUDIO_SIGNALS:
        values = np.full(len(tl.times), np.nan)
        if lanes is not None:
            values[inside] = np.asarray(lanes.column(name), np.float64)[second[inside]]
        table["audio_loudness_dbfs" if name == "loudness" else f"audio_{name}"] = values
    return table


def explanation(store: Store, key: str, frame_idx: int) -> FrameExplanation:
    return store.explanation(key, frame_idx)


def moments(bundle: AdBundle, top: int | None = None) -> dict[str, tuple[Peak, ...]]:
    """Per emotion, its real peaks, highest first (`top` of them; None: all): `find_peaks` on the
    smoothed signal at face frames with the prominence the ad was indexed with, the same function
    that picks the key frames. Without a floor, so even a weak emotion shows where it is strongest."""
    from emocore.explain.keyframes import emotion_peaks  # the explain package imports video

    tl, labels = bundle.timeline, bundle.ad.labels
    prominence = bundle.ad.index_params.scoring.prominence
    return {label: emotion_peaks(tl.times, tl.raw, tl.smoothed, j, prominence)[:top] for j, label in enumerate(labels)}


def peaks(bundle: AdBundle, top: int = 3) -> dict[str, list[tuple[float, float]]]:
    """Per emotion, its `top` highest peaks as (time, smoothed value), in time order (`moments`)."""
    return {label: sorted((p.time_s, p.value) for p in found) for label, found in moments(bundle, top).items()}


def find_ad(store: Store, ref: str) -> AdRow:
    """The ad `ref` names: a key, key prefix, file name or indexed path, or a video file whose bytes
    the cache holds (read only: a file that was never indexed is AdNotFound)."""
    try:
        return store.ad(ref)
    except AdNotFound:
        path = Path(ref)
        if not path.is_file():
            raise
        found = store.ads_with_content(content_hash(path))
        ok = [ad for ad in found if ad.status == "ok"] or found
        if not ok:
            raise AdNotFound(f"{path.name} is not in the cache at {store.root} (index it first)") from None
        return ok[0]


#: How many ads a search returns by default (a picker offers no more).
SEARCH_LIMIT = 50
#: The fewest characters `search_ads` matches as a key prefix.
KEY_PREFIX = 4
#: `AdMatch.matched`: what of the ad matched the text, best first (the order of a search's results).
MATCHED = ("key", "name", "name prefix", "key prefix", "name contains", "path contains", "newest")


@dataclass(frozen=True)
class AdMatch:
    """One ad found by `search_ads` or `ads_by_key`."""

    key: str
    name: str
    path: str
    status: str
    """"ok" or "failed"."""
    matched: str
    """What matched (`MATCHED`): the whole key or name, a key or name prefix, the name or the path
    containing the text; "newest" for an empty search."""

    @property
    def label(self) -> str:
        """How a picker names it: the name, with the status when it failed."""
        return self.name if self.status == "ok" else f"{self.name} ({self.status})"


@dataclass(frozen=True)
class AdSearch:
    """A page of `search_ads`'s matches, best first."""

    text: str
    matches: tuple[AdMatch, ...]
    offset: int
    more: bool
    """Whether matches follow this page (the search stops counting at the page's end)."""


def _like(text: str) -> str:
    """`text` with LIKE's wildcards (% and _) and the escape character itself escaped (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_ads(store: Store, text: str, limit: int = SEARCH_LIMIT, offset: int = 0, *,
               status: str | None = None) -> AdSearch:
    """The ads whose name or path contains `text` (any case) or whose key starts with it, best first:
    the exact key or name, then name prefixes, key prefixes, names containing it, paths containing it
    (ties by name, then key); a key prefix counts from `KEY_PREFIX` characters (a shorter text would match
    keys by chance); an empty `text` gives the newest ads. At most `limit` matches from the
    `offset`-th; `status` ("ok" or "failed") keeps those. One query, a scan of the narrow `ads_search`
    index (about 0.1 s at 100,000 ads), only the page's rows leave SQLite. Raises ValueError for a
    limit below 1 or an offset below 0."""
    if limit < 1 or offset < 0:
        raise ValueError(f"a search needs a limit of at least 1 and an offset of at least 0, got {limit}, {offset}")
    if status not in (None, "ok", "failed"):
        raise ValueError(f"unknown status {status!r}: ok or failed")
    text = text.strip()
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    if not text:
        sql = (f"SELECT key, name, path, status, 'newest' FROM ads {where} ORDER BY indexed_at DESC, key "
               "LIMIT ? OFFSET ?")
        rows = store.connection.execute(sql, [*args, limit + 1, offset]).fetchall()
    else:
        exact, prefix, inside = text, _like(text) + "%", "%" + _like(text) + "%"
        matched = ("CASE WHEN key = :exact THEN 0 WHEN name = :exact COLLATE NOCASE THEN 1 "
                   "WHEN name LIKE :prefix ESCAPE '\\' THEN 2 WHEN key LIKE :keyprefix ESCAPE '\\' THEN 3 "
                   "WHEN name LIKE :inside ESCAPE '\\' THEN 4 ELSE 5 END")
        keep = ("(name LIKE :inside ESCAPE '\\' OR path LIKE :inside ESCAPE '\\' OR key LIKE :keyprefix ESCAPE '\\')"
                + (" AND status = :status" if status else ""))
        sql = (f"SELECT key, name, path, status, {matched} AS m FROM ads WHERE {keep} "
               "ORDER BY m, name COLLATE NOCASE, key LIMIT :limit OFFSET :offset")
        rows = store.connection.execute(sql, {"exact": exact, "prefix": prefix, "inside": inside, "status": status,
                                              "keyprefix": prefix if len(text) >= KEY_PREFIX else None,
                                              "limit": limit + 1, "offset": offset}).fetchall()
    found = tuple(AdMatch(key, name, path, st, MATCHED[m] if isinstance(m, int) else m)
                  for key, name, path, st, m in rows[:limit])
    return AdSearch(text, found, offset, len(rows) > limit)


def matching(table: pd.DataFrame, text: str) -> np.ndarray:
    """Which rows of a table (with `key`, `name` and, when present, `path`) `search_ads` would find for
    `text`: the name or path containing it (any case), or the key starting with it (`KEY_PREFIX`
    characters at least). All rows for an empty text."""
    text = text.strip()
    if not text:
        return np.ones(len(table), dtype=bool)
    def contains(column: str) -> np.ndarray:
        return table[column].astype(str).str.contains(text, case=False, regex=False, na=False).to_numpy(dtype=bool)

    found = contains("name")
    if "path" in table.columns:
        found = found | contains("path")
    if len(text) >= KEY_PREFIX:
        found = found | table["key"].astype(str).str.lower().str.startswith(text.lower()).to_numpy(dtype=bool)
    return found


def ads_by_key(store: Store, keys: Sequence[str]) -> tuple[AdMatch, ...]:
    """The ads of these keys (exact keys), in the order given; keys not in the cache are left out."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, AdMatch] = {}
    for start in range(0, len(wanted), 900):  # SQLite's limit on bound parameters
        chunk = wanted[start:start + 900]
        for key, name, path, status in store.connection.execute(
                f"SELECT key, name, path, status FROM ads WHERE key IN ({', '.join('?' * len(chunk))})", chunk):
            found[key] = AdMatch(key, name, path, status, "key")
    return tuple(found[k] for k in wanted if k in found)


@dataclass(frozen=True)
class ExplanationFigures:
    """One stored explanation's trust figures, as stored (or why they cannot be read)."""

    frame_idx: int
    time_s: float
    emotion: str | None
    method: str | None
    figures: dict[str, object]
    """As stored (`emocore.trust.TrustFigures.to_dict()`); `trust` reads them."""
    error: str | None = None

    @property
    def trust(self) -> TrustFigures | None:
        """The figures as their typed record (None when they could not be read: see `error`)."""
        return TrustFigures.from_dict(self.figures) if self.figures else None


@dataclass(frozen=True)
class KeyFrame:
    """A frame the key-frame rule picks: where, and for which emotions."""

    frame_idx: int
    time_s: float
    emotions: tuple[str, ...]


#: The soundtrack signals whose peaks are an ad's audio key moments (what `index` explains).
AUDIO_MOMENT_SIGNALS = ("laughter", "applause", "funny", "exciting")
#: The least value a second needs to be an audio key moment (`AudioLanes.peaks`' default).
AUDIO_MOMENT_FLOOR = 0.5


@dataclass(frozen=True)
class AudioMoment:
    """A soundtrack peak: second [time_s, time_s + 1) of the file, where `signal` reads `value`."""

    signal: str
    time_s: float
    value: float
    explained: bool = False
    """Whether the cache holds an explanation of that second (`Store.audio_explained_seconds`)."""


def explained_seconds_of(store: Store, key: str) -> tuple[int, ...]:
    """The seconds of the ad's soundtrack that have a stored explanation (any explain hash), in order."""
    return tuple(sorted({s.second for s in store.audio_explained_seconds(key)}))


def audio_moments(bundle: AdBundle, top: int = 3, explained: Sequence[int] = ()) -> tuple[AudioMoment, ...]:
    """The ad's audio key moments: per signal of `AUDIO_MOMENT_SIGNALS` its `top` highest seconds at
    or above `AUDIO_MOMENT_FLOOR`, at least 2 s apart (`AudioLanes.peaks`, the rule `index` explains
    them by), by signal then best first; `explained`: the seconds with a stored explanation. None
    without lanes."""
    lanes = bundle.lanes
    if lanes is None:
        return ()
    done = set(int(s) for s in explained)
    out = []
    for signal in AUDIO_MOMENT_SIGNALS:
        column = lanes.column(signal)
        out += [AudioMoment(signal, float(lanes.times[t]), float(column[t]), int(lanes.times[t]) in done)
                for t in lanes.peaks(signal, k=top, min_value=AUDIO_MOMENT_FLOOR)]
    return tuple(out)


@dataclass(frozen=True)
class AdReport:
    """Everything `cli.py show` prints about one ad."""

    ad: AdRow
    standing: AdStanding
    norms: Norms
    figures: tuple[EmotionSummary, ...]
    """The ad's stored per-emotion figures (mean, peak, share above the threshold, ...)."""
    timeline: Timeline
    prominence: float
    """The peaks' prominence threshold the ad was indexed with."""
    moments: dict[str, tuple[Peak, ...]]
    key_frames: tuple[KeyFrame, ...]
    """The frames the index's key-frame rule picks (default settings, the ad's prominence)."""
    explanations: tuple[ExplanationFigures, ...]
    audio: AudioResult = None
    """The soundtrack: lanes, `NoAudio`, `AudioFailed` or None (not analysed)."""
    audio_standing: AudioStanding | None = None
    audio_moments: tuple[AudioMoment, ...] = ()
    audio_explanations: tuple[ExplanationFigures, ...] = ()
    """Every stored explanation of a soundtrack second (`frame_idx` and `time_s`: the second; `emotion`:
    the signal), with its trust figures."""

    def audio_dict(self) -> dict[str, object]:
        """The soundtrack part of `to_dict`: status, evidence, standing per signal, lanes, key moments."""
        standing = self.audio_standing
        lanes = self.audio if isinstance(self.audio, AudioLanes) else None
        return {
            "status": None if standing is None else standing.status,
            "note": None if standing is None else standing.note,
            "seconds": None if standing is None else standing.seconds,
            "enough": None if standing is None else standing.enough_evidence,
            "min_audio_seconds": None if standing is None else standing.min_audio_seconds,
            "norms": {s: {"mean": n.mean, "k": n.k, "ads": n.ads, "fallback": n.fallback}
                      for s, n in self.norms.by_audio.items()},
            "standing": [] if standing is None else [vars(x) for x in standing.signals],
            "lanes": None if lanes is None else {"time_s": lanes.times.tolist(),
                                                 **{n: lanes.column(n).tolist() for n in AUDIO_SIGNALS}},
            "moments": [vars(m) for m in self.audio_moments],
            "explanations": [{**vars(x), "second": x.frame_idx} for x in self.audio_explanations],
        }

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (NaN as None)."""
        tl, labels = self.timeline, self.ad.labels
        record = {f.name: getattr(self.ad, f.name) for f in fields(self.ad)}
        record["labels"] = list(labels)
        return _plain({
            "ad": record,
            "evidence": {"face_frames": self.standing.face_frames, "face_seconds": self.standing.face_seconds,
                         "enough": self.standing.enough_evidence, "min_face_frames": self.norms.min_face_frames},
            "dominant": self.standing.dominant,
            "dominant_raw": self.standing.dominant_raw,
            "emotions": [vars(e) for e in self.standing.emotions],
            "figures": [vars(e) for e in self.figures],
            "prominence": self.prominence,
            "norms": {"source": self.norms.source, "ads": self.norms.ads,
                      "by_emotion": {e: {"mean": n.mean, "k": n.k, "ads": n.ads, "fallback": n.fallback}
                                     for e, n in self.norms.by_emotion.items()}},
            "signals": {
                "time_s": tl.times.tolist(), "faces": tl.faces.tolist(),
                "raw": {label: tl.raw[:, j].tolist() for j, label in enumerate(labels)},
                "smoothed": {label: tl.smoothed[:, j].tolist() for j, label in enumerate(labels)},
            },
            "peaks": {e: [vars(p) for p in found] for e, found in self.moments.items()},
            "key_frames": [vars(k) for k in self.key_frames],
            "shots": list(tl.shots),
            "explanations": [vars(x) for x in self.explanations],
            "audio": self.audio_dict(),
        })


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def ad_report(store: Store, ref: str, norms: Norms | None = None, *,
              min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
              min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> AdReport:
    """One ad in full: record, standing against the norms (default: the store's own), per-frame
    signals, peaks, the key frames, shots and every stored explanation's figures; the soundtrack's
    lanes, standing per signal (evidence: seconds of sound, `min_audio_seconds` to rank) and key
    moments."""
    from emocore.explain.keyframes import KeyFrameParams, plan_key_frames

    ad = find_ad(store, ref)
    norms = norms or load_norms(store, min_face_frames=min_face_frames, min_audio_seconds=min_audio_seconds)
    standing = ad_norms(store, ad.key, norms, min_face_frames=min_face_frames)
    bundle = ad_bundle(store, ad.key)
    tl = bundle.timeline
    scoring = ad.index_params.scoring
    plan = plan_key_frames(tl.times, tl.raw, tl.smoothed, ad.labels, {e.emotion: e.mean for e in bundle.emotions},
                           KeyFrameParams(), scoring.window_s, prominence=scoring.prominence) if len(tl.times) else {}
    explained: list[ExplanationFigures] = []
    for index, time_s in bundle.explained:
        try:
            frame = store.explanation(ad.key, index)
        except CorruptExplanation as exc:
            explained.append(ExplanationFigures(index, time_s, None, None, {}, str(exc)))
            continue
        explained.extend(ExplanationFigures(index, frame.time_s, a.emotion, a.method, dict(a.figures))
                         for a in frame.attributions)
    heard = audio_standing(store, ad.key, norms, min_audio_seconds=min_audio_seconds)
    explained_seconds = explained_seconds_of(store, ad.key) if bundle.lanes is not None else ()
    heard_explained: list[ExplanationFigures] = []
    for second in explained_seconds:
        try:
            stored = store.audio_explanation(ad.key, second)
        except CorruptExplanation as exc:
            heard_explained.append(ExplanationFigures(second, float(second), None, None, {}, str(exc)))
            continue
        heard_explained.extend(ExplanationFigures(second, float(second), a.emotion, a.method, dict(a.figures))
                               for a in stored.attributions)
    return AdReport(ad, standing, norms, bundle.emotions, tl, scoring.prominence,
                    moments(bundle) if len(tl.times) else {},
                    tuple(KeyFrame(i, float(tl.times[i]), es) for i, es in plan.items()), tuple(explained),
                    bundle.audio, heard, audio_moments(bundle, explained=explained_seconds), tuple(heard_explained))


def params_summary(ad: AdRow) -> str:
    """A one-line description of how the ad was indexed, for footers."""
    index = ad.index_params
    return (f"model {ad.model} {ad.model_version}; {index.sample_rate} frames/s; "
            f"smoothing {index.scoring.window_s} s; threshold {index.scoring.threshold}")


#: The soundtrack signals an ad's timeline can draw (the mood lanes show as the music's mood).
TIMELINE_LANES = ("laughter", "applause", "music", "speech", "exciting")
#: How many signals an ad's timeline draws until the user picks others.
TOP_SIGNALS = 3


def signal_options(bundle: AdBundle) -> list[str]:
    """What the timeline can draw: the face emotions, then ("audio:<lane>") the soundtrack's lanes when read."""
    audio = [f"audio:{name}" for name in TIMELINE_LANES] if bundle.lanes is not None else []
    return [*bundle.ad.labels, *audio]


def _signal_figure(row: pd.Series, ref: str, prefix: str) -> float:
    column = audio_column(prefix, ref[len("audio:"):]) if ref.startswith("audio:") else f"{prefix}_{ref}"
    value = row.get(column)
    return float(value) if value is not None and not pd.isna(value) else float("nan")


def top_signals(bundle: AdBundle, row: pd.Series, k: int = TOP_SIGNALS) -> list[str]:
    """The ad's `k` strongest signals: the highest lift over the norm (the rank score over the norm library's
    mean), face emotions and soundtrack lanes alike (a lift reads the same for both); signals without a lift
    (no face, no sound) follow, by their raw mean."""
    options = signal_options(bundle)

    def strength(ref: str) -> tuple[int, float]:
        lift, mean = _signal_figure(row, ref, "lift"), _signal_figure(row, ref, "mean")
        if not np.isnan(lift):
            return 0, -lift
        return (1, -mean) if not np.isnan(mean) else (2, 0.0)

    return sorted(options, key=strength)[:k]


__all__ = ["explained_seconds_of", "TIMELINE_LANES", "TOP_SIGNALS", "signal_options", "top_signals", "AUDIO_MOMENT_FLOOR", "AUDIO_MOMENT_SIGNALS", "AUDIO_RANKABLE", "AUDIO_TABLE_COLUMNS", "AUDIO_FAILED",
           "AudioMoment", "AudioSignalStanding", "AudioStanding", "DEFAULT_MIN_AUDIO_SECONDS", "NO_AUDIO",
           "NOT_ANALYSED", "STANDINGS", "Signal", "audio_column", "audio_moments", "audio_note", "audio_standing",
           "audio_table", "resolve_signal", "store_signal", "RANK_COLUMNS", "details", "KeyFrame", "AdBundle", "AdReport", "AdStanding", "ExplanationFigures", "ad_report", "find_ad", "EmotionStanding", "FAILED", "RANKED", "THIN", "ad_bundle", "ad_norms",
           "emotions_in", "explanation", "library", "moments", "params_summary", "peaks", "rank", "timeline_table",
           "with_norms", "AdMatch", "AdSearch", "KEY_PREFIX", "MATCHED", "RankOrder", "SEARCH_LIMIT", "ads_by_key",
           "matching", "rank_order", "search_ads"]
