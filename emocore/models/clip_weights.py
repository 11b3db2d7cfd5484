"""CLIP weights: which checkpoint to load, found without touching the network unless allowed.

    weights = resolve_weights("ViT-B-32", "laion2b_s34b_b79k")   # a tag in the Hugging Face cache
    weights = resolve_weights("ViT-B-32", "ckpt/vit-b-32.pt")     # a local open_clip checkpoint
    weights.identity                                              # "laion2b_s34b_b79k", "file:<sha256[:12]>"

Contract:
- `weights` is a local checkpoint file (what open_clip's `pretrained=<path>` reads), or a
  pretrained tag ("laion2b_s34b_b79k") found in the Hugging Face cache, or downloaded once when
  `allow_download=True` (a connected machine; the hub's host must answer within
  `DOWNLOAD_CONNECT_TIMEOUT_S`, and `EMOCORE_OFFLINE=1` forbids it). Without weights
  `ClipWeightsMissing` names both fixes. `random_weights=True` stands for seeded random weights
  (tests only); weights carried by a classifier checkpoint (`emocore.features.StoredWeights`, any
  object with `label` and `state`) are loaded over the seeded initialisation.
- `ClipWeights.identity` names the weights in model versions and cache keys.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch

from emocore.errors import ClipWeightsMissing
from emocore.files import content_hash, host_answers

log = logging.getLogger("emocore")

DEFAULT_ARCH = "ViT-B-32"
#: The tag suggested when no weights are given (LAION-2B, the usual open ViT-B-32 weights).
SUGGESTED_TAG = "laion2b_s34b_b79k"
#: Seconds the weights host has to accept a connection (name lookup included) before a download
#: is given up: offline, huggingface_hub itself retries for ~45 s before failing.
DOWNLOAD_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ClipWeights:
    """Resolved CLIP weights: what to load and the name they go by in versions and cache keys."""

    arch: str
    identity: str
    """A tag name, "file:<sha256[:12]>", "random:<seed>", or the label of weights carried by a checkpoint."""
    path: Path | None = None
    """The checkpoint file to load; None for random (or stored) weights."""
    tag_cfg: Mapping[str, object] = field(default_factory=dict)
    """open_clip's settings for a tag (preprocessing, QuickGELU); empty otherwise."""
    seed: int = 0
    state: Mapping[str, torch.Tensor] | None = None
    """Image-tower weights carried by a checkpoint (keys "visual.*"), loaded over the seeded init."""


def _missing_message(arch: str, why: str) -> str:
    return (f"{why}: pass a local open_clip checkpoint (--clip-weights PATH) or allow the one-time "
            f"download on a connected machine (--clip-download, which fetches e.g. {arch}/{SUGGESTED_TAG})")


_FILE_IDS: dict[tuple[str, int, int], str] = {}


def _file_identity(path: Path) -> str:
    """"file:<sha256[:12]>" of a checkpoint, hashed once per process per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_IDS:
        _FILE_IDS[key] = f"file:{content_hash(path)[:12]}"
    return _FILE_IDS[key]


def _hub_files(cfg: Mapping[str, object]) -> tuple[str, list[str]] | None:
    """(repo id, file names in the order open_clip tries them) of a tag's Hugging Face entry."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = str(cfg.get("hf_hub") or "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    names = [HF_SAFE_WEIGHTS_NAME] if filename == HF_WEIGHTS_NAME else []
    if filename != HF_WEIGHTS_NAME and filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return repo, [*names, filename]


def _cached_tag_file(cfg: Mapping[str, object], cache_dir: Path | None) -> Path | None:
    """The tag's checkpoint if an earlier download left it on disk; never touches the network."""
    hub = _hub_files(cfg)
    if hub is not None:
        from huggingface_hub import try_to_load_from_cache

        repo, names = hub
        for name in names:
            found = try_to_load_from_cache(repo, name, cache_dir=None if cache_dir is None else str(cache_dir))
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    url = str(cfg.get("url") or "")
    if url:
        folder = cache_dir if cache_dir is not None else Path("~/.cache/clip").expanduser()
        candidate = folder / os.path.basename(url)
        if candidate.is_file():
            return candidate
    return None


