"""Per-second soundtrack lanes (laughter, applause/cheering, music and its mood, speech, loudness)
and the derived cues "funny" and "exciting", from YAMNet's per-patch scores.

    lanes = score_lanes(track, model)             # AudioLanes, or the track's NoAudio as is
    lanes.column("laughter")                      # [T] probability per second of the file
    lanes.column("exciting")                      # a derived cue, same scale
    lanes.loudness_dbfs                           # [T] RMS level per second, dBFS

How logits become lane values (every number here is a probability in [0, 1]):

- a class's probability is the sigmoid of its logit (AudioSet is multi-label: classes are
  independent, not a softmax);
- a lane reading a group of classes (`LANE_CLASSES`) takes the group's largest probability in each
  patch (a lower bound of "any of them"; "Laughter" and "Giggle" are not added up twice);
- the music mood lanes are read by contrast: YAMNet's mood classes never score high in absolute
  terms (an upbeat theme: Exciting music logit −4.7, probability 0.01), but their contrast is
  telling (Sad music −14.5 on the same theme). Each mood lane is the music lane shared out by a
  softmax over the six mood logits: `music_<mood> = P(Music) × softmax(mood logits)[mood]`, so the
  six moods add up to the music lane;
- patch → second: second `s` covers [s, s+1) s of the FILE's timeline (a late audio stream's
  offset `AudioTrack.start_s` included). Its value is the largest value among the patches whose
  centre (patch start + 0.4875 s) falls in it (every second of sound holds two or three); a
  second holding no patch centre (the tail of a short track) takes the patch overlapping it most;
  a last second holding under `TAIL_TOLERANCE_S` of sound (encoder padding) gets no row;
  a second no patch reads (before a late stream starts, or after the sound ends when lanes are
  stretched to the video's length) is NaN: no sound there, which is not silence;
- loudness: the RMS of the 16 kHz mono downmix over the samples in each second, in dBFS
  (20·log10 RMS: a full-scale square wave is 0 dBFS, a full-scale sine −3 dBFS). It is a plain RMS
  level, not LUFS (no K-weighting, no gating). Digital silence is `MIN_DBFS`; NaN in the seconds
  whose lanes are NaN;
- cues (`CUE_TABLE`): a weighted sum of lanes, the weights of one cue adding up to 1, so a cue is
  in [0, 1] too. Loudness enters a cue as its level `clip((dBFS − MIN_CUE_DBFS) / −MIN_CUE_DBFS, 0, 1)`:
  0 at −60 dBFS and below, 1 at full scale.

A file without an audio track gives `NoAudio` back from `score_lanes` (never lanes of zeros); the
caller records its reason ("no audio track").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emocore.audio.decode import AudioTrack, NoAudio
from emocore.audio.frontend import PATCH_SPAN_SECONDS, LogMelPatches, log_mel_patches
from emocore.audio.yamnet import AudioModel, AudioScores, class_index, sigmoid
from emocore.scoring import EmotionSummary

#: Lanes read from a group of AudioSet classes (display names as in YAMNet's class map): the largest
#: probability of the group in each patch.
LANE_CLASSES: dict[str, tuple[str, ...]] = {
    "laughter": ("Laughter", "Baby laughter", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle"),
    "applause": ("Applause", "Clapping", "Cheering"),
    "music": ("Music",),
    "speech": ("Speech",),
}
#: The music moods, each with its AudioSet class; read by contrast (softmax over these six logits).
MOOD_CLASSES: dict[str, str] = {
    "music_happy": "Happy music",
    "music_exciting": "Exciting music",
    "music_sad": "Sad music",
    "music_tender": "Tender music",
    "music_angry": "Angry music",
    "music_scary": "Scary music",
}
#: Every lane, in column order of `AudioLanes.values`.
LANE_NAMES: tuple[str, ...] = ("laughter", "applause", "music", *MOOD_CLASSES, "speech")
#: What each lane and cue is called in tables and charts.
LANE_LABELS: dict[str, str] = {
    "laughter": "laughter",
    "applause": "applause/cheering",
    "music": "music",
    "music_happy": "happy music",
    "music_exciting": "exciting music",
    "music_sad": "sad music",
    "music_tender": "tender music",
    "music_angry": "angry music",
    "music_scary": "scary music",
    "speech": "speech",
    "loudness": "loudness",
    "funny": "funny (laughter)",
    "exciting": "exciting (cheering, exciting or happy music, loudness)",
}
#: The loudness below which it adds nothing to a cue (dBFS); full scale (0 dBFS) adds its whole weight.
MIN_CUE_DBFS = -60.0
#: The level given to digital silence (an RMS of 0), in dBFS.
MIN_DBFS = -100.0
#: A last second holding less sound than this (seconds: an encoder's padding, e.g. AAC's 21 ms
#: frames) gets no row of its own.
TAIL_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class CueTerm:
    """One row of the cue table: `cue` adds `weight` × the value of `lane` (or of the loudness level)."""

    cue: str
    lane: str
    weight: float


#: THE definition of the derived cues: each cue is the weighted sum of its rows (weights add up to 1).
#: The AudioSet classes behind each lane are `LANE_CLASSES` / `MOOD_CLASSES`; `cue_table_markdown()`
#: prints the table with them, as the README shows it.
CUE_TABLE: tuple[CueTerm, ...] = (
    CueTerm("funny", "laughter", 1.0),
    CueTerm("exciting", "applause", 0.5),
    CueTerm("exciting", "music_exciting", 0.25),
    CueTerm("exciting", "music_happy", 0.15),
    CueTerm("exciting", "loudness", 0.1),
)
CUE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(t.cue for t in CUE_TABLE))
#: Every per-second signal of a soundtrack, in the order the cache stores them: the lanes, the
#: loudness (dBFS), then the cues (`AudioLanes.column` reads each).
AUDIO_SIGNALS: tuple[str, ...] = (*LANE_NAMES, "loudness", *CUE_NAMES)
#: A second counts towards `share_above` when its lane or cue value is at least this.
SHARE_THRESHOLD = 0.5


def lane_classes(lane: str) -> tuple[str, ...]:
    """The AudioSet classes a lane (or "loudness") is read from."""
    if lane in LANE_CLASSES:
        return LANE_CLASSES[lane]
    if lane in MOOD_CLASSES:
        return ("Music", *MOOD_CLASSES.values())
    if lane == "loudness":
        return ()
    raise ValueError(f"unknown audio lane {lane!r}; lanes: {', '.join(LANE_NAMES)}, loudness")


def _lane_reading(lane: str) -> str:
    if lane in LANE_CLASSES:
        classes = LANE_CLASSES[lane]
        quoted = [f"“{c}”" for c in classes]
        return quoted[0] if len(quoted) == 1 else "max of " + ", ".join(quoted)
    if lane in MOOD_CLASSES:
        return f"“Music” × softmax over the six mood classes, share of “{MOOD_CLASSES[lane]}”"
    return f"RMS dBFS, 0 at {MIN_CUE_DBFS:.0f} dBFS → 1 at 0 dBFS"


def short_label(signal: str) -> str:
    """A soundtrack signal's name without its explanation: "funny (laughter)" -> "funny"."""
    return LANE_LABELS.get(signal, signal).split(" (")[0]


