"""What an index is made with: its parameters as typed records that round-trip through the cache.

    params = IndexParams(sample_rate=4.0, scoring=ScoringParams(window_s=2.0))
    IndexParams.from_dict(dataclasses.asdict(params)) == params     # always
    store.ad("ad.mp4").index_params                                 # what an ad was indexed with

Every ad's row in the cache keeps the parameters it was made with as JSON
(`{"model": <the model's describe()>, "index": asdict(IndexParams), "schema": <schema version>}`, see
`emocore.indexer.params_hash`); `emocore.store.AdRow.index_params` reads the "index" part back as an
`IndexParams`, so no caller digs into the JSON.

Reading (`from_dict`) is tolerant of what a record lacks and strict about what it does not know:
- a field missing from the stored record (an ad written before the field existed, or a row written
  without parameters) takes the value every ad had before that field was added: its default, or,
  for a field whose default changed what is done, the value its metadata names `before` (e.g.
  `ShotParams.every_frame`: True, as every ad was indexed before the field existed);
- an unknown key (a record written by a newer emocore with a setting this one cannot honour) or a
  value of the wrong type is a `ParamsError` with a one-line message, never silently read as if the
  ad had been made with the defaults.

This module is light (the standard library only): the store, the indexer, the explainers and the
cache readers all import it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from emocore.errors import ParamsError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Record = TypeVar("_Record", bound="DataclassInstance")


@dataclass(frozen=True)
class ScoringParams:
    """How per-frame probabilities become a signal, figures and peaks (`emocore.scoring`)."""

    window_s: float = 1.5
    """Width of the centred moving average, in seconds (0 or less: no smoothing)."""
    threshold: float = 0.5
    """Level above which a moment counts as carrying an emotion (for `share_above`)."""
    prominence: float = 0.1
    """How far (in probability) a peak of the smoothed signal must rise above the higher of the
    lowest points on either side before a higher one (scipy's prominence) to count as a moment."""

    def __post_init__(self) -> None:
        if not 0 <= self.prominence <= 1:
            raise ValueError(f"prominence must be in [0, 1], got {self.prominence}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "ScoringParams":
        """The record `dataclasses.asdict` made of one (missing fields: defaults; ParamsError otherwise)."""
        return _from_dict(cls, data, "scoring parameters")


@dataclass(frozen=True)
class ShotParams:
    """How shot boundaries are found (`emocore.shots`)."""

    threshold: float = 27.0
    """ContentDetector's threshold on the mean HSV change between frames (0–255 scale)."""
    min_shot_s: float = 0.5
    """Cuts closer together than this are merged (flashes are not shots)."""
    every_frame: bool = field(default=False, metadata={"before": True})
    """Decode every frame for the detector. False: it sees the frames the decoder must decode anyway
    (the sampled ones and those others are predicted from), and frames nobody needs are not decoded
    (about half of an H.264 ad's, 40 % of the pass's decoding CPU); a cut whose first frame was not
    decoded is found at the next decoded one (on the demo ads and test clips: the same cuts, or one
    frame later). The sampled frames, and so every score, are the same either way."""

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "ShotParams":
        """The record `dataclasses.asdict` made of one (missing fields: defaults; ParamsError otherwise)."""
        return _from_dict(cls, data, "shot parameters")


@dataclass(frozen=True)
class IndexParams:
    """Everything, besides the model, that changes what an index writes (part of every ad's key)."""

    sample_rate: float = 2.0
    """Frames scored per second of video."""
    max_side: int = 1280
    """Long side, in pixels, of the frames the model sees (larger videos are scaled down)."""
    scoring: ScoringParams = field(default_factory=ScoringParams)
    shots: ShotParams = field(default_factory=ShotParams)
    thumb_width: int = 240

    def __post_init__(self) -> None:
        if not 0 < self.sample_rate <= 30:
            raise ValueError(f"sample rate must be in (0, 30] frames per second, got {self.sample_rate}")
        if self.max_side < 64:
            raise ValueError(f"max side must be at least 64 pixels, got {self.max_side}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "IndexParams":
        """The record `dataclasses.asdict` made of one, nested records included, e.g. the "index"
        part of an ad's stored parameters (missing fields: defaults; ParamsError otherwise)."""
        return _from_dict(cls, data, "index parameters")


def _from_dict(cls: type[_Record], data: object, what: str) -> _Record:
    """Build the frozen dataclass `cls` from a plain mapping (JSON's types), nested dataclasses included."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"{what} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ParamsError(f"{what} hold {', '.join(map(repr, unknown))}, unknown to this emocore "
                          "(written by a newer version?)")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # what a record without the field was made with
        if "before" in f.metadata:
            values[f.name] = f.metadata["before"]
        elif isinstance(hints[f.name], type) and is_dataclass(hints[f.name]):
            values[f.name] = _from_dict(hints[f.name], {}, what)
    for name, value in data.items():
        kind = hints[name]
        if isinstance(kind, type) and is_dataclass(kind):
            values[name] = _from_dict(kind, value, f"{what}: {name}")
        elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = float(value)
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            values[name] = value
        elif kind is bool and isinstance(value, bool):
            values[name] = value
        else:
            raise ParamsError(f"{what}: {name} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ParamsError(f"{what}: {exc}") from exc


__all__ = ["IndexParams", "ParamsError", "ScoringParams", "ShotParams"]
