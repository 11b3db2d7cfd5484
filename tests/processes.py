"""Killing an index mid-run, for the crash-safety tests."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def kill_9_when(cmd: Sequence[str], cwd: Path, db: Path, count_sql: str, timeout: float = 180) -> None:
    """Run `cmd` and SIGKILL it as soon as `count_sql` counts at least one row in the SQLite file
    `db` (read-only, while the process writes). Fails if the process ends first."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                        if con.execute(count_sql).fetchone()[0] >= 1:
                            break
                except sqlite3.Error:
                    pass  # the writer is creating the file
            time.sleep(0.05)
        assert proc.poll() is None, "the index finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