def cue_table_markdown() -> str:
    """The cue table as a Markdown table (what the README prints): cue, weight, lane, AudioSet classes."""
    rows = ["| cue | weight | lane | read from (AudioSet classes, sigmoid probabilities) |",
            "|---|---|---|---|"]
    for term in CUE_TABLE:
        rows.append(f"| {term.cue} | {term.weight:g} | {LANE_LABELS[term.lane]} | {_lane_reading(term.lane)} |")
    return "\n".join(rows)


def _check_table() -> None:
    for cue in CUE_NAMES:
        total = sum(t.weight for t in CUE_TABLE if t.cue == cue)
        if not math.isclose(total, 1.0):
            raise AssertionError(f"the weights of cue {cue!r} add up to {total}, not 1")
    for term in CUE_TABLE:
        if term.lane not in LANE_NAMES and term.lane != "loudness":
            raise AssertionError(f"cue {term.cue!r} reads an unknown lane {term.lane!r}")


_check_table()


@dataclass(frozen=True)
class AudioSource:
    """Where lanes came from: the soundtrack as decoded, and the model that scored it."""

    codec: str
    source_rate: int
    source_channels: int
    source_layout: str
    start_s: float
    """Where the sound starts on the file's timeline, seconds."""
    duration_s: float
    decode_errors: int
    gap_s: float
    model: str
    """The audio model's name and version (e.g. "yamnet w8a8-…"), for cache keys."""


