"""Per-second soundtrack lanes on ads built at test time from real recordings muxed at known times:
laughter peaks where the laughs are and stays low elsewhere, synthesised speech does not read as
laughter, applause lights applause/cheering, silence and missing audio are told apart, and the cue
table is what the README prints.

Real recordings come from Debian packages (emocore.devtools.audio_media: fetched once, cached); the
model from `python cli.py setup`; speech from espeak-ng (apt).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emocore.audio.decode import AudioTrack, NoAudio, decode_audio
from emocore.audio.lanes import (
    CUE_NAMES, CUE_TABLE, LANE_NAMES, MIN_DBFS, AudioLanes, cue_table_markdown, describe_lanes, lanes_from_scores,
    loudness_per_second, patch_lanes, score_lanes, second_patches,
)
from emocore.devtools import audio_media

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000
LAUGH_AT, SPEECH_AT, APPLAUSE_AT, LENGTH = 1.0, 7.0, 14.0, 21.0


def _recording(name: str) -> Path:
    try:
        return audio_media.recording(name)
    except RuntimeError as exc:
        pytest.fail(f"cannot fetch the test recording {name}: {exc}")


@pytest.fixture(scope="module")
def speech_48k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About 5 s of English speech synthesised by espeak-ng, at 48 kHz mono."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install -y espeak-ng")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Hello and welcome. Today we talk about a new phone that you will love, and what it can do for you."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return audio_media.read_pcm(path, rate=RATE)


@pytest.fixture(scope="module")
def ad(tmp_path_factory: pytest.TempPathFactory, speech_48k: np.ndarray) -> dict[str, object]:
    """A 21 s MP4 (grey H.264 + 48 kHz stereo AAC): three real laughs joined (hedgewars-data, 4.1 s) at
    1 s, espeak-ng speech at 7 s, real applause (foobillardplus-data, 4.9 s) at 14 s, silence between."""
    laugh = np.concatenate([audio_media.read_pcm(_recording(n), rate=RATE)
                            for n in ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")])
    applause = audio_media.read_pcm(_recording("applause.wav"), rate=RATE)
    sound = np.zeros(int(LENGTH * RATE), np.float32)
    spans = {}
    for name, clip, at in (("laughter", laugh, LAUGH_AT), ("speech", speech_48k, SPEECH_AT),
                           ("applause", applause, APPLAUSE_AT)):
        a = int(at * RATE)
        sound[a:a + clip.size] = clip
        spans[name] = (at, at + clip.size / RATE)
    path = audio_media.audio_file(tmp_path_factory.mktemp("ad") / "ad.mp4", np.stack([sound, sound]), rate=RATE,
                                  layout="stereo", video=(64, 48, 10))
    return {"path": path, "spans": spans}


@pytest.fixture(scope="module")
def lanes(ad: dict[str, object], audio_model) -> AudioLanes:
    track = decode_audio(ad["path"])
    assert isinstance(track, AudioTrack)
    found = score_lanes(track, audio_model)
    assert isinstance(found, AudioLanes)
    return found


def _seconds(span: tuple[float, float], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Seconds wholly inside the span, and seconds at least `margin` s clear of it."""
    t = np.arange(int(LENGTH))
    inside = (t >= span[0]) & (t + 1 <= span[1])
    outside = (t + 1 <= span[0] - margin) | (t >= span[1] + margin)
    return t[inside], t[outside]


def test_lanes_cover_every_second_of_the_file(lanes: AudioLanes) -> None:
    assert lanes.names == LANE_NAMES and lanes.cue_names == CUE_NAMES == ("funny", "exciting")
    assert lanes.values.shape == (21, len(LANE_NAMES)) and lanes.cues.shape == (21, 2)
    assert lanes.times.tolist() == list(range(21)) and lanes.loudness_dbfs.shape == (21,)
    assert np.isfinite(lanes.values).all() and ((lanes.values >= 0) & (lanes.values <= 1)).all()
    assert lanes.source.codec == "aac" and lanes.source.source_rate == RATE and lanes.source.source_channels == 2
    assert lanes.source.model.startswith("yamnet w8a8-")


