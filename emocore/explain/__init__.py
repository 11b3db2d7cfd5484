"""Explain the peaks: LIME and SHAP maps of the moments that carry each emotion, into the cache.

    explain_ad(store, ad, video_path, model, ExplainParams())     # the key frames of one ad
    explain_moment(store, ad, video_path, model, 4.5, "happy", params)  # one moment on demand

For each key frame (see `keyframes`) the model says which region its score depends on and gives a
prediction function over it (`EmotionModel.explanation_input`: for the face model, the scored
face's crop, classified at the face's original box). The region is cut into SLIC superpixels; LIME
and SHAP attribute the same prediction function over the same superpixels (each method an
explainer from `emocore.registry.EXPLAINERS`: `Explainer(predict).attribute(image, segments=...,
labels=..., n_samples=..., seed=...)`, run in the registry's order), and each attribution
is stored with its trust figures (`emocore.trust.TrustFigures`, as a dict: deletion check against
random regions, LIME–SHAP agreement beside each method's seed-to-seed stability, LIME's fit R²
beside its null and held-out R², samples, seed, time). Frames already explained with the same
model and parameters are not redone, so an interrupted index resumes where it stopped; a corrupt
stored one is reported and redone.

The soundtrack's key moments are explained the same way (`explain_audio_ad`, run by `index` after
the faces' key frames): for an ad whose lanes are stored, the peaks `keyframes.plan_audio_moments`
picks (laughter, applause/cheering, funny, exciting: top 3 each at or above 0.5) are explained with
LIME and SHAP over a time × mel-band grid of the log-mel around them
(`emocore.audio.explain.explain_audio_moment`, the track decoded once per ad), each second stored
in one transaction (`Store.write_audio_explanation`) unless stored already with the same audio
model and `AudioExplainParams` (`audio_explain_hash`). `explain_audio_second` explains one second on
demand.

    explain_audio_ad(store, ad, video_path, audio_model, ExplainParams())   # the audio key moments
    explain_audio_second(store, ad, video_path, audio_model, 4.2, "laughter", AudioExplainParams())
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emocore.audio.decode import AudioTrack, NoAudio, decode_audio
from emocore.audio.explain import (
    OUTPUT_NAMES, AudioExplainParams, AudioExplanation, explain_audio_moment, spectrogram_levels, waveform_envelope,
)
from emocore.audio.frontend import log_mel_patches
from emocore.audio.lanes import AudioLanes, describe_lanes
from emocore.audio.yamnet import AudioModel
from emocore.errors import AdNotFound, AudioError, CorruptExplanation, UnknownExplainer, VideoError
from emocore.attribution import agreement, deletion_checks, segment
from emocore.explain.keyframes import AudioKeyParams, KeyFrameParams, plan_audio_moments, plan_key_frames
from emocore.models.base import EmotionModel
from emocore.store import AdRow, FrameExplanation, Store, StoredAttribution, StoredAudioExplanation
from emocore.registry import EXPLAINERS
from emocore.trust import Deletion, TrustFigures
from emocore.video import open_video

log = logging.getLogger("emocore")

#: Every registered explanation method ("lime", "shap"): `emocore.registry.EXPLAINERS`.
METHODS: tuple[str, ...] = tuple(EXPLAINERS.names())
#: Explained regions smaller than this are stored enlarged (pixel repetition) for display.
DISPLAY_SIDE = 128


@dataclass(frozen=True)
class ExplainParams:
    methods: tuple[str, ...] = METHODS
    lime_samples: int = 500
    shap_samples: int = 500
    n_segments: int = 48
    compactness: float = 10.0
    seed: int = 0
    batch: int = 64
    keyframes: KeyFrameParams = field(default_factory=KeyFrameParams)
    audio: AudioExplainParams = field(default_factory=AudioExplainParams)
    """How the soundtrack's key moments are explained (regions, samples, seed: its own defaults)."""
    audio_keys: AudioKeyParams = field(default_factory=AudioKeyParams)
    """Which seconds of the soundtrack are its key moments."""

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in EXPLAINERS]
        if bad or not self.methods:
            raise UnknownExplainer(f"unknown explanation method {bad[0] if bad else ''!r}; "
                                   f"use {', '.join(EXPLAINERS.names())} or both")
        for method in self.ordered_methods():  # each explainer checks its own sample rule
            EXPLAINERS.resolve(method).check_samples(self.samples(method), self.n_segments)
        if not 4 <= self.n_segments <= 250:
            raise ValueError("n_segments must be between 4 and 250")


    def ordered_methods(self) -> tuple[str, ...]:
        """`methods` in the registry's order (lime before shap, whatever order they were given in)."""
        return tuple(name for name in EXPLAINERS.names() if name in self.methods)

    def samples(self, method: str) -> int:
        """Samples (model evaluations) for `method`: the field `<method>_samples`, which every
        registered explainer has here (a field, so it goes into `explain_hash`)."""
        try:
            return int(getattr(self, f"{method}_samples"))
        except AttributeError:
            raise ValueError(f"ExplainParams has no {method}_samples for the explainer {method!r}") from None


