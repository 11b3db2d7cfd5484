"""The soundtrack in the dashboard (AppTest): a SYNTHETIC cache written through Store, whose ads have
lanes with exactly known values, no audio track, a failed soundtrack, or none analysed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from emocore import charts, queries
from emocore.audio.decode import AudioFailed, NoAudio
from emocore.audio.lanes import CUE_NAMES, LANE_NAMES, AudioLanes, AudioSource, cue_values
from emocore.scoring import summarise
from emocore.store import NewAd, Store, StoredAttribution, StoredAudioExplanation, Timeline
from emocore.trust import Deletion, TrustFigures, describe
from pages import ad_keys as _keys, figure as _figure, open_page as _app

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def synthetic_lanes(seconds: int, **lanes: dict[int, float]) -> AudioLanes:
    """Lanes of `seconds` seconds of sound: every lane 0.02 but where `lanes` says (lane -> {second: value});
    speech 0.3 throughout, loudness -20 dBFS."""
    values = np.full((seconds, len(LANE_NAMES)), 0.02, np.float32)
    values[:, LANE_NAMES.index("speech")] = 0.3
    for name, at in lanes.items():
        for second, value in at.items():
            values[second, LANE_NAMES.index(name)] = value
    loudness = np.full(seconds, -20.0, np.float32)
    source = AudioSource(codec="aac", source_rate=48000, source_channels=2, source_layout="stereo", start_s=0.0,
                         duration_s=float(seconds), decode_errors=0, gap_s=0.0, model="synthetic")
    return AudioLanes(times=np.arange(seconds, dtype=np.float64), names=LANE_NAMES, values=values,
                      cue_names=CUE_NAMES, cues=cue_values(values, loudness).astype(np.float32),
                      loudness_dbfs=loudness, patch_centers_s=np.arange(seconds * 2) * 0.48 + 0.4875, source=source)


#: name -> the ad's soundtrack
SOUNDTRACKS = {
    "long laugh.mp4": synthetic_lanes(12, laughter={3: 0.8, 4: 0.9, 5: 0.85, 6: 0.8}, applause={9: 0.7},
                                      music={1: 0.6, 2: 0.6}, music_happy={1: 0.5, 2: 0.5}),
    "one laugh.mp4": synthetic_lanes(12, laughter={5: 0.97}),
    "short clip.mp4": synthetic_lanes(2, laughter={1: 0.99}),
    "silent film.mp4": NoAudio(),
    "broken sound.mp4": AudioFailed("12 damaged audio packets"),
    "not analysed.mp4": None,
}


def write_audio_cache(root: Path) -> Path:
    """The cache of SOUNDTRACKS: one ad each, 12 s of synthetic faces at 2 frames/s, shots at 4 and 8 s."""
    times = np.arange(24) / 2.0
    with Store(root) as store:
        for i, (name, audio) in enumerate(SOUNDTRACKS.items()):
            raw = np.zeros((len(times), len(LABELS)))
            raw[:, LABELS.index("happy")] = 0.3 + 0.05 * i
            raw[:, LABELS.index("neutral")] = 0.7 - 0.05 * i
            summary = summarise(times, raw, raw, LABELS, 0.5, sample_rate=2.0)
            store.write_ad(NewAd(
                key=f"sound{i:02d}", content_hash=f"{i:064d}", params_hash="p" * 64, params={}, name=name,
                path=f"/nowhere/{name}", size_bytes=1, model="fer", model_version="synthetic", labels=LABELS,
                info={"duration_s": 12.0, "has_audio": not isinstance(audio, NoAudio)},
                timeline=Timeline(times=times, raw=raw, smoothed=raw, faces=np.ones(len(times), np.int64),
                                  boxes=((0.0, 0.0, 64.0, 64.0, 0.99),) * len(times), shots=(4.0, 8.0)),
                emotions=summary.emotions, face_coverage=summary.face_coverage, dominant_raw=summary.dominant_raw,
                face_frames=summary.face_frames, face_seconds=summary.face_seconds,
                audio=audio, audio_model=None if audio is None else "yamnet synthetic",
            ))
    return root


@pytest.fixture(scope="module")
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio_cache(tmp_path_factory.mktemp("audio-cache"))






def _texts(at: AppTest) -> str:
    """Every text element's value, joined (Markdown escapes removed)."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "subheader", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts).replace("\\", "")


