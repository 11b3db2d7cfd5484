"""The dashboard reads the cache: AppTest for its logic, and the import path `streamlit run` gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "dashboard" / "main.py")


def _app(monkeypatch: pytest.MonkeyPatch, cache: Path) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["main.py", "--cache", str(cache)])
    return AppTest.from_file(MAIN, default_timeout=60).run()


def test_library_lists_the_cache(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache)
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"carphone.mp4", "Megamind.avi", "bigbuckbunny.mp4", "<img src=x onerror=alert(1)> broken.mp4"}
    assert table.set_index("name").loc["<img src=x onerror=alert(1)> broken.mp4", "status"] == "failed"
    assert table.set_index("name").loc["carphone.mp4", "dominant"] in {
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_empty_state_gives_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, tmp_path / "no-cache")
    assert not at.exception
    assert "python cli.py index" in at.info[0].value


def test_emocore_imports_with_only_the_dashboard_on_the_path(tmp_path: Path) -> None:
    """`streamlit run dashboard/main.py` puts only dashboard/ on sys.path; main.py must cope."""
    code = (
        "import runpy, sys\n"
        f"sys.path = [{str(ROOT / 'dashboard')!r}] + [p for p in sys.path if p and 'site-packages' in p or 'lib/python' in p]\n"
        f"runpy.run_path({MAIN!r}, run_name='__main__')\n"
        "import emocore.store\n"
        "print(emocore.store.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("emocore/store.py")