def test_laughter_peaks_within_a_second_of_the_laughs_and_stays_low_elsewhere(lanes: AudioLanes, ad) -> None:
    span = ad["spans"]["laughter"]
    laughter = lanes.column("laughter")
    inside, outside = _seconds(span, margin=1.0)
    peak = int(np.argmax(laughter))
    assert span[0] - 1 <= peak + 0.5 <= span[1] + 1
    assert laughter[inside].min() > 0.4 and laughter.max() > 0.8
    assert laughter[outside].max() < 0.1
    assert lanes.peaks("laughter", k=2)[0] == peak
    np.testing.assert_array_equal(lanes.column("funny"), laughter)  # funny is laughter, weight 1


def test_speech_does_not_read_as_laughter(lanes: AudioLanes, ad) -> None:
    inside, _ = _seconds(ad["spans"]["speech"], margin=1.0)
    speech, laughter = lanes.column("speech")[inside], lanes.column("laughter")[inside]
    assert len(inside) >= 3 and speech.min() > 0.5
    assert laughter.max() < 0.05


def test_applause_lights_applause_cheering_and_the_exciting_cue(lanes: AudioLanes, ad) -> None:
    span = ad["spans"]["applause"]
    applause = lanes.column("applause")
    inside, outside = _seconds(span, margin=1.0)
    assert applause[inside].min() > 0.7 and applause[outside].max() < 0.1
    assert lanes.column("laughter")[inside].max() < 0.1
    exciting = lanes.column("exciting")
    assert exciting[inside].min() > exciting[outside].max() + 0.3


def test_silence_is_quiet_and_reads_nothing(lanes: AudioLanes, ad) -> None:
    # the applause ends at 18.9 s; the patches of second 20 read 19.68–21.1 s: silence only
    assert lanes.loudness_dbfs[[19, 20]].tolist() == [MIN_DBFS, MIN_DBFS]
    assert lanes.values[20].max() < 0.05 and lanes.cues[20].max() < 0.05
    loud = lanes.loudness_dbfs[2:4]
    assert (loud > -30).all() and (loud < 0).all()


def test_a_file_without_audio_gives_no_audio_never_zeros(tmp_path: Path, audio_model) -> None:
    track = decode_audio(audio_media.video_only(tmp_path / "silent.mp4", seconds=2.0))
    found = score_lanes(track, audio_model)
    assert isinstance(found, NoAudio) and found.reason == "no audio track"


def test_a_late_stream_and_a_longer_video_leave_no_sound_as_nan(tmp_path: Path, audio_model) -> None:
    """1.5 s of laughter starting at 2.0 s of the file: seconds 0–1 have no sound at all (NaN, not 0);
    stretched to a 6 s video, seconds past the sound are NaN too."""
    laugh = audio_media.read_pcm(_recording("laugh_default.ogg"), rate=RATE)
    clip = audio_media.audio_file(tmp_path / "late.mp4", laugh[None], rate=RATE, video=(64, 48, 10), offset_s=2.0)
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack)
    found = score_lanes(track, audio_model, duration_s=6.0)
    assert isinstance(found, AudioLanes) and found.seconds == 6
    assert np.isnan(found.values[:2]).all() and np.isnan(found.loudness_dbfs[:2]).all()
    assert np.isnan(found.cues[:2]).all() and np.isnan(found.values[4:]).all()
    assert found.column("laughter")[2] > 0.5  # the laugh is found at its time on the file's timeline
    assert found.peaks("laughter") == (2,)


def test_patches_map_to_the_second_holding_their_centre() -> None:
    starts = np.arange(21) * 0.48  # a 10 s track
    groups = second_patches(starts, 10)
    centres = starts + 0.4875
    for s, patches in enumerate(groups):
        assert 2 <= len(patches) <= 3
        assert ((centres[patches] >= s) & (centres[patches] < s + 1)).all()
    assert sorted(np.concatenate(groups).tolist()) == list(range(20))  # patch 20 is centred at 10.09 s
    late = second_patches(2.0 + np.arange(3) * 0.48, 4)
    assert [g.tolist() for g in late] == [[], [], [0, 1], [2]]


def test_loudness_is_rms_dbfs_per_second() -> None:
    t = np.arange(2 * 16000) / 16000
    samples = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t[:16000]), np.zeros(16000)]).astype(np.float32)
    found = loudness_per_second(samples, 0.0, 3, 16000)
    assert found[0] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)  # −9.03 dBFS
    assert found[1] == MIN_DBFS and math.isnan(found[2])


