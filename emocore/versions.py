"""Versions: cuts of one ad compared shot by shot ("what did the 15 s cut lose against the 30 s master?").

Every ad in the cache has its shots (`Timeline.shots`, the cuts PySceneDetect found) and a small
thumbnail of every sampled frame (`thumbs/<key>/NNNNN.jpg`, times in the frames table). Matching two
versions reads only those; no video is decoded again.

- Signature of a frame: its thumbnail shrunk to a `layout` × `layout` grid (default 8 × 8, INTER_AREA)
  in CIE Lab, 3 × layout² values scaled to [0, 1]: a colour layout. It survives re-encoding, resizing
  and small crops, and, unlike a DCT perceptual hash, it tells apart flat shots of different colours
  (a pHash of a flat frame hashes its noise). A frame whose thumbnail is missing has no signature.
- Distance of two frames: the mean absolute difference of their signatures (0 = same, 1 = opposite).
- Distance of two shots S (of A) and T (of B): each frame of one is paired with its nearest frame of
  the other and the distances averaged, in both directions; the smaller of the two is the shots'
  distance, so a shot the cut trimmed still matches its whole original. Similarity = 1 − distance.
- The match: `scipy.optimize.linear_sum_assignment` on the S_a × S_b matrix of shot distances (each
  shot used once, the total distance smallest); a pair farther apart than `max_distance` (default
  0.025) is no match. Measured on Megamind.avi and its re-encoded cut (H.264, crf 23): the same shot
  is ≤ 0.005 apart, two different shots of that one film 0.037–0.075. A shot shorter than the
  sampling step may hold no sampled frame: it matches nothing.
- Cost: one frame-distance matrix, O(F_a × F_b × 3 layout²) (F = sampled frames), reduced to shots
  in O(F_a × F_b), then O(max(S_a, S_b)³) for the assignment; the thumbnails are read once (F_a + F_b
  small JPEGs). Measured on one core: two 30 s ads (60 frames, 15 shots each) about 1 ms, two 2 min
  ads (240 frames, 60 shots) about 30 ms, plus reading the thumbnails (Megamind.avi and its cut, end
  to end from the cache: about 0.13 s warm).
- Status of a shot: "kept" (matched, in order), "moved" (matched, but not on the longest run of
  matched shots that keeps A's order in B: the longest increasing subsequence of A's indices taken
  in B's order; of several such runs, the one covering most of A's seconds, then the earliest),
  "cut" (in A only), "added" (in B only).
- Per matched shot, the change of each face emotion's mean over the shot (the smoothed signal at the
  frames with a face, as the ad's own figures are read; evidence: face frames in each shot) and, when
  both versions have lanes, of each audio signal's mean over the seconds of the shot (a second
  belongs to the shot its middle falls in; evidence: seconds with sound).
- Timelines aligned by matched shots: B's time t in a matched shot maps to A's time t + offset,
  clipped to A's shot. The offset aligns the shots' starts (or their ends, for a shot trimmed at its
  head) when the median of (time of the nearest A frame − time of the B frame) over the shot's B
  frames is within a sampling step of that, else it is that median. Added shots have no time in A.

Compute (`read_version`, `match_versions`) apart from drawing (`alignment_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from emocore.audio.lanes import AUDIO_SIGNALS, AudioLanes
from emocore.errors import VersionsError
from emocore.store import AdRow, Store, Timeline, thumbnail_path

#: The status of a shot in an edit list.
KEPT, MOVED, CUT, ADDED = "kept", "moved", "cut", "added"
STATUSES = (KEPT, MOVED, CUT, ADDED)
#: Colour of each status in the alignment figure.
STATUS_COLOURS = {KEPT: "#2e7d32", MOVED: "#ef6c00", CUT: "#c62828", ADDED: "#1565c0"}


@dataclass(frozen=True)
class VersionParams:
    """How shots are matched (see the module docstring)."""

    layout: int = 8
    """Side of the colour-layout grid a thumbnail is shrunk to."""
    max_distance: float = 0.025
    """Shots farther apart than this (mean absolute Lab difference, 0–1) are no match."""

    def __post_init__(self) -> None:
        if not 1 <= self.layout <= 64:
            raise VersionsError(f"the layout grid must be 1 to 64 cells a side, got {self.layout}")
        if not 0 < self.max_distance <= 1:
            raise VersionsError(f"max_distance must be in (0, 1], got {self.max_distance}")


@dataclass(frozen=True)
class Shot:
    """One shot of an ad: [start_s, end_s) and the sampled frames in it."""

    index: int
    start_s: float
    end_s: float
    frames: tuple[int, ...]
    """Indices of the sampled frames (rows of the timeline) inside the shot."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def label(self) -> str:
        return f"#{self.index + 1} {self.start_s:.1f}–{self.end_s:.1f} s"