def explain_hash(model: EmotionModel, params: ExplainParams) -> str:
    """Identity of an explanation: model and method parameters (not which frames were chosen)."""
    described = {"model": model.describe(), **asdict(params)}
    for name in ("keyframes", "audio", "audio_keys"):  # which frames, and the soundtrack's own explanations
        described.pop(name)
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def explain_frame(
    model: EmotionModel,
    frame: np.ndarray,
    face: tuple[float, ...] | None,
    emotions: Collection[str],
    params: ExplainParams,
    frame_score: np.ndarray | None = None,
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, tuple[StoredAttribution, ...]] | None:
    """Compute every asked method for the emotions on one frame: region, segments, image, attributions.

    `frame_score` (the indexed probabilities of the frame) is stored beside the explained
    function's own score, so any gap between the two is visible. None when the model has nothing
    to explain there (no face).
    """
    target = model.explanation_input(frame, face)
    if target is None:
        return None
    segments = segment(target.image, params.n_segments, params.compactness)
    labels = [model.labels.index(e) for e in emotions]
    found = []
    for method in params.ordered_methods():  # each explainer from the registry, over the same segments
        explainer = EXPLAINERS.build(method, target.predict)
        found += explainer.attribute(target.image, segments=segments, labels=labels, n_samples=params.samples(method),
                                     seed=params.seed, batch=params.batch)
    deletions: dict[tuple[str, int], tuple[Deletion, ...]] = {}
    for label in labels:  # the random draws of the deletion check are shared by the methods of one label
        maps = {a.method: a.weights for a in found if a.label == label}
        checks = deletion_checks(target.image, segments, target.predict, label, maps, params.seed, params.batch)
        deletions.update({(method, label): found_checks for method, found_checks in checks.items()})
    # stored enlarged to at least DISPLAY_SIDE px by pixel repetition, so overlays stay crisp
    step = max(1, DISPLAY_SIDE // max(target.image.shape[:2]))
    image = np.repeat(np.repeat(target.image, step, axis=0), step, axis=1)
    shown = np.repeat(np.repeat(segments, step, axis=0), step, axis=1)
    stored = []
    for a in found:
        other = next((b for b in found if b.label == a.label and b.method != a.method), None)
        figures = TrustFigures(
            method=a.method, score=a.score,
            frame_score=None if frame_score is None else float(frame_score[a.label]),
            base=a.base, samples=a.samples, seed=a.seed, seconds=round(a.seconds, 4),
            segments=int(segments.max()) + 1, deletion=deletions[(a.method, a.label)],
            stability=a.stability, stability_half=a.stability_half,
            agreement=None if other is None else agreement(a.weights, other.weights),
            other_stability=None if other is None else other.stability,
            fit_r2=a.fit_r2, fit_r2_null=a.fit_r2_null, fit_r2_heldout=a.fit_r2_heldout,
        )
        stored.append(StoredAttribution(model.labels[a.label], a.method, a.weights, figures.to_dict()))
    return target.region, shown, image, tuple(stored)


def _missing(read: Callable[[int], FrameExplanation | StoredAudioExplanation], plan: dict[int, tuple[str, ...]],
             methods: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """The planned (frame or second, names) not yet stored (`read(at)` reads what is stored there); a
    corrupt stored one counts as missing. A frame or second is rewritten whole: what it held is kept
    and the missing names added."""
    needed = {}
    for at, names in plan.items():
        try:
            done = read(at)
        except AdNotFound:
            needed[at] = names
            continue
        except CorruptExplanation as exc:
            log.warning("%s; recomputing it", exc)
            needed[at] = names
            continue
        have = {(a.emotion, a.method) for a in done.attributions}
        if any((n, m) not in have for n in names for m in methods):
            needed[at] = tuple(sorted(set(names) | {a.emotion for a in done.attributions}))
    return needed


def explain_ad(
    store: Store,
    ad: AdRow,
    video_path: Path,
    model: EmotionModel,
    params: ExplainParams,
    *,
    plan: dict[int, tuple[str, ...]] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> int:
    """Explain an ad's key frames (or the frames in `plan`) that the store does not hold yet.

    `video_path` must be the file the ad was indexed from (same bytes). Returns the number of
    frames explained. `on_start(n)` is told how many frames will be explained, `on_frame()` after each.
    """
    if ad.status != "ok" or ad.frames == 0:
        return 0
    if (model.spec, model.version) != (ad.model, ad.model_version):
        raise ValueError(f"ad {ad.name} was indexed with {ad.model} {ad.model_version}, not {model.version}")
    timeline = store.timeline(ad.key)
    indexed = ad.index_params
    if plan is None:
        means = {e.emotion: e.mean for e in store.emotions(ad.key)}
        plan = plan_key_frames(timeline.times, timeline.raw, timeline.smoothed, ad.labels, means, params.keyframes,
                               indexed.scoring.window_s, prominence=indexed.scoring.prominence)
    digest = explain_hash(model, params)
    needed = _missing(lambda index: store.explanation(ad.key, index, digest), plan, params.methods)
    if not needed:
        return 0
    if on_start:
        on_start(len(needed))
    done = 0
    with open_video(video_path) as video:
        for sampled in video.sample(indexed.sample_rate, indexed.max_side, keep=set(needed)):
            if abs(sampled.time_s - timeline.times[sampled.index]) > 1e-3:
                raise VideoError(f"{video_path.name} no longer matches its index (frame {sampled.index} moved)")
            result = explain_frame(model, sampled.image, timeline.boxes[sampled.index], needed[sampled.index], params,
                                   timeline.raw[sampled.index])
            if result is not None:
                region, segments, image, attributions = result
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(sampled.image, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, 90])
                store.write_explanation(
                    FrameExplanation(ad.key, sampled.index, sampled.time_s, digest, region, segments, image,
                                     {"model": model.describe(), **asdict(params)}, attributions),
                    jpeg.tobytes() if ok else None,
                )
                done += 1
            if on_frame:
                on_frame()
    return done


def explain_moment(
    store: Store,
    ad: AdRow,
    video_path: Path,
    model: EmotionModel,
    at_s: float,
    emotion: str,
    params: ExplainParams,
) -> FrameExplanation:
    """Explain the sampled frame nearest to `at_s` for one emotion (computed unless already stored)."""
    if emotion not in ad.labels:
        what = ("the loudness is a measured level (dBFS), not a model's score: nothing to explain"
                if emotion == "loudness" else f"unknown emotion {emotion!r}")
        raise ValueError(f"{what}; face emotions: {', '.join(ad.labels)}; audio signals: {', '.join(OUTPUT_NAMES)}")
    timeline = store.timeline(ad.key)
    if not len(timeline.times):
        raise ValueError(f"ad {ad.name} has no scored frames")
    index = int(np.argmin(np.abs(timeline.times - at_s)))
    if timeline.faces[index] == 0:
        with_face = [float(t) for t, n in zip(timeline.times, timeline.faces) if n != 0]
        near = sorted(with_face, key=lambda t: abs(t - at_s))[:3]
        hint = f"; nearest moments with a face: {', '.join(f'{t:.1f} s' for t in sorted(near))}" if near else ""
        raise ValueError(f"no face at {timeline.times[index]:.1f} s in {ad.name}, nothing to explain{hint}")
    explain_ad(store, ad, video_path, model, params, plan={index: (emotion,)})
    return store.explanation(ad.key, index, explain_hash(model, params))


# --- the soundtrack --------------------------------------------------------------------------------


def audio_explain_hash(audio_model: AudioModel, params: AudioExplainParams) -> str:
    """Identity of a soundtrack explanation: the audio model, the lane definitions and the method
    parameters (not which seconds were chosen)."""
    described = {"audio_model": audio_model.describe(), "lanes": describe_lanes(), **asdict(params)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def stored_audio(key: str, digest: str, found: AudioExplanation, described: dict[str, object]) -> StoredAudioExplanation:
    """What the cache keeps of a fresh explanation (`described`: its parameters and model, as stored)."""
    levels, level_range = spectrogram_levels(found.spectrogram)
    return StoredAudioExplanation(
        ad_key=key, second=found.second, explain_hash=digest, patches=found.patches, start_s=found.start_s,
        frame_edges=found.grid.frame_edges, band_edges=found.grid.band_edges, time_edges_s=found.grid.time_edges_s,
        band_hz=found.grid.band_hz, levels=levels, level_range=level_range, envelope=waveform_envelope(found.waveform),
        waveform_start_s=found.waveform_start_s,
        waveform_end_s=found.waveform_start_s + found.waveform.size / found.sample_rate,
        loudness_dbfs=found.loudness_dbfs, params=described,
        attributions=tuple(StoredAttribution(a.lane, a.method, np.asarray(a.weights, np.float64).reshape(-1),
                                             a.figures.to_dict()) for a in found.attributions),
    )


def _stored_lanes(store: Store, ad: AdRow) -> AudioLanes:
    """The ad's stored lanes, or AudioError saying why there are none."""
    found = store.audio(ad.key)
    if isinstance(found, AudioLanes):
        return found
    if found is None:
        raise AudioError(f"the audio of {ad.name} was not analysed: index without --no-audio")
    if isinstance(found, NoAudio):
        raise AudioError(f"{ad.name} has no audio track")
    raise AudioError(f"the audio analysis of {ad.name} failed: {found.reason}")


def explain_audio_seconds(
    store: Store,
    ad: AdRow,
    video_path: Path,
    audio_model: AudioModel,
    params: AudioExplainParams,
    plan: dict[int, tuple[str, ...]],
    *,
    on_start: Callable[[int], None] | None = None,
    on_moment: Callable[[], None] | None = None,
) -> int:
    """Explain the seconds of `plan` (second → signals) that the store does not hold yet, each
    stored in one transaction; the track is decoded (and its log-mel computed) once. Returns the
    number of seconds explained. Raises AudioError when the ad has no stored lanes."""
    lanes = _stored_lanes(store, ad)
    digest = audio_explain_hash(audio_model, params)
    needed = _missing(lambda second: store.audio_explanation(ad.key, second, digest), plan, params.methods)
    if not needed:
        return 0
    if on_start:
        on_start(len(needed))
    track = decode_audio(video_path)
    if not isinstance(track, AudioTrack):
        raise AudioError(f"{video_path.name} no longer has the audio track it was indexed with")
    spec = log_mel_patches(track.samples)
    described = {"audio_model": audio_model.describe(), **asdict(params)}
    done = 0
    for second, signals in needed.items():
        found = explain_audio_moment(track, audio_model, float(second), signals, params, indexed=lanes, spec=spec)
        store.write_audio_explanation(stored_audio(ad.key, digest, found, described))
        done += 1
        if on_moment:
            on_moment()
    return done


def explain_audio_ad(
    store: Store,
    ad: AdRow,
    video_path: Path,
    audio_model: AudioModel,
    params: ExplainParams,
    *,
    on_start: Callable[[int], None] | None = None,
    on_moment: Callable[[], None] | None = None,
) -> int:
    """Explain the soundtrack's key moments (`params.audio_keys`, with `params.audio`) that the store
    does not hold yet. An ad without stored lanes (no audio track, not analysed, failed) has none: 0."""
    if ad.status != "ok":
        return 0
    lanes = store.audio(ad.key)
    if not isinstance(lanes, AudioLanes):
        return 0
    plan = plan_audio_moments(lanes, params.audio_keys)
    if not plan:
        return 0
    return explain_audio_seconds(store, ad, video_path, audio_model, params.audio, plan, on_start=on_start,
                                 on_moment=on_moment)


def explain_audio_second(
    store: Store,
    ad: AdRow,
    video_path: Path,
    audio_model: AudioModel,
    at_s: float,
    signal: str,
    params: AudioExplainParams,
) -> StoredAudioExplanation:
    """Explain the soundtrack second holding `at_s` for one lane or cue (computed unless already
    stored), as stored. AudioError when the ad has no analysed soundtrack or no sound there;
    ValueError for an unknown signal (the message lists face emotions and audio signals)."""
    if signal not in OUTPUT_NAMES:
        raise ValueError(f"unknown audio signal {signal!r}; face emotions: {', '.join(ad.labels)}; "
                         f"audio signals: {', '.join(OUTPUT_NAMES)}")
    lanes = _stored_lanes(store, ad)
    second = math.floor(at_s)
    if not 0 <= second < lanes.seconds or math.isnan(float(lanes.column(signal)[second])):
        with_sound = np.flatnonzero(~np.isnan(lanes.values[:, 0])) if lanes.seconds else np.zeros(0, int)
        span = f"; it has sound in {int(with_sound[0])}–{int(with_sound[-1]) + 1} s" if with_sound.size else ""
        raise AudioError(f"no sound at {at_s:g} s in {ad.name}{span}")
    explain_audio_seconds(store, ad, video_path, audio_model, params, {second: (signal,)})
    return store.audio_explanation(ad.key, second, audio_explain_hash(audio_model, params))
