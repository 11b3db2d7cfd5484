"""Compare every stored number of two caches (e.g. the demo ads indexed with --device cpu and cuda).

    python benchmarks/compare_caches.py CACHE_A CACHE_B

Rows are matched by their primary key (an ad's key does not depend on the device, so both caches
hold the same keys). Every column is compared except bookkeeping (times of day, elapsed seconds,
also an explanation's inside its JSON figures, JPEG/PNG images): numbers and JSON numbers by their
largest absolute difference, float blobs decoded by their dtype, everything else exactly. Prints the
largest difference per table and column group with its tolerance; exit code 0 when every table is
within it, 1 otherwise (missing rows, a NaN on one side only, a text that differs, a difference over
tolerance).

Tolerances: probabilities and figures 1e-3 (GPU kernels round floats differently from the CPU's:
emocore/models/device.py's CROSS_DEVICE_TOLERANCE), face boxes and sizes 0.5 px, explanation
weights and figures 1e-2 (a ridge fit over the perturbed predictions amplifies their rounding),
soundtrack lanes 0.05 (YAMNet is an int8 graph: one output quantisation step, if the GPU's
execution provider rounds one value the other way).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np

#: Columns never compared: when and how long, not what.
SKIP = {"indexed_at", "elapsed_s", "created_at", "seen_at", "image", "mtime_ns"}
#: Keys never compared inside a JSON value: an explanation's elapsed seconds (its figures).
SKIP_KEYS = {"seconds"}
#: Float blobs and their dtype.
BLOB_DTYPES = {("ads", "figures"): np.float64, ("ads", "audio_figures"): np.float64,
               ("audio", "matrix"): np.float32, ("audio", "patch_centers"): np.float64,
               ("audio_explanations", "waveform"): np.float16}
#: (table, column) → tolerance; a table's "*" is its default; otherwise DEFAULT_TOLERANCE.
TOLERANCES = {("frames", "box"): 0.5, ("frames", "face_px"): 0.5,
              ("explanations", "*"): 1e-2, ("explained_frames", "*"): 1e-2, ("audio_explanations", "*"): 1e-2,
              ("audio", "*"): 0.05, ("ads", "audio_figures"): 0.05}
DEFAULT_TOLERANCE = 1e-3


def tolerance(table: str, column: str) -> float:
    return TOLERANCES.get((table, column), TOLERANCES.get((table, "*"), DEFAULT_TOLERANCE))


def leaves(value: object) -> tuple[list[float], list[object]]:
    """Numbers and other leaves of a decoded JSON value, in order."""
    numbers: list[float] = []
    others: list[object] = []

    def walk(v: object) -> None:
        if v is None:
            numbers.append(math.nan)
        elif isinstance(v, (bool, str)):
            others.append(v)
        elif isinstance(v, (int, float)):
            numbers.append(float(v))
        elif isinstance(v, dict):
            for k in sorted(v):
                others.append(k)
                if k not in SKIP_KEYS:
                    walk(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            others.append(v)

    walk(value)
    return numbers, others


def as_numbers(table: str, column: str, value: object) -> tuple[np.ndarray, list[object]] | None:
    """The value as numbers (plus non-numeric leaves that must match exactly), or None: compare exactly."""
    if value is None:
        return np.array([math.nan]), []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.array([float(value)]), []
    if isinstance(value, bytes):
        dtype = BLOB_DTYPES.get((table, column))
        if dtype is None or len(value) % np.dtype(dtype).itemsize:
            return None
        return np.frombuffer(value, dtype).astype(np.float64), []
    if isinstance(value, str) and value[:1] in "[{":
        try:
            numbers, others = leaves(json.loads(value))
        except ValueError:
            return None
        return np.array(numbers, dtype=np.float64), others
    return None


def compare(a_path: Path, b_path: Path) -> int:
    a, b = sqlite3.connect(f"file:{a_path}?mode=ro", uri=True), sqlite3.connect(f"file:{b_path}?mode=ro", uri=True)
    tables = [r[0] for r in a.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    failed = False
    print(f"{'table':20} {'rows':>6}  {'max abs diff':>12}  {'tolerance':>9}  worst column / problems")
    for table in tables:
        if table in ("meta", "files"):
            continue
        info = a.execute(f"PRAGMA table_info({table})").fetchall()
        columns = [row[1] for row in info]
        key = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]] or columns[:1]
        order = ", ".join(key)
        rows_a = {tuple(r[columns.index(k)] for k in key): r for r in a.execute(f"SELECT * FROM {table} ORDER BY {order}")}
        rows_b = {tuple(r[columns.index(k)] for k in key): r for r in b.execute(f"SELECT * FROM {table} ORDER BY {order}")}
        problems: list[str] = []
        if set(rows_a) != set(rows_b):
            problems.append(f"{len(set(rows_a) ^ set(rows_b))} rows in one cache only")
        worst, worst_column, over = 0.0, "", False
        nan_mismatch = text_mismatch = 0
        for k in sorted(set(rows_a) & set(rows_b), key=str):
            for i, column in enumerate(columns):
                if column in SKIP:
                    continue
                va, vb = rows_a[k][i], rows_b[k][i]
                if va == vb:
                    continue
                na, nb = as_numbers(table, column, va), as_numbers(table, column, vb)
                if na is None or nb is None or na[0].shape != nb[0].shape or na[1] != nb[1]:
                    text_mismatch += 1
                    if text_mismatch == 1:
                        problems.append(f"{column} differs (e.g. {str(va)[:40]!r} vs {str(vb)[:40]!r})")
                    continue
                xa, xb = na[0], nb[0]
                if not np.array_equal(np.isnan(xa), np.isnan(xb)):
                    nan_mismatch += 1
                    continue
                ok = ~np.isnan(xa)
                diff = float(np.max(np.abs(xa[ok] - xb[ok]))) if ok.any() else 0.0
                if diff > tolerance(table, column):
                    over = True
                if diff > worst:
                    worst, worst_column = diff, column
        if nan_mismatch:
            problems.append(f"{nan_mismatch} values present on one side only (a face or a sound found once)")
        if text_mismatch > 1:
            problems.append(f"{text_mismatch} texts differ in all")
        tol = tolerance(table, worst_column or "*")
        bad = over or bool(problems)
        failed |= bad
        print(f"{table:20} {len(rows_a):6d}  {worst:12.3g}  {tol:9.3g}  {worst_column} {'; '.join(problems)}"
              f"{'  OVER' if over else ''}")
    print("verdict: " + ("DIFFERENT (see above)" if failed else "same numbers within tolerance"))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_a", type=Path)
    parser.add_argument("cache_b", type=Path)
    args = parser.parse_args()
    dbs = [p / "emocore.sqlite" if p.is_dir() else p for p in (args.cache_a, args.cache_b)]
    for db in dbs:
        if not db.is_file():
            sys.exit(f"error: {db} is not an emocore cache")
    sys.exit(compare(*dbs))


if __name__ == "__main__":
    main()