@dataclass(frozen=True)
class Version:
    """One cut as matching reads it: its shots, per-frame data and signatures, and its soundtrack."""

    key: str
    name: str
    duration_s: float
    labels: tuple[str, ...]
    timeline: Timeline
    shots: tuple[Shot, ...]
    signatures: np.ndarray = field(repr=False)
    """(frames, 3 × layout²) float32 colour layouts; NaN rows where a thumbnail is missing."""
    audio: AudioLanes | None = None
    """The per-second lanes, when the soundtrack was analysed and has sound."""


@dataclass(frozen=True)
class SignalChange:
    """One signal's mean over a matched shot, in each version, and what each mean rests on."""

    signal: str
    kind: str
    """"emotion" (face model, probability) or "audio" (a lane or cue probability, or loudness in dBFS)."""
    before: float | None
    """Mean over the reference's shot (None: no evidence there)."""
    after: float | None
    """Mean over the cut's shot."""
    evidence_before: int
    """Face frames (emotions) or seconds with sound (audio) behind `before`."""
    evidence_after: int
    unit: str
    """What the evidence counts: "face frames" or "s of sound"."""

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before


@dataclass(frozen=True)
class ShotMatch:
    """One row of the edit list: a shot of the reference and/or of the cut, and what became of it."""

    status: str
    a: Shot | None
    """The reference's shot (None for an added shot)."""
    b: Shot | None
    """The cut's shot (None for a cut shot)."""
    similarity: float | None
    """1 − the shots' distance (None when unmatched)."""
    offset_s: float | None
    """Reference time = cut time + offset inside this shot (None when unmatched)."""
    changes: tuple[SignalChange, ...] = ()

    def change(self, signal: str) -> SignalChange | None:
        return next((c for c in self.changes if c.signal == signal), None)


@dataclass(frozen=True)
class TimeSpan:
    """A stretch of the cut's timeline mapped onto the reference's: reference t = cut t + offset_s."""

    b_start_s: float
    b_end_s: float
    offset_s: float
    a_start_s: float
    a_end_s: float