@dataclass(frozen=True)
class AudioLanes:
    """A soundtrack read second by second. Row t is second [t, t+1) of the file's timeline."""

    times: np.ndarray
    """[T] float64: where each second starts (0, 1, 2, …), seconds."""
    names: tuple[str, ...]
    """The lanes, in column order of `values` (`LANE_NAMES`)."""
    values: np.ndarray
    """[T, L] float32 probabilities in [0, 1]; NaN where no patch reads that second."""
    cue_names: tuple[str, ...]
    cues: np.ndarray
    """[T, C] float32 derived cues in [0, 1] (`CUE_TABLE`); NaN where no patch reads that second."""
    loudness_dbfs: np.ndarray
    """[T] float32 RMS level per second, dBFS (not LUFS); `MIN_DBFS` for digital silence; NaN where the lanes are."""
    patch_centers_s: np.ndarray
    """[n] float64: the centre of each patch on the file's timeline (what maps patches to seconds)."""
    source: AudioSource

    @property
    def seconds(self) -> int:
        return int(self.times.size)

    @property
    def all_names(self) -> tuple[str, ...]:
        """Lanes, then "loudness", then cues: every name `column` accepts."""
        return (*self.names, "loudness", *self.cue_names)

    def column(self, name: str) -> np.ndarray:
        """[T] values of one lane, cue, or "loudness" (dBFS)."""
        if name in self.names:
            return self.values[:, self.names.index(name)]
        if name in self.cue_names:
            return self.cues[:, self.cue_names.index(name)]
        if name == "loudness":
            return self.loudness_dbfs
        raise ValueError(f"unknown audio lane {name!r}; use one of {', '.join(self.all_names)}")

    def peaks(self, name: str, k: int = 3, min_value: float = 0.5, min_gap_s: int = 2) -> tuple[int, ...]:
        """Up to `k` seconds where `name` is highest and at least `min_value`, `min_gap_s` apart, best first
        (for key moments: "the laughs of this ad")."""
        column = np.asarray(self.column(name), np.float64)
        order = np.argsort(-np.nan_to_num(column, nan=-np.inf), kind="stable")
        chosen: list[int] = []
        for t in order:
            if len(chosen) >= k or not column[t] >= min_value:
                break
            if all(abs(int(t) - c) >= min_gap_s for c in chosen):
                chosen.append(int(t))
        return tuple(chosen)


    @property
    def sound_seconds(self) -> int:
        """Seconds some patch reads (the rest hold no sound): the evidence behind every per-ad figure."""
        return int(np.count_nonzero(~np.isnan(self.values[:, 0]))) if self.values.size else 0

    def matrix(self) -> np.ndarray:
        """[T, len(AUDIO_SIGNALS)] float32: every signal side by side, in the order of `AUDIO_SIGNALS`."""
        return np.column_stack([self.column(name) for name in AUDIO_SIGNALS]).astype(np.float32)


def summarise_lanes(lanes: AudioLanes) -> tuple[EmotionSummary, ...]:
    """Per-ad figures of each signal (`AUDIO_SIGNALS`), as the face emotions have them, over the
    seconds with sound (NaN seconds are left out; none: `mean` and `peak` are None):

    - `mean`, `variance`: of the per-second values;
    - `peak`, `peak_time_s`: the highest second and where it starts;
    - `share_above`: the share of the ad's seconds at or above `SHARE_THRESHOLD` (seconds without
      sound count as not above); NaN for the loudness, which is in dBFS, not a probability.
    """
    out = []
    for name in AUDIO_SIGNALS:
        column = np.asarray(lanes.column(name), np.float64)
        sound = ~np.isnan(column)
        if not sound.any():
            out.append(EmotionSummary(name, None, None, None, 0.0 if name != "loudness" else math.nan, None))
            continue
        best = int(np.nanargmax(column))
        share = math.nan if name == "loudness" else float(np.mean(np.nan_to_num(column, nan=-1.0) >= SHARE_THRESHOLD))
        out.append(EmotionSummary(name, mean=float(np.mean(column[sound])), peak=float(column[best]),
                                  peak_time_s=float(lanes.times[best]), share_above=share,
                                  variance=float(np.var(column[sound]))))
    return tuple(out)