def test_moods_read_by_contrast_and_share_out_the_music(audio_model) -> None:
    """10 s of an upbeat game theme (hedgewars-data main_theme.ogg, 70–80 s; GPL-2)."""
    upbeat = audio_media.read_pcm(_recording("hedgewars_main_theme.ogg"))[70 * 16000:80 * 16000]
    scores = audio_model.scores(upbeat)
    per_patch = patch_lanes(scores.logits, scores.class_names)
    moods = [LANE_NAMES.index(n) for n in LANE_NAMES if n.startswith("music_")]
    np.testing.assert_allclose(per_patch[:, moods].sum(axis=1), per_patch[:, LANE_NAMES.index("music")], atol=1e-9)
    track = AudioTrack(upbeat, 0.0, 16000, 1, "mono", "vorbis", 0, 0.0)
    found = lanes_from_scores(scores, track, "yamnet")
    assert found.column("music").min() > 0.9
    assert found.column("music_exciting").mean() > 5 * found.column("music_sad").mean()
    assert found.column("laughter").max() < 0.05


def test_the_cue_table_is_what_the_readme_prints(lanes: AudioLanes) -> None:
    table = {(t.cue, t.lane): t.weight for t in CUE_TABLE}
    assert table == {("funny", "laughter"): 1.0, ("exciting", "applause"): 0.5, ("exciting", "music_exciting"): 0.25,
                     ("exciting", "music_happy"): 0.15, ("exciting", "loudness"): 0.1}
    assert describe_lanes()["cues"] == [[t.cue, t.lane, t.weight] for t in CUE_TABLE]
    json.dumps(describe_lanes())  # a cache key's ingredient
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert cue_table_markdown() in readme
    # each cue is exactly its weighted sum of lanes, loudness read as 0 at −60 dBFS → 1 at 0 dBFS
    level = np.clip((lanes.loudness_dbfs.astype(np.float64) + 60) / 60, 0, 1)
    expected = (0.5 * lanes.column("applause") + 0.25 * lanes.column("music_exciting")
                + 0.15 * lanes.column("music_happy") + 0.1 * level)
    np.testing.assert_allclose(lanes.column("exciting"), expected, atol=1e-6)


def test_unknown_lane_names_the_known_ones(lanes: AudioLanes) -> None:
    with pytest.raises(ValueError, match="laughter"):
        lanes.column("laughs")


def test_the_demo_ad_carries_real_laughter_and_applause_at_their_times(carphone: Path, tmp_path: Path,
                                                                       audio_model) -> None:
    """The demo builder on the 4 s carphone clip: every frame re-encoded as H.264, a 48 kHz stereo AAC track
    with one real laugh (1.3 s) at 0 s and the applause at 2 s (cut at the end), read back by the lanes."""
    import av

    from emocore.devtools.demo_audio import build_demo_ad

    made = build_demo_ad(tmp_path / "demo.mp4", carphone, laughter_at_s=0.0, applause_at_s=2.0,
                         laughs=("laugh_mobster.ogg",))
    assert made.path.is_file() and not list(tmp_path.glob("*.partial*"))
    assert made.laughter_s == (0.0, pytest.approx(1.3, abs=0.05)) and made.applause_s[0] == 2.0
    assert made.applause_s[1] == pytest.approx(made.duration_s, abs=1e-3)
    with av.open(str(carphone)) as source:
        frames = sum(1 for _ in source.decode(video=0))
    with av.open(str(made.path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name, audio.rate, audio.layout.name) == (
            "h264", "aac", 48000, "stereo")
        assert sum(1 for _ in container.decode(video=0)) == frames
    found = score_lanes(decode_audio(made.path), audio_model)
    assert isinstance(found, AudioLanes) and found.seconds == 4
    laughter, applause = found.column("laughter"), found.column("applause")
    assert laughter[0] > 0.5 and laughter[2:].max() < 0.1
    assert applause[2:].min() > 0.5 and applause[0] < 0.1
    with pytest.raises(ValueError, match="outside"):
        build_demo_ad(tmp_path / "bad.mp4", carphone, applause_at_s=9.0)