@dataclass(frozen=True)
class VersionMatch:
    """A cut matched shot by shot against the reference."""

    reference: Version
    cut: Version
    matches: tuple[ShotMatch, ...]
    """The edit list: the reference's shots in order (kept, moved, cut), each added shot after the
    row of the cut's shot before it."""
    spans: tuple[TimeSpan, ...]
    """The cut's matched shots mapped onto the reference's time, in the cut's order."""
    params: VersionParams

    def count(self, status: str) -> int:
        return sum(1 for m in self.matches if m.status == status)

    def summary(self) -> str:
        """One line: "Megamind_cut.mp4 (8.4 s) kept 3 of 4 shots of Megamind.avi (11.3 s), 1 moved; cut 1, added 0"."""
        kept, moved = self.count(KEPT), self.count(MOVED)
        return (f"{self.cut.name} ({self.cut.duration_s:.1f} s) kept {kept + moved} of {len(self.reference.shots)} "
                f"shots of {self.reference.name} ({self.reference.duration_s:.1f} s), {moved} moved; "
                f"cut {self.count(CUT)}, added {self.count(ADDED)}")

    def to_reference_time(self, times: np.ndarray | Sequence[float]) -> np.ndarray:
        """The cut's times on the reference's timeline; NaN inside shots that match nothing."""
        t = np.asarray(times, dtype=np.float64)
        out = np.full(t.shape, np.nan)
        for span in self.spans:
            inside = (t >= span.b_start_s) & (t < span.b_end_s)
            out[inside] = np.clip(t[inside] + span.offset_s, span.a_start_s, span.a_end_s)
        return out

    def table(self) -> pd.DataFrame:
        """The edit list, one row per shot: shots and times, status, similarity, the evidence of each
        kind of signal ("face frames" and "seconds of sound", reference → cut: the same for every signal
        of a kind) and each signal's change (`Δ <emotion>`, `Δ sound: <audio signal>`)."""
        rows = []
        for m in self.matches:
            row: dict[str, object] = {
                "status": m.status,
                "reference shot": None if m.a is None else m.a.index + 1,
                "reference from (s)": None if m.a is None else round(m.a.start_s, 3),
                "reference to (s)": None if m.a is None else round(m.a.end_s, 3),
                "cut shot": None if m.b is None else m.b.index + 1,
                "cut from (s)": None if m.b is None else round(m.b.start_s, 3),
                "cut to (s)": None if m.b is None else round(m.b.end_s, 3),
                "similarity": None if m.similarity is None else round(m.similarity, 3),
            }
            for kind, title in (("emotion", "face frames"), ("audio", "seconds of sound")):
                found = [c for c in m.changes if c.kind == kind]
                if found:
                    row[f"{title} (reference → cut)"] = f"{found[0].evidence_before} → {found[0].evidence_after}"
                for c in found:
                    unit = " (dB)" if c.signal == "loudness" else ""
                    row[f"Δ {c.signal}" if kind == "emotion" else f"Δ sound: {c.signal}{unit}"] = c.delta
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON: both versions, the summary, counts, the edit list and the time map."""
        def shot(s: Shot | None) -> dict[str, object] | None:
            return None if s is None else {"index": s.index, "start_s": round(s.start_s, 3),
                                           "end_s": round(s.end_s, 3), "frames": len(s.frames)}

        def side(v: Version) -> dict[str, object]:
            return {"key": v.key, "name": v.name, "duration_s": round(v.duration_s, 3), "shots": len(v.shots),
                    "audio": v.audio is not None}

        return {
            "reference": side(self.reference), "cut": side(self.cut), "summary": self.summary(),
            "counts": {s: self.count(s) for s in STATUSES},
            "max_distance": self.params.max_distance,
            "shots": [{
                "status": m.status, "reference": shot(m.a), "cut": shot(m.b),
                "similarity": None if m.similarity is None else round(m.similarity, 4),
                "offset_s": None if m.offset_s is None else round(m.offset_s, 3),
                "changes": [{"signal": c.signal, "kind": c.kind, "before": _round(c.before), "after": _round(c.after),
                             "delta": _round(c.delta), "evidence_before": c.evidence_before,
                             "evidence_after": c.evidence_after, "unit": c.unit} for c in m.changes],
            } for m in self.matches],
            "time_map": [{"cut_from_s": round(s.b_start_s, 3), "cut_to_s": round(s.b_end_s, 3),
                          "offset_s": round(s.offset_s, 3)} for s in self.spans],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- reading a version ----------------------------------------------------------------------------------


def shots_of(timeline: Timeline, duration_s: float) -> tuple[Shot, ...]:
    """The ad's shots: [0, first cut), …, [last cut, duration), each with its sampled frames."""
    starts = [0.0, *(float(s) for s in timeline.shots if 0 < s < duration_s)]
    ends = [*starts[1:], max(duration_s, starts[-1])]
    owner = np.searchsorted(np.asarray(starts), timeline.times, side="right") - 1
    return tuple(Shot(i, s, e, tuple(int(f) for f in np.flatnonzero(owner == i))) for i, (s, e) in
                 enumerate(zip(starts, ends)))


def frame_signature(image_bgr: np.ndarray, layout: int = VersionParams.layout) -> np.ndarray:
    """A frame's colour layout: `layout` × `layout` CIE Lab cells, 3 × layout² float32 values in [0, 1]."""
    small = cv2.resize(image_bgr, (layout, layout), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32).reshape(-1) / 255.0


def _signatures(root: Store, key: str, frames: int, layout: int) -> np.ndarray:
    out = np.full((frames, 3 * layout * layout), np.nan, dtype=np.float32)
    for i in range(frames):
        image = cv2.imread(str(thumbnail_path(root.root, key, i)), cv2.IMREAD_COLOR)
        if image is not None:
            out[i] = frame_signature(image, layout)
    return out


def read_version(store: Store, ad: AdRow, params: VersionParams = VersionParams()) -> Version:
    """One indexed ad as matching needs it (its timeline, shots, thumbnails' signatures, lanes).
    VersionsError for a failed ad or one without stored frames."""
    if ad.status != "ok":
        raise VersionsError(f"{ad.name} failed to index ({ad.error or 'no reason given'}): it has no shots to match")
    timeline = store.timeline(ad.key)
    if not len(timeline.times):
        raise VersionsError(f"{ad.name} has no sampled frames in the cache: index it again with --force")
    duration = float(ad.duration_s or timeline.times[-1])
    signatures = _signatures(store, ad.key, len(timeline.times), params.layout)
    if np.isnan(signatures).all():
        raise VersionsError(f"{ad.name} has no thumbnails in {store.root}: index it again with --force")
    audio = store.audio(ad.key)
    lanes = audio if isinstance(audio, AudioLanes) and audio.sound_seconds else None
    return Version(ad.key, ad.name, duration, ad.labels, timeline, shots_of(timeline, duration), signatures, lanes)


