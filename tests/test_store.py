"""The SQLite cache: schema version, atomic ads, readers beside a writer, corruption reported."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emocore.errors import AdNotFound, CacheError
from emocore.scoring import EmotionSummary
from emocore.store import DB_NAME, NewAd, Store, Timeline


def _ad(key: str = "k1", name: str = "a.mp4", frames: int = 3) -> NewAd:
    times = np.arange(frames) * 0.5
    raw = np.array([[0.1, 0.9], [math.nan, math.nan], [0.4, 0.6]] * frames)[:frames]
    return NewAd(
        key=key, content_hash="c" * 64, params_hash="p" * 64, params={"rate": 2.0}, name=name,
        path=f"/ads/{name}", size_bytes=10, model="toy", model_version="1", labels=("happy", "sad"),
        info={"duration_s": frames * 0.5, "fps": 25.0, "width": 64, "height": 48, "rotation": 0,
              "codec": "h264", "has_audio": False},
        timeline=Timeline(times=times, raw=raw, smoothed=raw, faces=np.array([1, 0, 2] * frames)[:frames],
                          boxes=((1, 2, 3, 4, 0.99), None, (5, 6, 7, 8, 0.95)) * frames, shots=(1.0,)),
        emotions=(EmotionSummary("happy", 0.25, 0.4, 1.0, 0.0), EmotionSummary("sad", 0.75, 0.9, 0.0, 0.5)),
        face_coverage=2 / 3, dominant_raw="sad", face_frames=2, face_seconds=1.0,
    )


def test_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.write_ad(_ad(), {0: b"jpg0", 2: b"jpg2"})
    with Store(tmp_path, readonly=True) as store:
        row = store.ad("a.mp4")
        assert (row.key, row.status, row.labels, row.frames, row.dominant_raw) == ("k1", "ok", ("happy", "sad"), 3, "sad")
        tl = store.timeline("k1")
        np.testing.assert_allclose(tl.raw[0], [0.1, 0.9])
        assert np.isnan(tl.raw[1]).all()  # "no face" survives the round trip as NaN, not 0
        assert list(tl.faces) == [1, 0, 2] and tl.boxes[1] is None and tl.shots == (1.0,)
        assert {e.emotion: e.mean for e in store.emotions("k1")} == {"happy": 0.25, "sad": 0.75}
        assert store.thumbnail("k1", 2).read_bytes() == b"jpg2"
        assert store.thumbnail("k1", 1) is None
        assert store.check() == []


def test_rewrite_replaces_the_whole_ad(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.write_ad(_ad(frames=3), {0: b"old", 1: b"old", 2: b"old"})
        store.write_ad(_ad(frames=2), {0: b"new", 1: b"new"})
        assert len(store.timeline("k1").times) == 2
        assert store.thumbnail("k1", 2) is None
        assert store.thumbnail("k1", 0).read_bytes() == b"new"
        assert store.check() == []


def test_a_failed_write_leaves_the_old_ad(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.write_ad(_ad(frames=3))
        good = _ad(frames=3)
        # rows inconsistent with the frame count: the write fails after it has deleted the old rows
        broken = replace(good, timeline=replace(good.timeline, boxes=()))
        with pytest.raises(IndexError):
            store.write_ad(broken)
        assert store.ad("k1").frames == 3
        assert len(store.timeline("k1").times) == 3
        assert store.check() == []


def test_readers_see_committed_ads_while_a_writer_holds_the_cache(tmp_path: Path) -> None:
    writer = Store(tmp_path)
    writer.write_ad(_ad("k1", "a.mp4"))
    reader = Store(tmp_path, readonly=True)
    assert [a.key for a in reader.ads()] == ["k1"]
    writer.write_ad(_ad("k2", "b.mp4"))
    assert {a.key for a in reader.ads()} == {"k1", "k2"}
    reader.close()
    writer.close()


def test_lookup_by_prefix_and_missing(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.write_ad(_ad("abcdef123456"))
        assert store.ad("abcdef").key == "abcdef123456"
        with pytest.raises(AdNotFound):
            store.ad("nothing-like-it")


def test_readonly_without_a_cache_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="cli.py index"):
        Store(tmp_path / "none", readonly=True)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match="schema version 99"):
        Store(tmp_path)


def test_a_file_that_is_not_a_cache_is_reported(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match="not a database"):
        Store(tmp_path)


def test_leftover_temporary_thumbnails_are_cleaned(tmp_path: Path) -> None:
    Store(tmp_path).close()
    leftover = tmp_path / "thumbs" / ".tmp-k1-deadbeef"
    leftover.mkdir(parents=True)
    Store(tmp_path).close()
    assert not leftover.exists()


def test_a_version_1_cache_is_refused_with_the_clear_message(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # the layout of emocore's first schema, as a v1 cache has it
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('schema_version', '1');"
                         "CREATE TABLE ads (key TEXT PRIMARY KEY, dominant TEXT);")
    for readonly in (False, True):
        with pytest.raises(CacheError, match="schema version 1; this emocore reads version 3 .*new --cache folder"):
            Store(tmp_path, readonly=readonly)
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # nothing was added to the old cache
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["meta", "ads"]


def test_evidence_and_packed_figures_round_trip(tmp_path: Path) -> None:
    from emocore.norms import read_table

    with Store(tmp_path) as store:
        store.write_ad(_ad())
        store.write_ad(NewAd(key="f1", content_hash="d" * 64, params_hash="p", params={}, name="bad.mp4",
                             path="/ads/bad.mp4", size_bytes=0, model="toy", model_version="1",
                             labels=("happy", "sad"), status="failed", error="not a readable video"))
        row = store.ad("k1")
        assert (row.face_frames, row.face_seconds, row.dominant_raw, row.dominant) == (2, 1.0, "sad", "sad")
        table = read_table(store, ("key", "name")).set_index("key")
    # the ads row's packed figures are the emotions rows, field for field
    assert table.loc["k1", "mean_happy"] == 0.25 and table.loc["k1", "mean_sad"] == 0.75
    assert table.loc["k1", "peak_sad"] == 0.9 and table.loc["k1", "share_sad"] == 0.5
    assert math.isnan(table.loc["k1", "var_happy"])  # none was given
    assert math.isnan(table.loc["f1", "mean_happy"]) and table.loc["f1", "status"] == "failed"


def _reverse_columns(db: sqlite3.Connection) -> None:
    """Rebuild every table but `meta` with its columns in the opposite order (same names, types, keys;
    as rowid tables: SQLite 3.40's integrity check reports false NULLs in a WITHOUT ROWID table whose
    key columns are not its first)."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'")]
    with db:
        for table in tables:
            info = db.execute(f"PRAGMA table_info({table})").fetchall()  # cid, name, type, notnull, default, pk
            columns = [f"{name} {kind}" + (" NOT NULL" if notnull else "") + ("" if default is None else f" DEFAULT {default}")
                       for _, name, kind, notnull, default, _ in reversed(info)]
            keys = [name for *_, name, _, _, _, pk in sorted(info, key=lambda c: c[5]) if pk]
            names = ", ".join(c[1] for c in info)
            db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
            db.execute(f"CREATE TABLE {table} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)}))")
            db.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM old_{table}")
            db.execute(f"DROP TABLE old_{table}")