def test_ad_page_draws_the_soundtrack_under_the_faces_on_one_time_axis(monkeypatch: pytest.MonkeyPatch,
                                                                      audio_cache: Path) -> None:
    key = _keys(audio_cache)["long laugh.mp4"]
    at = _app(monkeypatch, audio_cache, "views/ad.py", ad=key, signals="all")  # every signal, not the top three
    assert not at.exception
    figure = _figure(at)
    by_name = {t["name"]: t for t in figure["data"]}
    laughter = by_name["laughter"]
    lanes = SOUNDTRACKS["long laugh.mp4"]
    # steps per second on the second panel: x = each second's start and the last second's end
    assert laughter["yaxis"] == "y2" and laughter["line"]["shape"] == "hv"
    assert laughter["x"] == [float(t) for t in range(13)]
    assert np.allclose(laughter["y"][:12], lanes.column("laughter"))
    assert by_name["happy"].get("yaxis", "y") == "y"
    assert by_name["loudness (dBFS)"]["yaxis"] == "y3"
    assert figure["layout"]["yaxis3"]["title"]["text"] == "dBFS"
    # the panels share the time axis, and each shot boundary crosses all of them
    assert figure["layout"]["xaxis"].get("matches") == "x3" or figure["layout"]["xaxis2"].get("matches") == "x3"
    shots = [s for s in figure["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    assert sorted(s["x0"] for s in shots) == [4.0, 8.0] and all(s["yref"] == "paper" for s in shots)
    # the peaks: laughter's best second first found by AudioLanes.peaks, marked in the middle of its second
    peaks = by_name["laughter/cheering peaks"] if "laughter/cheering peaks" in by_name else by_name["laughter peaks"]
    assert sorted(peaks["customdata"]) == sorted(lanes.peaks("laughter"))
    assert 4.5 in peaks["x"]
    # the music's mood in its hover
    music = by_name["music"]
    assert any("happy music" in str(c) for c in music["customdata"][1:3])
    # the evidence: seconds of sound
    assert "12 s of sound in the 12 s read" in _texts(at)


@pytest.mark.parametrize("name, words", [("silent film.mp4", "no audio track"),
                                         ("broken sound.mp4", "audio failed: 12 damaged audio packets"),
                                         ("not analysed.mp4", "not analysed (indexed with --no-audio)")])
def test_an_ad_without_lanes_says_why_in_their_place(monkeypatch: pytest.MonkeyPatch, audio_cache: Path,
                                                    name: str, words: str) -> None:
    at = _app(monkeypatch, audio_cache, "views/ad.py", ad=_keys(audio_cache)[name])
    assert not at.exception
    figure = _figure(at)
    assert not any(t.get("yaxis") == "y3" for t in figure["data"])
    notes = [a["text"] for a in figure["layout"].get("annotations", [])]
    assert any(words in n for n in notes)
    texts = _texts(at)
    assert words in texts.lower() or words in texts
    assert "None" not in texts


def _library(cache: Path) -> pd.DataFrame:
    with Store(cache, readonly=True) as store:
        return queries.library(store)


def test_funniest_first_ranks_by_laughter_as_queries_rank_does(monkeypatch: pytest.MonkeyPatch,
                                                              audio_cache: Path) -> None:
    library = _library(audio_cache)
    at = _app(monkeypatch, audio_cache)
    assert not at.exception
    at.button(key="lib-funniest").click().run()
    assert not at.exception and at.selectbox(key="lib-emotion").value == "audio:laughter"
    assert at.query_params["emotion"] == "audio:laughter" and at.query_params["per"] == "sound"
    table = at.dataframe[0].value
    expected = queries.rank(library, "audio:laughter")
    assert table["name"].tolist() == expected["name"].tolist()
    assert np.allclose(table["rank score"], expected["audio_score_laughter"], equal_nan=True)
    # evidence: the long laugh outranks one louder laugh, the 2-second clip has too little sound to rank
    assert table["name"].tolist()[:2] == ["long laugh.mp4", "one laugh.mp4"]
    rows = table.set_index("name")
    assert pd.isna(rows.loc["short clip.mp4", "rank"]) and rows.loc["short clip.mp4", "sound (s)"] == 2
    assert rows.loc["long laugh.mp4", "sound (s)"] == 12
    # the soundtrack in words, never "None"
    assert rows.loc["silent film.mp4", "audio"] == "no audio"
    assert rows.loc["broken sound.mp4", "audio"] == "audio failed: 12 damaged audio packets"
    assert rows.loc["not analysed.mp4", "audio"] == "not analysed"
    assert not any("None" in str(v) for v in table["audio"])
    assert table["name"].tolist()[-3:] == ["silent film.mp4", "broken sound.mp4", "not analysed.mp4"]
    assert any("no soundtrack to rank (no audio, audio failed, not analysed): 3 ads" in c.value for c in at.caption)
    # the minimum sound: 2 s ranks the short clip too, at the link's value
    at.number_input(key="lib-evidence-sound").set_value(2.0).run()
    expected = queries.rank(library, "audio:laughter", min_audio_seconds=2.0)
    assert at.dataframe[0].value["name"].tolist() == expected["name"].tolist()
    assert not pd.isna(at.dataframe[0].value.set_index("name").loc["short clip.mp4", "rank"])
    # the emotion mix stays the faces'
    mix = _figure(at)
    assert "Dominant emotion" in mix["layout"]["title"]["text"]


def test_every_soundtrack_signal_can_rank_and_a_link_restores_it(monkeypatch: pytest.MonkeyPatch,
                                                                 audio_cache: Path) -> None:
    library = _library(audio_cache)
    at = _app(monkeypatch, audio_cache, emotion="audio:applause", per="sound", evidence="3")
    assert not at.exception
    options = at.selectbox(key="lib-emotion").options
    assert "soundtrack: applause/cheering" in options and "soundtrack: funny (laughter)" in options
    assert "happy" in options and "soundtrack: loudness" not in options  # a level in dBFS: shown, not ranked
    assert at.dataframe[0].value["name"].tolist() == queries.rank(library, "audio:applause")["name"].tolist()
    assert at.dataframe[0].value["name"].iloc[0] == "long laugh.mp4"
    # a face emotion again: face frames are the evidence, the soundtrack columns stay
    at.selectbox(key="lib-emotion").set_value("happy").run()
    table = at.dataframe[0].value
    assert table["name"].tolist() == queries.rank(library, "happy")["name"].tolist()
    assert list(table.columns).index("face frames") < list(table.columns).index("sound (s)")


def test_compare_by_a_soundtrack_signal_draws_curves_per_second(monkeypatch: pytest.MonkeyPatch,
                                                                 audio_cache: Path) -> None:
    keys = _keys(audio_cache)
    pair = f"{keys['long laugh.mp4']},{keys['silent film.mp4']},{keys['one laugh.mp4']}"
    at = _app(monkeypatch, audio_cache, "views/compare.py", ads=pair, emotion="audio:laughter")
    assert not at.exception
    assert at.selectbox(key="cmp-emotion").value == "audio:laughter"
    overlay = _figure(at, 0)
    curves = {t["name"]: t for t in overlay["data"]}
    long_laugh = curves["long laugh.mp4"]
    assert long_laugh["line"]["shape"] == "hv" and long_laugh["x"] == [float(t) for t in range(13)]
    assert np.allclose(long_laugh["y"][:12], SOUNDTRACKS["long laugh.mp4"].column("laughter"))
    assert curves["silent film.mp4"]["x"] == []
    assert "per second" in overlay["layout"]["yaxis"]["title"]["text"]
    differences = at.dataframe[0].value.set_index("ad")
    assert differences.loc["silent film.mp4", "audio"] == "no audio"
    assert differences.loc["long laugh.mp4", "seconds of sound"] == 12
    assert "no audio" in _texts(at) and "None" not in _texts(at)
    # the soundtrack peaks link to the moment on the Ad page
    links = [link.proto.page for link in at.get("page_link")] if at.get("page_link") else []
    assert len(links) >= 2
    # back to a face emotion
    at.selectbox(key="cmp-emotion").set_value("happy").run()
    assert not at.exception and _figure(at, 0)["layout"]["title"]["text"] == "happy over time"


def _stored_explanation(key: str, second: int, signal: str) -> StoredAudioExplanation:
    """A SYNTHETIC stored explanation of one soundtrack second (6 time slices × 4 band groups)."""
    deletion = (Deletion(0.1, 1.2, 0.3, 0.2, 97.0, 4.5, 32, 0.11, 0.12), Deletion(0.2, 2.0, 0.6, 0.3, 95.0, 4.7, 32, 0.21, 0.22))

    def figures(method: str) -> dict[str, object]:
        lime = method == "lime"
        return TrustFigures(
            method=method, score=2.1, frame_score=2.1, base=-3.0, samples=200, seed=0, seconds=0.5, segments=24,
            deletion=deletion, stability=0.8 if lime else 0.7, stability_half=0.6, agreement=0.5,
            other_stability=0.7 if lime else 0.8, fit_r2=0.6 if lime else None, fit_r2_null=0.1 if lime else None,
            fit_r2_heldout=0.4 if lime else None,
        ).to_dict()

    frames = 144
    rng = np.random.default_rng(0)
    return StoredAudioExplanation(
        ad_key=key, second=second, explain_hash="h" * 16, patches=(8, 9), start_s=second - 0.2,
        frame_edges=np.linspace(0, frames, 7).astype(np.int64), band_edges=np.array([0, 16, 32, 48, 64]),
        time_edges_s=second - 0.2 + np.linspace(0, frames, 7) * 0.01,
        band_hz=np.array([[125.0, 400.0], [420.0, 1300.0], [1350.0, 3300.0], [3400.0, 7500.0]]),
        levels=rng.integers(0, 256, (frames, 64), dtype=np.uint8), level_range=(float(np.log(0.001)), 3.0),
        envelope=np.column_stack([-np.ones(200), np.ones(200)]).astype(np.float16) * 0.5,
        waveform_start_s=second - 0.2, waveform_end_s=second + 1.24, loudness_dbfs=-20.0,
        params={"space": "log-odds"},
        attributions=tuple(StoredAttribution(signal, m, np.linspace(-1, 1, 24), figures(m)) for m in ("lime", "shap")),
    )


def test_the_moment_view_shows_a_stored_soundtrack_explanation_or_offers_one(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    cache = write_audio_cache(tmp_path / "cache")
    key = _keys(cache)["long laugh.mp4"]
    with Store(cache) as store:
        store.write_audio_explanation(_stored_explanation(key, 4, "laughter"))
    # a peak's button selects its second and signal
    at = _app(monkeypatch, cache, "views/ad.py", ad=key)
    assert not at.exception
    at.button(key="ad-audio-peak-4").click().run()
    assert at.query_params["t"] == "4.500" and at.query_params["audio"] == "laughter"
    assert at.selectbox(key="ad-audio-signal").value == "laughter"
    texts = _texts(at)
    assert "Second **4–5 s**: laughter **0.90**" in texts
    # the stored explanation: its figure, and both methods' trust figures in emocore.trust's words
    shown = "\n".join(m.value.replace("\\", "") for m in at.markdown)
    stored = _stored_explanation(key, 4, "laughter")
    for method in ("lime", "shap"):
        lines = describe(stored.attribution("laughter", method).trust)
        assert lines[0] in shown and lines[-1] in shown
    assert len(at.get("image")) >= 1
    # a second without a stored explanation: the command and the button
    at = _app(monkeypatch, cache, "views/ad.py", ad=key, t="9.5", audio="applause")
    assert not at.exception
    assert any("--emotion applause" in c.value and "--at 9.50" in c.value for c in at.code)
    assert at.button(key="ad-audio-explain-now") is not None


def _panel(name: str) -> charts.AudioPanel:
    lanes = SOUNDTRACKS[name]
    return charts.AudioPanel(times=lanes.times, loudness_dbfs=lanes.loudness_dbfs, lanes=tuple(
        charts.AudioLane(n, n, lanes.column(n), lanes.peaks(n)) for n in ("laughter", "applause", "speech")))


@pytest.mark.slow
def test_the_combined_timeline_exports_as_png_and_svg() -> None:
    """Static export (the dashboard's PNG/SVG buttons) of the faces-and-soundtrack figure: every panel drawn."""
    import cv2

    from emocore import export

    if export.browser_path() is None:
        pytest.fail("no Chromium browser: install it with `apt-get install chromium` or set BROWSER_PATH")
    times = np.arange(24) / 2.0
    smoothed = np.full((24, 2), 0.4)
    fig = charts.timeline_figure("faces and sound", times, smoothed, smoothed, ["happy", "sad"], shots=(4.0,),
                                 audio=_panel("long laugh.mp4"))
    png = export.figure_bytes(fig, "png", scale=1.0)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 1100 and image.mean() > 200  # white, not the dark template
    svg = export.figure_bytes(fig, "svg").decode()
    assert svg.startswith("<svg") and "laughter" in svg and "dBFS" in svg and "faces: probability" in svg


def test_the_timeline_without_audio_is_the_faces_alone() -> None:
    """No `audio`: one panel, as before the soundtrack (reports and callers that pass none)."""
    times = np.arange(6) / 2.0
    smoothed = np.full((6, 2), 0.4)
    fig = charts.timeline_figure("faces", times, smoothed, smoothed, ["happy", "sad"], shots=(1.0,))
    assert "yaxis2" not in fig.to_dict()["layout"] and fig.layout.yaxis.range == (0, 1.08)
    note = charts.timeline_figure("faces", times, smoothed, smoothed, ["happy", "sad"],
                                  audio=charts.AudioPanel(note="no audio track"))
    assert [a.text for a in note.layout.annotations] == ["soundtrack: no audio track"]
    assert all(t.yaxis in (None, "y") for t in note.data)
