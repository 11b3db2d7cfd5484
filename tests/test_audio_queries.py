"""The soundtrack wherever a face emotion appears: the library table's audio columns, ranking by
laughter with evidence in seconds of sound, the audio norms, `ls --rank laughter`, `show`, the CSV
timeline, compare, profiles and the report section, on SYNTHETIC lanes written through
`Store.write_ad(NewAd(audio=AudioLanes(...)))` whose right answers are known exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from emocore import queries, usecases
from emocore.audio.decode import AudioFailed, NoAudio
from emocore.audio.lanes import AUDIO_SIGNALS, CUE_NAMES, LANE_NAMES, AudioLanes, AudioSource, cue_values
from emocore.norms import DEFAULT_MIN_AUDIO_SECONDS, K_FALLBACK, compute_norms, load_norms
from emocore.scoring import smooth, summarise
from emocore.store import NewAd, Store, Timeline

LABELS = ("happy", "sad")
runner = CliRunner()


def lanes(laughter: list[float] | np.ndarray, *, applause: float = 0.02, speech: float = 0.3,
          music_happy: float = 0.0) -> AudioLanes:
    """Per-second lanes: `laughter` per second (NaN = no sound that second), the other lanes constant."""
    laughter = np.asarray(laughter, np.float64)
    seconds = len(laughter)
    values = np.full((seconds, len(LANE_NAMES)), 0.02)
    values[:, LANE_NAMES.index("laughter")] = laughter
    values[:, LANE_NAMES.index("applause")] = applause
    values[:, LANE_NAMES.index("speech")] = speech
    values[:, LANE_NAMES.index("music")] = 0.5
    values[:, LANE_NAMES.index("music_happy")] = music_happy
    values[np.isnan(laughter)] = np.nan
    loudness = np.where(np.isnan(laughter), np.nan, -20.0)
    source = AudioSource(codec="aac", source_rate=48000, source_channels=2, source_layout="stereo", start_s=0.0,
                         duration_s=float(seconds), decode_errors=0, gap_s=0.0, model="synthetic")
    return AudioLanes(times=np.arange(seconds, dtype=np.float64), names=LANE_NAMES, values=values.astype(np.float32),
                      cue_names=CUE_NAMES, cues=cue_values(values, loudness).astype(np.float32),
                      loudness_dbfs=loudness.astype(np.float32), patch_centers_s=np.arange(seconds) + 0.5,
                      source=source)


def ad(key: str, audio: object, *, seconds: int = 10, status: str = "ok", at: float | None = None) -> NewAd:
    """An ad of `seconds` s with a face smiling at 0.3 throughout (2 frames/s) and the soundtrack `audio`."""
    common = dict(key=key, content_hash=key * 2, params_hash="p", params={}, name=f"{key}.mp4", path=f"/ads/{key}.mp4",
                  size_bytes=1, model="toy", model_version="1", labels=LABELS)
    if status == "failed":
        return NewAd(**common, status="failed", error="not a readable video")
    times = np.arange(seconds * 2) * 0.5
    raw = np.stack([np.full(len(times), 0.3), np.full(len(times), 0.7)], axis=1).astype(np.float32)
    smoothed = smooth(times, raw, 1.5)
    summary = summarise(times, raw, smoothed, LABELS, 0.5, sample_rate=2.0)
    faces = np.ones(len(times), np.int32)
    return NewAd(**common, info={"duration_s": float(seconds)}, emotions=summary.emotions,
                 timeline=Timeline(times=times, raw=raw, smoothed=smoothed, faces=faces,
                                   boxes=tuple((0, 0, 9, 9, 1.0) for _ in faces), shots=(4.0,)),
                 face_coverage=summary.face_coverage, dominant_raw=summary.dominant_raw,
                 face_frames=summary.face_frames, face_seconds=summary.face_seconds,
                 audio=audio, audio_model=None if audio is None else "synthetic")


def write_library(root: Path) -> Path:
    """12 ordinary ads (20 s of sound, laughter about 0.1) and the ads the tests are about."""
    rng = np.random.default_rng(3)
    with Store(root) as store:
        for i in range(12):
            level = 0.1 + rng.normal(0, 0.02)
            store.write_ad(ad(f"bg{i:02d}", lanes(np.clip(level + rng.normal(0, 0.05, 20), 0, 1)), seconds=20))
        store.write_ad(ad("long", lanes(np.full(30, 0.8)), seconds=30))  # laughing for 30 s at 0.8
        store.write_ad(ad("short", lanes([0.95, 0.95, 0.95]), seconds=3))  # 3 s at 0.95: ranked, on little evidence
        store.write_ad(ad("blip", lanes([0.99]), seconds=1))  # one second of sound: too little to rank
        store.write_ad(ad("silent", NoAudio()))
        store.write_ad(ad("broken", AudioFailed("12 damaged audio packets")))
        store.write_ad(ad("unread", None))
        store.write_ad(ad("crashed", None, status="failed"))
    return root


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_library(tmp_path_factory.mktemp("audio-library"))


def test_ranking_by_laughter_rests_on_seconds_of_sound(library: Path) -> None:
    with Store(library, readonly=True) as store:
        table = queries.library(store)
    by_key = table.set_index("key")
    # the raw means say "short" is the funniest; its 3 s of sound say it is not yet certain
    assert by_key.loc["short", "audio_mean_laughter"] > by_key.loc["long", "audio_mean_laughter"]
    assert by_key.loc["long", "audio_score_laughter"] > by_key.loc["short", "audio_score_laughter"]
    ranked = queries.rank(table, "laughter")
    keys = list(ranked["key"])
    assert keys[:2] == ["long", "short"]
    assert list(ranked["standing"]) == (["ranked"] * 14 + ["too little evidence", "no audio", "audio failed",
                                                            "not analysed", "failed"])
    assert keys[14:] == ["blip", "silent", "broken", "unread", "crashed"]
    assert list(ranked["rank"][:14]) == list(range(1, 15)) and ranked["rank"][14:].isna().all()
    # a second of sound counts once the minimum allows it, and then it outranks the library (not the long laugh)
    loose = list(queries.rank(table, "laughter", min_audio_seconds=1)["key"])
    assert loose.index("long") < loose.index("blip") < loose.index("bg00") and loose[15] == "silent"
    # the face ranking is untouched by the soundtrack (the 1 s ad has 2 face frames: too few)
    face = queries.rank(table, "happy")
    assert list(face["standing"]) == ["ranked"] * 17 + ["too little evidence", "failed"]
    # words for the status, and the evidence
    assert by_key.loc["long", "audio_seconds"] == 30 and by_key.loc["silent", "audio_seconds"] == 0
    assert by_key.loc["long", "audio_note"] == "30 s of sound"
    assert by_key.loc["silent", "audio_note"] == "no audio"
    assert by_key.loc["broken", "audio_note"] == "audio failed: 12 damaged audio packets"
    assert by_key.loc["unread", "audio_note"] == "not analysed"
    assert np.isnan(by_key.loc["silent", "audio_mean_laughter"])  # no audio: no numbers, never zeros
    assert by_key.loc["long", "audio_mean_loudness"] == pytest.approx(-20.0)  # dBFS
    assert "audio_score_loudness" not in table.columns


def test_audio_norms_percentiles_and_lift(library: Path) -> None:
    with Store(library, readonly=True) as store:
        norms = load_norms(store)
        table = queries.library(store)
    laughter = norms.by_audio["laughter"]
    assert norms.min_audio_seconds == DEFAULT_MIN_AUDIO_SECONDS and norms.audio_ads == 15
    assert laughter.ads == 15  # every ad with at least a second of sound; failed/none/unread ones not
    assert len(laughter.scores) == 14  # the yardstick: ads with at least 3 s of sound
    by_key = table.set_index("key")
    assert by_key.loc["long", "audio_pct_laughter"] == pytest.approx(100 * 13.5 / 14)  # the top of 14 (mid-rank)
    assert np.isnan(by_key.loc["blip", "audio_pct_laughter"])  # too little sound: no standing
    assert by_key.loc["long", "audio_lift_laughter"] == pytest.approx(by_key.loc["long", "audio_score_laughter"]
                                                                      / laughter.mean)
    assert "loudness" not in norms.by_audio and set(norms.by_audio) == set(queries.AUDIO_RANKABLE)
    # by hand: 4 ads, too few to estimate k
    hand = pd.DataFrame({"key": list("abcd"), "status": "ok", "face_frames": 0.0,
                         "audio_status": ["ok", "ok", "ok", "none"], "audio_seconds": [10.0, 10.0, 2.0, 0.0],
                         "audio_mean_laughter": [0.2, 0.6, 0.9, np.nan], "audio_var_laughter": 0.0})
    norms = compute_norms(hand, source="hand", min_audio_seconds=5)
    norm = norms.by_audio["laughter"]
    assert norm.fallback and norm.k == K_FALLBACK and norm.mean == pytest.approx((0.2 + 0.6 + 0.9) / 3)
    np.testing.assert_allclose(norms.score("laughter", [0.6, 0.9], [10, 2], audio=True),
                               [(10 * 0.6 + 10 * norm.mean) / 20, (2 * 0.9 + 10 * norm.mean) / 12])
    assert len(norm.scores) == 2
    assert norms.percentile("laughter", norm.scores[1], audio=True) == pytest.approx(75)
    assert np.isnan(norms.score("laughter", 0.5, 10))  # a face emotion of that name: none here


def test_a_face_label_named_like_a_cue_stays_the_face_emotion() -> None:
    table = pd.DataFrame(columns=["mean_funny", "score_funny", "mean_happy"])
    assert queries.resolve_signal(table, "funny") == queries.Signal("funny")
    assert queries.resolve_signal(table, "audio:funny") == queries.Signal("funny", audio=True)
    assert queries.resolve_signal(table, "laughter").score == "audio_score_laughter"
    assert queries.resolve_signal(table, "laughter").evidence == "audio_seconds"
    with pytest.raises(ValueError, match="loudness is a level in dBFS"):
        queries.resolve_signal(table, "loudness")
    with pytest.raises(ValueError, match="unknown emotion 'giggles'.*funny, happy.*laughter"):
        queries.resolve_signal(table, "giggles")


def test_filter_library_offers_funniest_first(library: Path) -> None:
    table = usecases.library_table(library)
    shown = usecases.filter_library(table, usecases.LibraryFilters(emotion="laughter"))
    assert (shown.ranked, shown.thin, shown.unheard, shown.failed) == (14, 1, 3, 1)
    assert list(shown.rows["key"]) == list(queries.rank(table, "laughter")["key"])
    top = usecases.filter_library(table, usecases.LibraryFilters(emotion="funny", score=(0.3, 1.0)))
    assert list(top.rows[top.rows["standing"] == "ranked"]["key"]) == ["long", "short"]


def test_ls_rank_laughter_lists_the_rank_order(library: Path) -> None:
    result = runner.invoke(app, ["ls", "--cache", str(library), "--rank", "laughter", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    table = usecases.library_table(library)
    assert [e["key"] for e in entries] == list(queries.rank(table, "laughter")["key"])
    first = entries[0]
    assert (first["key"], first["standing"], first["signal_kind"], first["audio_seconds"]) == ("long", "ranked",
                                                                                               "audio", 30.0)
    assert first["mean"] == pytest.approx(0.8) and first["percentile"] > 90
    assert [e["audio_note"] for e in entries[-5:-1]] == ["1 s of sound", "no audio",
                                                         "audio failed: 12 damaged audio packets", "not analysed"]
    # --min-evidence reads seconds of sound for a soundtrack signal
    result = runner.invoke(app, ["ls", "--cache", str(library), "--rank", "laughter", "--json", "--min-evidence", "1"])
    assert [e["standing"] for e in json.loads(result.stdout)].count("ranked") == 15
    result = runner.invoke(app, ["ls", "--cache", str(library), "--rank", "happy", "--min-evidence", "2.5"])
    assert result.exit_code == 2 and "whole number of face frames" in result.output
    table_text = runner.invoke(app, ["ls", "--cache", str(library), "--rank", "laughter"], env={"COLUMNS": "200"})
    assert table_text.exit_code == 0 and "seconds of sound" in table_text.output and "no audio" in table_text.output


def test_show_has_the_lanes_and_the_standing(library: Path) -> None:
    result = runner.invoke(app, ["show", "long", "--cache", str(library), "--json"])
    assert result.exit_code == 0, result.output
    audio = json.loads(result.stdout)["audio"]
    assert (audio["status"], audio["seconds"], audio["enough"]) == ("ok", 30.0, True)
    assert audio["lanes"]["time_s"] == list(range(30)) and audio["lanes"]["laughter"] == pytest.approx([0.8] * 30)
    assert set(audio["lanes"]) == {"time_s", *AUDIO_SIGNALS}
    laughter = next(s for s in audio["standing"] if s["signal"] == "laughter")
    assert laughter["mean"] == pytest.approx(0.8) and laughter["percentile"] > 90
    assert [(m["signal"], m["time_s"]) for m in audio["moments"]][:3] == [("laughter", 0.0), ("laughter", 2.0),
                                                                           ("laughter", 4.0)]
    silent = json.loads(runner.invoke(app, ["show", "silent", "--cache", str(library), "--json"]).stdout)["audio"]
    assert (silent["status"], silent["note"], silent["lanes"], silent["standing"]) == ("none", "no audio", None, [])
    text = runner.invoke(app, ["show", "long", "--cache", str(library)], env={"COLUMNS": "200"})
    assert text.exit_code == 0 and "Soundtrack per second" in text.output and "30 s of sound" in text.output
    text = runner.invoke(app, ["show", "broken", "--cache", str(library)], env={"COLUMNS": "200"})
    assert "Soundtrack: audio failed: 12 damaged audio packets" in text.output


def test_timeline_csv_and_audio_table_share_the_time_axis(tmp_path: Path) -> None:
    laughter = [0.1, 0.2, np.nan, 0.9]
    with Store(tmp_path) as store:
        store.write_ad(ad("clip", lanes(laughter, music_happy=0.3), seconds=5))
        store.write_ad(ad("mute", NoAudio(), seconds=2))
        bundle = queries.ad_bundle(store, "clip")
        mute = queries.ad_bundle(store, "mute")
    table = queries.timeline_table(bundle)
    assert {f"audio_{s}" for s in AUDIO_SIGNALS if s != "loudness"} | {"audio_loudness_dbfs"} <= set(table.columns)
    # frames at 0, 0.5, ... 4.5 s: each holds the second it falls in; second 2 had no sound; second 4 has no lanes
    expected = [0.1, 0.1, 0.2, 0.2, np.nan, np.nan, 0.9, 0.9, np.nan, np.nan]
    np.testing.assert_allclose(table["audio_laughter"], expected, atol=1e-6)
    np.testing.assert_allclose(table["audio_loudness_dbfs"][:2], [-20.0, -20.0])
    assert table["happy_raw"].tolist() == pytest.approx([0.3] * 10)  # the faces' columns as before
    csv = usecases_csv(table)
    assert "audio_laughter" in csv.splitlines()[0]
    per_second = queries.audio_table(bundle)
    assert list(per_second.columns) == list(queries.AUDIO_TABLE_COLUMNS)
    np.testing.assert_allclose(per_second["laughter"], laughter, atol=1e-6)
    assert per_second["top_mood"].tolist() == ["music_happy", "music_happy", None, "music_happy"]
    assert queries.audio_table(mute).empty and list(queries.audio_table(mute).columns) == list(
        queries.AUDIO_TABLE_COLUMNS)
    assert queries.timeline_table(mute)["audio_laughter"].isna().all()
    assert mute.audio_note == "no audio" and bundle.audio_note == "3 s of sound"


def usecases_csv(table: pd.DataFrame) -> str:
    from emocore.export import table_csv

    return table_csv(table).decode("utf-8")


def test_compare_and_profiles_by_laughter(library: Path) -> None:
    table = usecases.library_table(library)
    with Store(library, readonly=True) as store:
        bundles = [queries.ad_bundle(store, key) for key in ("long", "short", "silent")]
    comparison = usecases.compare(bundles, table, "laughter")
    assert comparison.audio and comparison.emotion == "laughter"
    assert [len(c.times) for c in comparison.curves] == [30, 3, 0]
    np.testing.assert_allclose(comparison.curves[1].values, [0.95] * 3, atol=1e-6)
    diff = comparison.differences.set_index("ad")
    assert diff.loc["long.mp4", "audio"] == "30 s of sound" and diff.loc["silent.mp4", "audio"] == "no audio"
    assert diff.loc["long.mp4", "laughter percentile"] > diff.loc["short.mp4", "laughter percentile"]
    assert diff.loc["short.mp4", "seconds of sound"] == 3 and pd.isna(diff.loc["silent.mp4", "laughter mean"])
    assert set(comparison.curves_table()["ad"]) == {"long.mp4", "short.mp4"}
    assert usecases.compare(bundles, table, "happy").audio is False  # faces as before
    means = usecases.profiles(bundles, table, ["happy", "laughter"], by="mean")
    assert means["long.mp4"]["laughter"] == pytest.approx(0.8) and "laughter" not in means["silent.mp4"]
    assert means["long.mp4"]["happy"] == pytest.approx(0.3)
    pcts = usecases.profiles(bundles, table, ["laughter"], by="pct")
    assert pcts["long.mp4"]["laughter"] > 90 and pcts["silent.mp4"] == {}


def test_report_section_carries_the_evidence(library: Path) -> None:
    report = usecases.ad_report(library, "long")
    section = usecases.audio_report_section(report)
    assert "30 s of sound" in section.text and "at least 3 s" in section.text
    rows = section.table.set_index("signal")
    assert rows.loc["laughter", "mean"] == pytest.approx(0.8) and rows.loc["laughter", "percentile"] > 90
    assert rows.loc["loudness", "mean"] == pytest.approx(-20.0) and pd.isna(rows.loc["loudness", "score"])
    silent = usecases.audio_report_section(usecases.ad_report(library, "silent"))
    assert "no audio track" in silent.text and silent.table is None
    from emocore.export import report_html

    page = report_html("r", [section], "footer", static=False)
    assert "applause/cheering" in page and "30 s of sound" in page


def test_a_real_indexed_clip_ranks_by_its_laughter(tmp_path: Path, carphone: Path, face_model, audio_model) -> None:
    """The 4 s carphone clip with a real laugh at 0–1.3 s and real applause from 2 s (a 48 kHz AAC track),
    indexed with its soundtrack next to the same clip with the soundtrack not analysed: the laughing one
    ranks by laughter with its seconds of sound, `show` has its lanes, the other is "not analysed"."""
    from emocore.devtools.demo_audio import build_demo_ad
    from emocore.indexer import index_video
    from emocore.params import IndexParams

    made = build_demo_ad(tmp_path / "laughs.mp4", carphone, laughter_at_s=0.0, applause_at_s=2.0,
                         laughs=("laugh_mobster.ogg",))
    cache = tmp_path / "cache"
    with Store(cache) as store:
        assert index_video(made.path, store, face_model, IndexParams(), audio_model=audio_model).status == "indexed"
        assert index_video(carphone, store, face_model, IndexParams()).status == "indexed"
    table = usecases.library_table(cache)
    ranked = queries.rank(table, "laughter", min_audio_seconds=1)
    assert list(ranked["name"]) == ["laughs.mp4", "carphone.mp4"]
    assert list(ranked["standing"]) == ["ranked", "not analysed"]
    assert ranked.loc[0, "audio_peak_laughter"] > 0.5 and ranked.loc[0, "audio_peak_time_laughter"] == 0.0
    report = usecases.ad_report(cache, "laughs.mp4")
    lanes = report.audio
    assert isinstance(lanes, AudioLanes) and ranked.loc[0, "audio_seconds"] == lanes.sound_seconds >= 4
    assert isinstance(lanes, AudioLanes) and lanes.column("laughter")[0] > 0.5 and lanes.column("applause")[2:].min() > 0.5
    assert ("laughter", 0.0) in [(m.signal, m.time_s) for m in report.audio_moments]
    bundle = usecases.ad_bundle(cache, report.ad.key)
    timeline = queries.timeline_table(bundle)
    early = timeline[timeline["time_s"] < 1]
    assert (early["audio_laughter"] > 0.5).all() and (timeline[timeline["time_s"] >= 2]["audio_applause"] > 0.5).all()
    # an explained second is listed with its trust figures, and its key moment says so
    from emocore.audio.explain import AudioExplainParams

    usecases.explain_audio_moment(cache, "laughs.mp4", 0.5, "laughter", AudioExplainParams(methods=("lime",)),
                                  audio_model=audio_model, figure=False)
    shown = json.loads(runner.invoke(app, ["show", "laughs.mp4", "--cache", str(cache), "--json"]).stdout)["audio"]
    assert [(x["second"], x["emotion"], x["method"]) for x in shown["explanations"]
            if x["emotion"] == "laughter"] == [(0, "laughter", "lime")]
    assert next(m for m in shown["moments"] if m["signal"] == "laughter" and m["time_s"] == 0)["explained"]
    text = runner.invoke(app, ["show", "laughs.mp4", "--cache", str(cache)], env={"COLUMNS": "200"}).output
    assert "second 0 laughter lime: " in text and "hiding the top" in text and "Soundtrack per second" in text