def test_rows_are_written_and_read_by_column_name(tmp_path: Path) -> None:
    """Every INSERT names its columns and every read goes by column name: a cache whose tables hold their
    columns in another order (same names) reads back exactly what was written."""
    from emocore.store import FrameExplanation, StoredAttribution

    with Store(tmp_path) as store:
        store.write_ad(_ad("k0", "z.mp4"))
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        _reverse_columns(db)
        assert [c[1] for c in db.execute("PRAGMA table_info(frames)")][0] == "face_px"
    db.close()
    segments = np.zeros((4, 4), dtype=np.int32)
    segments[2:] = 1
    explained = FrameExplanation("k1", 2, 1.0, "h" * 16, (1, 2, 5, 6), segments, np.full((4, 4, 3), 7, np.uint8),
                                 {"seed": 0}, (StoredAttribution("sad", "lime", np.array([0.5, -0.25]), {"score": 0.9}),))
    with Store(tmp_path) as store:
        store.write_ad(_ad(), {0: b"jpg0"})
        store.write_explanation(explained)
        store.record_file("/ads/a.mp4", status="indexed", size_bytes=10, mtime_ns=5, content_hash="c" * 64, ad_key="k1")
    with Store(tmp_path, readonly=True) as store:
        ad = store.ad("a.mp4")
        written = _ad()
        assert (ad.key, ad.name, ad.path, ad.status, ad.model, ad.labels, ad.duration_s, ad.width, ad.has_audio,
                ad.frames, ad.face_frames, ad.face_seconds, ad.dominant_raw, ad.params, ad.content_hash) == (
            "k1", "a.mp4", "/ads/a.mp4", "ok", "toy", ("happy", "sad"), 1.5, 64, False, 3, 2, 1.0, "sad",
            {"rate": 2.0}, "c" * 64)
        tl = store.timeline("k1")
        np.testing.assert_array_equal(tl.times, written.timeline.times)
        np.testing.assert_allclose(tl.raw, written.timeline.raw)
        assert tl.faces.tolist() == [1, 0, 2] and tl.boxes == written.timeline.boxes[:3] and tl.shots == (1.0,)
        assert store.emotions("k1") == written.emotions
        assert store.explained_frames("k1") == [(2, 1.0, "h" * 16)]
        assert store.explained_frames("k1")[0].time_s == 1.0
        frame = store.explanation("k1", 2)
        assert (frame.time_s, frame.region, frame.params) == (1.0, (1, 2, 5, 6), {"seed": 0})
        np.testing.assert_array_equal(frame.segments, segments)
        assert frame.attributions[0].figures == {"score": 0.9}
        np.testing.assert_allclose(frame.attributions[0].weights, [0.5, -0.25])
        found = store.file("/ads/a.mp4")
        assert (found.size_bytes, found.mtime_ns, found.content_hash, found.ad_key, found.status) == (
            10, 5, "c" * 64, "k1", "indexed")
        assert [a.key for a in store.ads()] == ["k1", "k0"] and store.check() == []
