"""The library's bulk read (`norms.read_table`) against the ads read one by one, and its covering index
(`store.LIBRARY_INDEX`) on a schema-3 cache written before it: real SQLite, ads written by `Store.write_ad`."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_audio_queries import ad, lanes

from emocore import queries, usecases
from emocore.audio.decode import AudioFailed, NoAudio
from emocore.audio.lanes import AUDIO_SIGNALS
from emocore.norms import FIGURE_PREFIXES, read_table
from emocore.store import DB_NAME, FIGURE_FIELDS, LIBRARY_INDEX, Store, pack_figures, unpack_figures

#: The library index as the code before `ads_browse` created it (a schema-3 cache of that time has this one).
OLD_INDEX = ("CREATE INDEX ads_library ON ads (indexed_at DESC, key, status, face_frames, face_seconds, labels, "
             "figures, audio_status, audio_seconds, audio_figures)")


def _write(root: Path) -> Path:
    """Ads of every kind the read decodes: two label sets (two face models), a failed ad (no figures), each
    soundtrack status (lanes, no audio, failed, not analysed), ties in `indexed_at`."""
    with Store(root) as store:
        for i in range(6):
            store.write_ad(ad(f"bg{i}", lanes(np.full(8, 0.1 + 0.05 * i)), seconds=8 + i))
        store.write_ad(ad("silent", NoAudio()))
        store.write_ad(ad("broken", AudioFailed("12 damaged audio packets")))
        store.write_ad(ad("unread", None))
        store.write_ad(ad("crashed", None, status="failed"))
        other = ad("threelabels", lanes(np.full(5, 0.4)), seconds=5)
        store.write_ad(dataclasses.replace(other, labels=("happy", "sad", "fear"), model="other"))
        store.connection.execute("UPDATE ads SET indexed_at = 1000.0 WHERE key IN ('bg1', 'bg2', 'bg3')")  # ties
        store.connection.commit()
    return root


def _by_hand(store: Store) -> dict[str, dict[str, object]]:
    """Each ad's expected row, read ad by ad from the wide rows (the slow way)."""
    rows = store.connection.execute("SELECT key, status, face_frames, duration_s, audio_status, audio_seconds, labels, "
                                    "figures, audio_figures FROM ads").fetchall()
    out = {}
    for key, status, frames, duration, audio_status, seconds, labels, figures, audio in rows:
        import json

        names = json.loads(labels)
        row: dict[str, object] = {"status": status, "face_frames": float(frames), "duration_s": duration,
                                  "audio_status": audio_status, "audio_seconds": seconds}
        values = unpack_figures([figures], len(names))[0]
        for j, name in enumerate(names):
            for field, prefix in FIGURE_PREFIXES.items():
                row[f"{prefix}_{name}"] = values[j, FIGURE_FIELDS.index(field)]
        sound = unpack_figures([audio], len(AUDIO_SIGNALS))[0]
        for j, name in enumerate(AUDIO_SIGNALS):
            for field, prefix in FIGURE_PREFIXES.items():
                row[f"audio_{prefix}_{name}"] = sound[j, FIGURE_FIELDS.index(field)]
        out[key] = row
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("library-read"))


def test_the_bulk_read_is_the_ads_read_one_by_one(cache: Path) -> None:
    with Store(cache, readonly=True) as store:
        table = read_table(store, ("key", "name", "duration_s"))
        expected = _by_hand(store)
        order = store.connection.execute("SELECT key FROM ads ORDER BY indexed_at DESC, key").fetchall()
    assert table["key"].tolist() == [k for (k,) in order]  # newest first, ties by key
    assert set(table["audio_status"].fillna("not analysed")) == {"ok", "none", "failed", "not analysed"}
    assert table.set_index("key").loc["crashed", "status"] == "failed"
    # the three-label model's ad brings a fear column (NaN for the others); its figures are read at its width
    assert "mean_fear" in table.columns and math.isnan(table.set_index("key").loc["bg0", "mean_fear"])
    assert table.set_index("key").loc["threelabels", "mean_happy"] == pytest.approx(0.3)
    for record in table.to_dict("records"):
        for column, value in expected[record["key"]].items():
            assert _same(record[column], value), (record["key"], column, record[column], value)
    assert all(math.isnan(v) for c, v in table.set_index("key").loc["crashed"].items() if c.startswith("mean_"))