def describe_lanes() -> dict[str, object]:
    """Everything that defines how scores become lanes and cues (JSON-ready): part of any cache key
    built on lanes, beside the audio model's own `describe()`."""
    return {
        "lanes": {lane: list(classes) for lane, classes in LANE_CLASSES.items()},
        "moods": dict(MOOD_CLASSES),
        "cues": [[t.cue, t.lane, t.weight] for t in CUE_TABLE],
        "pool": "max", "min_cue_dbfs": MIN_CUE_DBFS, "min_dbfs": MIN_DBFS, "tail_s": TAIL_TOLERANCE_S,
    }


def patch_lanes(logits: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """[n, L] lane probabilities of each patch (columns `LANE_NAMES`) from YAMNet's [n, 521] logits."""
    logits = np.asarray(logits, np.float64)
    out = np.empty((logits.shape[0], len(LANE_NAMES)), np.float64)
    names = tuple(class_names)
    for lane, classes in LANE_CLASSES.items():
        columns = [class_index(names, c) for c in classes]
        out[:, LANE_NAMES.index(lane)] = sigmoid(logits[:, columns]).max(axis=1)
    moods = logits[:, [class_index(names, c) for c in MOOD_CLASSES.values()]]
    shares = np.exp(moods - moods.max(axis=1, keepdims=True))
    shares /= shares.sum(axis=1, keepdims=True)
    music = out[:, LANE_NAMES.index("music")]
    for j, lane in enumerate(MOOD_CLASSES):
        out[:, LANE_NAMES.index(lane)] = music * shares[:, j]
    return out


def pool_patches(values: np.ndarray, axis: int) -> np.ndarray:
    """A second's lane values from its patches' (along `axis`): the largest, so a short laugh read by
    one patch of the second counts fully. (The mean explains no better: tried on real laughs.)"""
    return values.max(axis=axis)


def loudness_level(dbfs: np.ndarray) -> np.ndarray:
    """Loudness as a cue reads it: 0 at `MIN_CUE_DBFS` and below, 1 at 0 dBFS, linear in dB between."""
    return np.clip((np.asarray(dbfs, np.float64) - MIN_CUE_DBFS) / -MIN_CUE_DBFS, 0.0, 1.0)


def cue_values(lane_values: np.ndarray, loudness_dbfs: np.ndarray) -> np.ndarray:
    """[T, C] cues (`CUE_NAMES`) from [T, L] lane values and [T] loudness, by `CUE_TABLE`."""
    lane_values = np.asarray(lane_values, np.float64)
    level = loudness_level(loudness_dbfs)
    out = np.zeros((lane_values.shape[0], len(CUE_NAMES)), np.float64)
    for term in CUE_TABLE:
        source = level if term.lane == "loudness" else lane_values[:, LANE_NAMES.index(term.lane)]
        out[:, CUE_NAMES.index(term.cue)] += term.weight * source
    return out


def second_patches(patch_starts_s: np.ndarray, seconds: int) -> list[np.ndarray]:
    """For each second [s, s+1) of the file, the patches (indices) whose value it takes.

    `patch_starts_s`: where each patch starts on the file's timeline. The patches centred in the
    second; failing that, the one patch overlapping it most, if by more than `TAIL_TOLERANCE_S`;
    failing that, none (empty).
    """
    starts = np.asarray(patch_starts_s, np.float64)
    centres = starts + PATCH_SPAN_SECONDS / 2
    found = []
    for s in range(seconds):
        inside = np.flatnonzero((centres >= s) & (centres < s + 1))
        if inside.size == 0 and starts.size:
            overlap = np.minimum(starts + PATCH_SPAN_SECONDS, s + 1) - np.maximum(starts, s)
            best = int(np.argmax(overlap))
            inside = np.array([best]) if overlap[best] > TAIL_TOLERANCE_S else np.zeros(0, int)
        found.append(inside.astype(int))
    return found


def loudness_per_second(samples: np.ndarray, start_s: float, seconds: int, sample_rate: int) -> np.ndarray:
    """[seconds] RMS dBFS of the samples falling in each second of the file (NaN where none)."""
    samples = np.asarray(samples, np.float64)
    out = np.full(seconds, np.nan)
    for s in range(seconds):
        a = max(0, int(round((s - start_s) * sample_rate)))
        b = min(samples.size, int(round((s + 1 - start_s) * sample_rate)))
        if b > a:
            rms = math.sqrt(float(np.mean(samples[a:b] ** 2)))
            out[s] = MIN_DBFS if rms <= 10 ** (MIN_DBFS / 20) else max(MIN_DBFS, 20 * math.log10(rms))
    return out


def lanes_from_scores(scores: AudioScores, track: AudioTrack, model_name: str,
                      duration_s: float | None = None) -> AudioLanes:
    """Per-second lanes from the model's scores of `track` (see the module docstring for every rule).

    `duration_s`: the file's (video's) length to cover; seconds past the sound are NaN. Default:
    up to the end of the sound.
    """
    end = track.start_s + track.duration_s
    seconds = max(1, math.ceil(max(end - TAIL_TOLERANCE_S, duration_s or 0.0) - 1e-9))
    starts = track.start_s + np.asarray(scores.start_s, np.float64)
    per_patch = patch_lanes(scores.logits, scores.class_names)
    values = np.full((seconds, len(LANE_NAMES)), np.nan)
    for s, patches in enumerate(second_patches(starts, seconds)):
        # a patch lying wholly in YAMNet's zero padding past the sound reads nothing real
        patches = patches[starts[patches] < end] if patches.size else patches
        if patches.size:
            values[s] = pool_patches(per_patch[patches], axis=0)
    loudness = loudness_per_second(track.samples, track.start_s, seconds, track.sample_rate)
    loudness[np.isnan(values[:, 0])] = np.nan  # a few ms of encoder priming is not a second of sound
    cues = cue_values(values, loudness)
    return AudioLanes(
        times=np.arange(seconds, dtype=np.float64),
        names=LANE_NAMES,
        values=values.astype(np.float32),
        cue_names=CUE_NAMES,
        cues=cues.astype(np.float32),
        loudness_dbfs=loudness.astype(np.float32),
        patch_centers_s=starts + PATCH_SPAN_SECONDS / 2,
        source=AudioSource(codec=track.codec, source_rate=track.source_rate, source_channels=track.source_channels,
                           source_layout=track.source_layout, start_s=track.start_s, duration_s=track.duration_s,
                           decode_errors=track.decode_errors, gap_s=track.gap_s, model=model_name),
    )


def score_lanes(track: AudioTrack | NoAudio, model: AudioModel, duration_s: float | None = None,
                spec: LogMelPatches | None = None) -> AudioLanes | NoAudio:
    """Score a decoded soundtrack into per-second lanes; a `NoAudio` is returned as is (no lanes, not zeros).

    `spec`: the track's log-mel patches when already computed (`log_mel_patches(track.samples)`).
    """
    if isinstance(track, NoAudio):
        return track
    spec = spec if spec is not None else log_mel_patches(track.samples)
    scores = model.scores_of(spec)
    return lanes_from_scores(scores, track, f"{model.name} {model.version}", duration_s)


__all__ = ["short_label", "AUDIO_SIGNALS", "SHARE_THRESHOLD", "summarise_lanes", "CUE_NAMES", "CUE_TABLE", "LANE_CLASSES", "LANE_LABELS", "LANE_NAMES", "MIN_CUE_DBFS", "MIN_DBFS",
           "MOOD_CLASSES", "TAIL_TOLERANCE_S", "AudioLanes", "AudioSource", "CueTerm", "cue_table_markdown",
           "cue_values", "describe_lanes",
           "lane_classes", "lanes_from_scores", "loudness_level", "loudness_per_second", "patch_lanes", "pool_patches",
           "score_lanes", "second_patches"]