# --- matching -------------------------------------------------------------------------------------------


def frame_distances(a: Version, b: Version) -> np.ndarray:
    """(F_a, F_b) mean absolute difference of every pair of frame signatures (NaN where one is missing)."""
    out = np.full((len(a.signatures), len(b.signatures)), np.nan)
    rows = ~np.isnan(a.signatures).any(axis=1)
    cols = ~np.isnan(b.signatures).any(axis=1)
    if rows.any() and cols.any():
        found = cdist(a.signatures[rows], b.signatures[cols], "cityblock") / a.signatures.shape[1]
        out[np.ix_(rows, cols)] = found
    return out


def _segment_mean(values: np.ndarray, starts: Sequence[int], axis: int) -> np.ndarray:
    """Mean of `values` (NaN left out) over the contiguous segments beginning at `starts` along `axis`."""
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), starts, axis=axis)
    counts = np.add.reduceat(present.astype(np.int64), starts, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def shot_distances(a: Version, b: Version, frames: np.ndarray | None = None) -> np.ndarray:
    """(S_a, S_b) shot distances (module docstring); NaN where a shot has no frame with a signature.
    Vectorised over the frame-distance matrix: a shot's frames are one contiguous block of rows."""
    frames = frame_distances(a, b) if frames is None else frames
    out = np.full((len(a.shots), len(b.shots)), np.nan)
    rows = [s for s in a.shots if s.frames]
    cols = [s for s in b.shots if s.frames]
    if not rows or not cols:
        return out
    a_starts, b_starts = [s.frames[0] for s in rows], [s.frames[0] for s in cols]
    with np.errstate(invalid="ignore"):
        nearest_in_b = np.fmin.reduceat(frames, b_starts, axis=1)  # (F_a, S_b): each A frame's nearest per B shot
        nearest_in_a = np.fmin.reduceat(frames, a_starts, axis=0)  # (S_a, F_b)
    forward = _segment_mean(nearest_in_b, a_starts, axis=0)
    backward = _segment_mean(nearest_in_a, b_starts, axis=1)
    out[np.ix_([s.index for s in rows], [s.index for s in cols])] = np.fmin(forward, backward)
    return out


def longest_in_order(pairs: Sequence[tuple[int, int]], weight: Sequence[float]) -> set[int]:
    """Of `pairs` (a, b) sorted by b, the positions of the longest run whose a increases (ties: the
    heavier, then the earliest)."""
    n = len(pairs)
    best: list[tuple[int, float]] = [(1, weight[k]) for k in range(n)]
    back = [-1] * n
    for k in range(n):
        for j in range(k):
            if pairs[j][0] < pairs[k][0]:
                candidate = (best[j][0] + 1, best[j][1] + weight[k])
                if candidate > best[k]:
                    best[k], back[k] = candidate, j
    if not n:
        return set()
    end = max(range(n), key=lambda k: (best[k], -k))
    chosen = set()
    while end >= 0:
        chosen.add(end)
        end = back[end]
    return chosen


def _shot_mean(values: np.ndarray, rows: Sequence[int]) -> tuple[float | None, int]:
    taken = values[list(rows)] if len(rows) else np.zeros(0)
    taken = taken[~np.isnan(taken)]
    return (float(taken.mean()) if taken.size else None), int(taken.size)


def _at_faces(version: Version) -> np.ndarray:
    """(frames, labels) the smoothed signal at the frames with a face, NaN elsewhere (as the ad's figures read it)."""
    tl = version.timeline
    seen = ~np.isnan(tl.raw).all(axis=1) if len(tl.times) else np.zeros(0, dtype=bool)
    return np.where(seen[:, None], tl.smoothed.astype(np.float64), np.nan)


def _emotion_changes(a: Version, b: Version, sa: Shot, sb: Shot, faces_a: np.ndarray,
                     faces_b: np.ndarray) -> list[SignalChange]:
    changes = []
    for label in a.labels:
        if label not in b.labels:
            continue
        before, n_before = _shot_mean(faces_a[:, a.labels.index(label)], sa.frames)
        after, n_after = _shot_mean(faces_b[:, b.labels.index(label)], sb.frames)
        changes.append(SignalChange(label, "emotion", before, after, n_before, n_after, "face frames"))
    return changes


def _seconds_in(lanes: AudioLanes, shot: Shot) -> list[int]:
    middle = lanes.times + 0.5
    return [int(t) for t in np.flatnonzero((middle >= shot.start_s) & (middle < shot.end_s))]


def _audio_changes(a: Version, b: Version, sa: Shot, sb: Shot) -> list[SignalChange]:
    if a.audio is None or b.audio is None:
        return []
    changes = []
    for signal in AUDIO_SIGNALS:
        values = [_shot_mean(np.asarray(lanes.column(signal), np.float64), _seconds_in(lanes, s))
                  for lanes, s in ((a.audio, sa), (b.audio, sb))]
        (before, n_before), (after, n_after) = values
        changes.append(SignalChange(signal, "audio", before, after, n_before, n_after, "s of sound"))
    return changes


def _step(times: np.ndarray) -> float:
    """The sampling step of a timeline (seconds between sampled frames)."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def _offset(sa: Shot, sb: Shot, estimates: Sequence[float], step: float) -> float:
    """Reference time − cut time in a matched shot: the shots' starts (or ends) aligned when the
    frames' median estimate lies within a sampling step of that (a whole shot, or one trimmed at one
    end), else the estimate itself."""
    starts, ends = sa.start_s - sb.start_s, sa.end_s - sb.end_s
    if not estimates:
        return starts
    estimate = float(np.median(estimates))
    nearest = min((starts, ends), key=lambda o: abs(o - estimate))
    return nearest if abs(nearest - estimate) <= step else estimate


def match_versions(reference: Version, cut: Version, params: VersionParams = VersionParams()) -> VersionMatch:
    """Match `cut`'s shots against `reference`'s (module docstring): the edit list, each matched
    shot's signal changes, and the map from the cut's time to the reference's."""
    frames = frame_distances(reference, cut)
    distances = shot_distances(reference, cut, frames)
    cost = np.where(np.isnan(distances), 10.0, distances)
    pairs = [(int(i), int(j)) for i, j in zip(*linear_sum_assignment(cost))
             if not math.isnan(distances[i, j]) and distances[i, j] <= params.max_distance]
    pairs.sort(key=lambda p: p[1])
    in_order = longest_in_order(pairs, [reference.shots[i].duration_s for i, _ in pairs])
    by_a: dict[int, ShotMatch] = {}
    faces_a, faces_b = _at_faces(reference), _at_faces(cut)
    spans = []
    for k, (i, j) in enumerate(pairs):
        sa, sb = reference.shots[i], cut.shots[j]
        block = frames[np.ix_(sa.frames, sb.frames)]
        usable = [c for c in range(block.shape[1]) if not np.isnan(block[:, c]).all()]
        offsets = [reference.timeline.times[sa.frames[int(np.nanargmin(block[:, c]))]]
                   - cut.timeline.times[sb.frames[c]] for c in usable]
        offset = _offset(sa, sb, offsets, _step(reference.timeline.times))
        spans.append(TimeSpan(sb.start_s, sb.end_s, offset, sa.start_s, sa.end_s))
        by_a[i] = ShotMatch(KEPT if k in in_order else MOVED, sa, sb, 1.0 - float(distances[i, j]), offset,
                            tuple(_emotion_changes(reference, cut, sa, sb, faces_a, faces_b)
                                  + _audio_changes(reference, cut, sa, sb)))
    rows: list[tuple[tuple[float, int, int], ShotMatch]] = []
    for sa in reference.shots:
        found = by_a.get(sa.index) or ShotMatch(CUT, sa, None, None, None)
        rows.append(((sa.index, 0, 0), found))
    matched_b = {j: i for i, j in pairs}
    for sb in cut.shots:
        if sb.index in matched_b:
            continue
        before = [matched_b[j] for j in range(sb.index) if j in matched_b]
        rows.append(((before[-1] if before else -1, 1, sb.index), ShotMatch(ADDED, None, sb, None, None)))
    rows.sort(key=lambda r: r[0])
    return VersionMatch(reference, cut, tuple(m for _, m in rows), tuple(spans), params)


