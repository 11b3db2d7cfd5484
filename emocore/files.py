"""Files written whole or not at all, downloads that give up in time, and file hashes.

    write_bytes(path, data)            # atomic: readers see the old file or the new one, never half
    write_json(path, {"a": 1})
    save_array(path, features)         # np.save, allow_pickle=False
    with atomic_open(path) as out:     # anything that writes to a binary handle (torch.save, ...)
        torch.save(state, out)
    download(url, path, timeout=10, sha256="5c106cde")   # the name lookup counts in the timeout
    sha256_file(path)                  # a file's identity (an ad's `content_hash`)

Contract:
- Every atomic write goes to a temporary file in the target's own folder, named by `temp_path`
  (`.tmp-<random>-<name>.part`: hidden, never matching a glob of the real suffix, unique across
  processes and threads), is flushed and fsync'ed, then renamed over the target with `os.replace`.
  On any failure the temporary file is removed and the target is left as it was.
- `replace_dir` builds a whole folder the same way: the caller fills a temporary folder, which
  then takes the target's place (the old folder is moved aside and removed). `clean_temporaries`
  removes what a killed process left behind.
- `download` opens the URL in a worker thread, so that an unreachable host fails within
  `timeout` seconds even while the name lookup hangs (urlopen's own timeout does not cover it),
  checks the SHA-256 (the full digest or a prefix of at least 6 hex digits), and writes
  atomically. A timeout raises TimeoutError, a network failure the OSError urlopen raised, a
  checksum mismatch ValueError.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

#: Every temporary file or folder written here starts with this (and ends with TEMP_SUFFIX).
TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".part"
#: Bytes read at a time when hashing a file.
HASH_CHUNK = 1 << 22

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# hashes
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path | str, chunk: int = HASH_CHUNK) -> str:
    """SHA-256 (hex) of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_hash(path: Path | str) -> str:
    """The identity of an ad's content (and of a weights file): SHA-256 of the file's bytes."""
    return sha256_file(path)


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def temp_path(target: Path | str) -> Path:
    """A fresh temporary path beside `target` (same folder, so `os.replace` is atomic)."""
    target = Path(target)
    return target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}{TEMP_SUFFIX}")


def is_temporary(path: Path | str) -> bool:
    """Whether `path` is a temporary file or folder made by `temp_path` (or by an older emocore, which
    used the same prefix)."""
    return Path(path).name.startswith(TEMP_PREFIX)


@contextlib.contextmanager
def atomic_open(target: Path | str) -> Iterator[IO[bytes]]:
    """A binary handle whose bytes replace `target` only if the block finishes without an error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = temp_path(target)
    try:
        with open(partial, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_bytes(target: Path | str, data: bytes) -> Path:
    """Write `data` to `target` atomically; returns the target."""
    with atomic_open(target) as out:
        out.write(data)
    return Path(target)


def write_json(target: Path | str, value: object, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write `value` as JSON (UTF-8) to `target` atomically; returns the target."""
    return write_bytes(target, json.dumps(value, indent=indent, sort_keys=sort_keys).encode("utf-8"))


def save_array(target: Path | str, array: np.ndarray) -> Path:
    """`np.save` an array (no pickles) to `target` atomically; returns the target."""
    with atomic_open(target) as out:
        np.save(out, array, allow_pickle=False)
    return Path(target)


def copy_file(source: Path | str, target: Path | str) -> Path:
    """Copy `source` to `target` atomically; returns the target."""
    with open(source, "rb") as src, atomic_open(target) as out:
        shutil.copyfileobj(src, out, HASH_CHUNK)
    return Path(target)


@contextlib.contextmanager
def replace_dir(target: Path | str) -> Iterator[Path]:
    """A new, empty temporary folder that takes `target`'s place if the block finishes without an error.

    The files inside are written plainly (the folder is private until it is renamed into place);
    an existing `target` is moved aside, replaced, then removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = temp_path(target)
    building.mkdir()
    try:
        yield building
        if target.exists():
            old = temp_path(target)
            os.replace(target, old)
            os.replace(building, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(building, target)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)


def clean_temporaries(folder: Path | str) -> int:
    """Remove the temporary files and folders an interrupted write left in `folder`; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for leftover in folder.iterdir():
        if is_temporary(leftover):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    return removed


# --------------------------------------------------------------------------------------------
# the network, with a deadline
# --------------------------------------------------------------------------------------------


def call_with_timeout(call: Callable[[], T], timeout: float, name: str = "emocore-network") -> T:
    """`call()` run in a daemon thread; TimeoutError when it has not returned within `timeout` seconds.

    For network calls whose own timeouts do not cover the name lookup. A call that times out is
    left to finish on its own (its result is dropped); its exception, if any, is raised here.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 — handed back to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def host_answers(host: str, timeout: float, port: int = 443) -> str | None:
    """None if `host`:`port` accepts a connection within `timeout` seconds, else why not (one line)."""
    try:
        call_with_timeout(lambda: socket.create_connection((host, port), timeout=timeout).close(), timeout,
                          name="emocore-probe")
    except TimeoutError as exc:
        return str(exc)
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def download(url: str, target: Path | str, *, timeout: float, sha256: str | None = None) -> Path:
    """Fetch `url` into `target` atomically and return the target.

    The server must answer (name lookup included) within `timeout` seconds (TimeoutError);
    `sha256` is the expected digest or a prefix of it (ValueError on a mismatch, nothing written).
    """
    if sha256 is not None and len(sha256) < 6:
        raise ValueError(f"a checksum prefix needs at least 6 hex digits, got {sha256!r}")
    response = call_with_timeout(lambda: urllib.request.urlopen(url, timeout=timeout), timeout,  # noqa: S310
                                 name="emocore-download")
    digest = hashlib.sha256()
    with response, atomic_open(target) as out:
        while block := response.read(1 << 20):
            digest.update(block)
            out.write(block)
        if sha256 is not None and not digest.hexdigest().startswith(sha256.lower()):
            raise ValueError(f"the file downloaded from {url} does not match its checksum {sha256}")
    return Path(target)


__all__ = [
    "HASH_CHUNK",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "atomic_open",
    "call_with_timeout",
    "clean_temporaries",
    "content_hash",
    "copy_file",
    "download",
    "host_answers",
    "is_temporary",
    "replace_dir",
    "save_array",
    "sha256_file",
    "temp_path",
    "write_bytes",
    "write_json",
]
