"""emocore.files: atomic writes (whole or not at all), folder swaps, downloads with a deadline and a checksum,
file hashes. Downloads are served by a real HTTP server on localhost."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emocore import files


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if files.is_temporary(p))


def test_writes_replace_the_target_and_leave_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "data.bin"
    files.write_bytes(target, b"one")
    files.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    files.write_json(tmp_path / "m.json", {"b": [1, 2], "a": "é"})
    assert json.loads((tmp_path / "m.json").read_text("utf-8")) == {"b": [1, 2], "a": "é"}
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    files.save_array(tmp_path / "f.npy", array)
    loaded = np.load(tmp_path / "f.npy", allow_pickle=False)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
    files.copy_file(target, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"two"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half-way"):
        with files.atomic_open(target) as out:
            out.write(b"new, half")
            raise RuntimeError("half-way")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError):
        files.save_array(tmp_path / "bad.npy", np.array([object()], dtype=object))  # pickles refused
    assert not (tmp_path / "bad.npy").exists() and _leftovers(tmp_path) == []


def test_temporary_names_are_hidden_unique_and_never_match_the_real_suffix(tmp_path: Path) -> None:
    names = {files.temp_path(tmp_path / "a.npy").name for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(files.TEMP_PREFIX) and n.endswith(".npy" + files.TEMP_SUFFIX) for n in names)
    assert not any(Path(n).match("*.npy") for n in names)


def test_replace_dir_swaps_a_whole_folder_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "thumbs" / "ad1"
    with files.replace_dir(target) as building:
        (building / "0.jpg").write_bytes(b"a")
    with files.replace_dir(target) as building:
        (building / "1.jpg").write_bytes(b"b")
    assert sorted(p.name for p in target.iterdir()) == ["1.jpg"]
    with pytest.raises(OSError):
        with files.replace_dir(target) as building:
            (building / "2.jpg").write_bytes(b"c")
            raise OSError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["1.jpg"]
    assert _leftovers(target.parent) == []


def test_clean_temporaries_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    files.temp_path(tmp_path / "x.bin").write_bytes(b"partial")
    files.temp_path(tmp_path / "ad").mkdir()
    (tmp_path / ".tmp-k1-deadbeef").mkdir()  # an older emocore's thumbnail folder
    (tmp_path / "keep.bin").write_bytes(b"kept")
    assert files.clean_temporaries(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]
    assert files.clean_temporaries(tmp_path / "missing") == 0


def test_sha256_file_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: more than one read
    (tmp_path / "v.mp4").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert files.sha256_file(tmp_path / "v.mp4") == files.content_hash(tmp_path / "v.mp4") == expected
    assert files.sha256_file(tmp_path / "v.mp4", chunk=1000) == expected


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------

PAYLOAD = b"weights " * 50_000


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — the standard library's name
            if self.path != "/w.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_the_checksum_and_writes_atomically(server: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    target = tmp_path / "hub" / "w.bin"
    assert files.download(f"{server}/w.bin", target, timeout=5, sha256=digest[:8]) == target
    assert target.read_bytes() == PAYLOAD
    files.download(f"{server}/w.bin", tmp_path / "full.bin", timeout=5, sha256=digest)
    with pytest.raises(ValueError, match="does not match its checksum"):
        files.download(f"{server}/w.bin", tmp_path / "bad.bin", timeout=5, sha256="0" * 64)
    assert not (tmp_path / "bad.bin").exists() and _leftovers(tmp_path) == []
    with pytest.raises(OSError):  # HTTP 404 is an HTTPError, an OSError
        files.download(f"{server}/missing.bin", tmp_path / "m.bin", timeout=5)
    with pytest.raises(ValueError, match="at least 6"):
        files.download(f"{server}/w.bin", tmp_path / "s.bin", timeout=5, sha256="abc")


def test_a_server_that_never_answers_fails_within_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """urlopen's own timeout does not cover the name lookup: the deadline holds even when it hangs."""
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: time.sleep(3))
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="0.2 s"):
        files.download("https://example.invalid/w.bin", tmp_path / "w.bin", timeout=0.2)
    assert time.perf_counter() - start < 1.5 and not (tmp_path / "w.bin").exists()


def test_host_answers_says_why_not() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert files.host_answers("127.0.0.1", 2, port=port) is None
    problem = files.host_answers("127.0.0.1", 2, port=port)  # closed now: refused
    assert isinstance(problem, str) and problem


def test_call_with_timeout_hands_back_the_value_or_the_error() -> None:
    assert files.call_with_timeout(lambda: 42, 1) == 42
    with pytest.raises(KeyError):
        files.call_with_timeout(lambda: {}["x"], 1)
