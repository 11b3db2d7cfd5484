"""emocore: which moments of a video ad carry which emotion, and why the model thinks so.

The common case in one call:

    import emocore
    report = emocore.index_folder("ads/", "cache/")      # score every video into the cache
    with emocore.Store("cache/", readonly=True) as store:  # read it back
        for ad in store.ads():
            print(ad.name, ad.dominant)

Public pieces: `open_video` (video), `load_model` (models), `smooth`/`summarise` (scoring),
`Store` (cache), `index_folder`/`index_video` (indexer), `explain_ad`/`explain_moment` (LIME and
SHAP into the cache), `classify_faces` (the FER port on already-cropped faces); `emocore.render`
draws overlays, `emocore.charts` builds Plotly figures, `emocore.export` writes files and reports. Heavy modules (torch) are imported on first use, so reading the cache
stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "open_video": "emocore.video",
    "find_videos": "emocore.video",
    "load_model": "emocore.models",
    "smooth": "emocore.scoring",
    "summarise": "emocore.scoring",
    "Store": "emocore.store",
    "index_folder": "emocore.indexer",
    "index_video": "emocore.indexer",
    "IndexParams": "emocore.indexer",
    "classify_faces": "emocore.models.fer",
    "ExplainParams": "emocore.explain",
    "explain_ad": "emocore.explain",
    "explain_moment": "emocore.explain",
    "fetch_weights": "emocore.provision",
    "fetch_demo_ads": "emocore.assets",
}

if TYPE_CHECKING:
    from emocore.assets import fetch_demo_ads
    from emocore.explain import ExplainParams, explain_ad, explain_moment
    from emocore.indexer import IndexParams, index_folder, index_video
    from emocore.models import load_model
    from emocore.models.fer import classify_faces
    from emocore.provision import fetch_weights
    from emocore.scoring import smooth, summarise
    from emocore.store import Store
    from emocore.video import find_videos, open_video


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'emocore' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