def test_fewer_soundtrack_signals_read_the_same_columns(cache: Path) -> None:
    with Store(cache, readonly=True) as store:
        every = read_table(store, ("key",))
        one = read_table(store, ("key",), audio_signals=("laughter",))
        none = read_table(store, ("key",), audio_signals=())
    assert not any(c.startswith("audio_mean") for c in none.columns)
    assert [c for c in one.columns if c.startswith("audio_") and c not in ("audio_status", "audio_seconds")] == [
        f"audio_{p}_laughter" for p in FIGURE_PREFIXES.values()]
    pd.testing.assert_frame_equal(one, every[one.columns])
    pd.testing.assert_frame_equal(none, every[none.columns])


def test_unpack_figures_reads_missing_and_odd_blobs_as_nan() -> None:
    from emocore.scoring import EmotionSummary

    blob = pack_figures(("happy", "sad"), (EmotionSummary("sad", 0.5, 0.9, 1.5, 0.25, 0.01),))
    values = unpack_figures([blob, None, b"short"], 2)
    assert values.shape == (3, 2, len(FIGURE_FIELDS))
    assert values[0, 1].tolist() == [0.5, 0.01, 0.9, 1.5, 0.25] and np.isnan(values[0, 0]).all()
    assert np.isnan(values[1:]).all()


def _plan(store: Store) -> str:
    columns = ", ".join(usecases.TABLE_COLUMNS)
    rows = store.connection.execute(f"EXPLAIN QUERY PLAN SELECT {columns}, labels, figures, audio_figures FROM ads "
                                    "ORDER BY indexed_at DESC, key").fetchall()
    return " ".join(r[-1] for r in rows)


def test_a_schema_3_cache_from_before_the_library_index(tmp_path: Path) -> None:
    root = _write(tmp_path / "old")
    with sqlite3.connect(root / DB_NAME) as db:  # the index layout the code before `ads_browse` wrote
        db.executescript(f"DROP INDEX {LIBRARY_INDEX}; {OLD_INDEX};")
    with Store(root, readonly=True) as store:  # read as it is, by a slower plan, nothing added
        old_plan = _plan(store)
        before = queries.library(store, columns=usecases.TABLE_COLUMNS)
    assert "COVERING INDEX" not in old_plan
    with sqlite3.connect(root / DB_NAME) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ads_library" in names and LIBRARY_INDEX not in names
    with Store(root) as store:  # a writable open adds the index, drops the old one, keeps every ad
        assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(root, readonly=True) as store:
        assert f"COVERING INDEX {LIBRARY_INDEX}" in _plan(store)
        after = queries.library(store, columns=usecases.TABLE_COLUMNS)
        names = {r[0] for r in store.connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert LIBRARY_INDEX in names and "ads_library" not in names
    pd.testing.assert_frame_equal(before, after)
    assert len(after) == 11 and set(after["key"]) >= {"crashed", "threelabels", "unread"}


def test_a_cache_without_soundtracks_has_its_columns_of_nan(tmp_path: Path) -> None:
    """No ad's soundtrack read (`index --no-audio`): every soundtrack column is NaN (one shared column),
    and writing into one of them changes no other (pandas copies it first)."""
    with Store(tmp_path) as store:
        for i in range(4):
            store.write_ad(ad(f"mute{i}", None))
    with Store(tmp_path, readonly=True) as store:
        table = queries.library(store)
    audio = [c for c in table.columns if c.startswith("audio_") and c not in ("audio_status", "audio_seconds",
                                                                               "audio_note", "audio_error")]
    assert len(audio) == len(AUDIO_SIGNALS) * 5 + len(queries.AUDIO_RANKABLE) * 3
    assert table[audio].isna().all().all()
    table.loc[0, "audio_mean_laughter"] = 1.0
    table["audio_score_laughter"] += 2.0
    assert table.loc[0, "audio_mean_laughter"] == 1.0 and table[audio].isna().sum().sum() == 4 * len(audio) - 1
    assert queries.rank(table, "laughter")["standing"].tolist() == ["not analysed"] * 4