# --- drawing --------------------------------------------------------------------------------------------


def alignment_figure(matches: Sequence[VersionMatch], emotion: str, *, template: str = "plotly_white") -> go.Figure:
    """The reference on top and each cut below it as bars of shots, coloured by status (kept, moved,
    cut, added), with a line from each matched shot to its original; beneath, `emotion`'s smoothed
    curve of every version on the reference's time (the cuts' curves moved shot by shot)."""
    if not matches:
        raise VersionsError("nothing to draw: no cut was matched")
    reference = matches[0].reference
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.45, 0.55],
                        subplot_titles=("Shots, numbered by the reference's (a line joins each matched shot to "
                                        "its original)",
                                        f"{emotion} on the reference's time (the cuts moved shot by shot)"))
    lanes = [reference.name] + [f"{m.cut.name} (cut {n + 1})" for n, m in enumerate(matches)]
    y_of = {name: len(lanes) - 1 - k for k, name in enumerate(lanes)}
    status_a = {m.a.index: m.status for m in matches[0].matches if m.a is not None}
    shown: set[str] = set()

    def bar(y: float, shot: Shot, status: str, text: str, label: str) -> None:
        fig.add_trace(go.Bar(
            x=[shot.duration_s], base=[shot.start_s], y=[y], orientation="h", width=0.5, text=[label],
            textposition="inside", insidetextanchor="middle", textfont={"color": "white"},
            marker={"color": STATUS_COLOURS[status], "line": {"color": "white", "width": 1}},
            name=status, legendgroup=status, showlegend=status not in shown, hovertext=text, hoverinfo="text",
        ), row=1, col=1)
        shown.add(status)

    for shot in reference.shots:
        # a reference shot reads as kept when any cut kept it; its colour follows the first cut
        bar(y_of[reference.name], shot, status_a.get(shot.index, CUT), f"{reference.name} {shot.label()}",
            str(shot.index + 1))
    for n, m in enumerate(matches):
        y = y_of[lanes[n + 1]]
        for row in m.matches:
            if row.b is None:
                continue
            text = f"{m.cut.name} {row.b.label()}: {row.status}"
            if row.a is not None and row.similarity is not None:
                text += f" (reference {row.a.label()}, similarity {row.similarity:.2f})"
            bar(y, row.b, row.status, text, "new" if row.a is None else f"{row.a.index + 1}")
            if row.a is not None:
                fig.add_trace(go.Scatter(
                    x=[(row.a.start_s + row.a.end_s) / 2, (row.b.start_s + row.b.end_s) / 2],
                    y=[y_of[reference.name] - 0.25, y + 0.25], mode="lines", showlegend=False, hoverinfo="skip",
                    line={"color": STATUS_COLOURS[row.status], "width": 2, "dash": "solid" if row.status == KEPT
                          else "dot"}), row=1, col=1)
    fig.update_yaxes(tickvals=[y_of[name] for name in lanes], ticktext=lanes, row=1, col=1)
    palette = ["#263238", "#8e24aa", "#00897b", "#f9a825", "#6d4c41"]
    for n, version in enumerate([reference] + [m.cut for m in matches]):
        if emotion not in version.labels:
            continue
        tl = version.timeline
        values = tl.smoothed[:, version.labels.index(emotion)]
        times = tl.times if n == 0 else matches[n - 1].to_reference_time(tl.times)
        order = np.argsort(np.nan_to_num(times, nan=np.inf), kind="stable")
        x, y = times[order], values[order].astype(np.float64)
        if n:  # a cut's line breaks where its shots were rejoined: no line across an edit
            shot = np.searchsorted([sh.start_s for sh in version.shots], tl.times[order], side="right")
            breaks = np.flatnonzero(np.diff(shot) != 0) + 1
            x, y = np.insert(x, breaks, np.nan), np.insert(y, breaks, np.nan)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", connectgaps=False,
            name=version.name if n == 0 else f"{version.name} (cut {n})",
            line={"color": palette[n % len(palette)], "width": 2 if n == 0 else 1.5, "dash": "solid" if n == 0
                  else "dash"}, marker={"size": 4}), row=2, col=1)
    fig.update_layout(template=template, barmode="overlay", height=260 + 60 * len(lanes),
                      margin={"l": 10, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.12},
                      hovermode="closest")
    fig.update_xaxes(title_text="seconds of the reference", row=2, col=1)
    fig.update_yaxes(title_text=emotion, range=[0, 1.02], row=2, col=1)
    return fig


__all__ = ["ADDED", "CUT", "KEPT", "MOVED", "STATUSES", "STATUS_COLOURS", "Shot", "ShotMatch", "SignalChange",
           "TimeSpan", "Version", "VersionMatch", "VersionParams", "alignment_figure", "frame_distances",
           "frame_signature", "longest_in_order", "match_versions", "read_version", "shot_distances", "shots_of"]