def _download_tag(arch: str, tag: str, cfg: Mapping[str, object], cache_dir: Path | None) -> Path:
    """Fetch a tag's checkpoint (a connected machine), failing within seconds when offline."""
    if os.environ.get("EMOCORE_OFFLINE"):
        raise ClipWeightsMissing(_missing_message(arch, f"CLIP weights {arch}/{tag} are not cached and "
                                                        "EMOCORE_OFFLINE is set"))
    hub = _hub_files(cfg)
    if hub is not None:
        import huggingface_hub

        url = huggingface_hub.constants.ENDPOINT
    else:
        url = str(cfg.get("url") or "")
    host = urlparse(url).hostname or ""
    problem = host_answers(host, DOWNLOAD_CONNECT_TIMEOUT_S)
    if problem is not None:
        raise ClipWeightsMissing(_missing_message(arch, f"cannot download CLIP weights {arch}/{tag}: "
                                                        f"{host} is unreachable ({problem})"))
    log.info("downloading CLIP weights %s/%s (once; later runs read the cache)", arch, tag)
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()  # emocore never prints; the caller reports progress
    try:
        target = open_clip.download_pretrained(dict(cfg), cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as exc:  # noqa: BLE001 — any failed download gets the same one-line error
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClipWeightsMissing(_missing_message(arch, f"downloading CLIP weights {arch}/{tag} failed "
                                                        f"({first_line[:200]})")) from exc
    finally:
        if not bars_were_off:
            enable_progress_bars()
    if not target or not os.path.isfile(target):
        raise ClipWeightsMissing(_missing_message(arch, f"downloading CLIP weights {arch}/{tag} gave no file"))
    return Path(target)


def _check_arch(arch: str) -> None:
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture {arch!r}; e.g. {DEFAULT_ARCH}, ViT-B-16, ViT-L-14")
    config = open_clip.get_model_config(arch) or {}
    if config.get("text_cfg", {}).get("hf_tokenizer_name"):
        # those tokenizers come from the hub on every first use: not supported offline
        raise ValueError(f"CLIP architecture {arch!r} needs a Hugging Face tokenizer; use one with open_clip's "
                         f"built-in tokenizer such as {DEFAULT_ARCH}")


def resolve_weights(
    arch: str,
    weights: str | Path | None,
    *,
    random_weights: bool = False,
    allow_download: bool = False,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> ClipWeights:
    """Find the weights to load, downloading only when allowed; raises ClipWeightsMissing otherwise.

    `weights`: a checkpoint file, or a pretrained tag of `arch` (see `open_clip.list_pretrained`).
    A tag is looked up in the Hugging Face cache (or `cache_dir`) first, without the network.
    """
    _check_arch(arch)
    folder = None if cache_dir is None else Path(cache_dir)
    stored = getattr(weights, "state", None)
    if stored is not None:  # an emocore.features.StoredWeights: weights carried by a classifier checkpoint
        return ClipWeights(arch, str(getattr(weights, "label")), seed=seed, state=stored)
    if random_weights:
        if weights is not None:
            raise ValueError("pass either weights or random_weights=True, not both")
        return ClipWeights(arch, f"random:{seed}", seed=seed)
    if weights is None or (isinstance(weights, str) and not weights.strip()):
        raise ClipWeightsMissing(_missing_message(arch, "no CLIP weights given"))
    text = str(weights)
    tag_cfg = {} if isinstance(weights, Path) else open_clip.get_pretrained_cfg(arch, text)
    if tag_cfg:
        path = _cached_tag_file(tag_cfg, folder)
        if path is None:
            if not allow_download:
                raise ClipWeightsMissing(_missing_message(arch, f"CLIP weights {arch}/{text} are not on this machine"))
            path = _download_tag(arch, text, tag_cfg, folder)
        return ClipWeights(arch, text, path=path, tag_cfg=dict(tag_cfg), seed=seed)
    path = Path(text).expanduser()
    if path.is_file():
        return ClipWeights(arch, _file_identity(path), path=path, seed=seed)
    if isinstance(weights, Path) or os.sep in text or "/" in text or path.suffix:
        raise ClipWeightsMissing(_missing_message(arch, f"CLIP checkpoint {text} does not exist"))
    tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)[:8])
    raise ValueError(f"{text!r} is neither a checkpoint file nor a pretrained tag of {arch} (tags: {tags}, ...)")


__all__ = ["DEFAULT_ARCH", "DOWNLOAD_CONNECT_TIMEOUT_S", "SUGGESTED_TAG", "ClipWeights", "resolve_weights"]
