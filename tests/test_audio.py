"""The soundtrack model: YAMNet's front end against an independent reference, YAMNet's own acceptance
tests, real recordings (laughter, applause, synthesised speech), and decoding every odd kind of track.

Real recordings come from Debian packages (emocore/devtools/audio_media.py: fetched once, cached); the model's
files from `python cli.py setup`; speech from espeak-ng (apt).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from emocore.devtools import audio_media
from emocore.audio import frontend
from emocore.audio.decode import AudioDecoder, AudioTrack, NoAudio, audio_decoder, decode_audio
from emocore.errors import AudioError

RATE = frontend.SAMPLE_RATE

# --- fixtures: one per asset ------------------------------------------------------------------------


def _recording(name: str) -> Path:
    try:
        return audio_media.recording(name)
    except RuntimeError as exc:
        pytest.fail(f"cannot fetch the test recording {name}: {exc}")


@pytest.fixture(scope="session")
def laughs() -> list[Path]:
    """Three real single-voice laughs, 1.1–1.7 s each (hedgewars-data voices/*/Laugh.ogg, GFDL-1.3)."""
    return [_recording(n) for n in ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")]


@pytest.fixture(scope="session")
def applause() -> Path:
    """4.9 s of real applause, 44.1 kHz stereo WAV (foobillardplus-data data/applause.wav, GPL-2)."""
    return _recording("applause.wav")


@pytest.fixture(scope="session")
def music() -> dict[str, np.ndarray]:
    """30 s of an upbeat and of a calm game theme at 16 kHz (hedgewars-data Data/Music: main_theme.ogg
    70–100 s, Nature.ogg 64–94 s; GPL-2)."""
    return {
        "upbeat": audio_media.read_pcm(_recording("hedgewars_main_theme.ogg"))[70 * RATE:100 * RATE],
        "calm": audio_media.read_pcm(_recording("hedgewars_nature.ogg"))[64 * RATE:94 * RATE],
    }


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 5 s of English speech synthesised by espeak-ng (a WAV, 22.05 kHz mono)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install -y espeak-ng (the README's test command does)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Hello and welcome. Today we talk about a new phone that you will love, and what it can do for you."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def tone_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s MP4: grey H.264 video + 48 kHz stereo AAC, 440 Hz on the left and 880 Hz on the right."""
    folder = tmp_path_factory.mktemp("tone")
    left, right = audio_media.tone(2.0, 48000, 440), audio_media.tone(2.0, 48000, 880)
    return audio_media.audio_file(folder / "tone.mp4", np.stack([left, right]), rate=48000, layout="stereo",
                                  video=(64, 48, 10))

# --- the front end ----------------------------------------------------------------------------------


def reference_mel_matrix() -> np.ndarray:
    """tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500), band by band, bin by bin."""
    def mel(hz: float) -> float:
        return 1127.0 * np.log(1.0 + hz / 700.0)

    low, high = mel(125.0), mel(7500.0)
    step = (high - low) / 65  # 66 evenly spaced edges
    out = np.zeros((257, 64))
    for k in range(1, 257):  # bin 0 (DC) stays zero, as in HTK
        m = mel(k * 8000.0 / 256)
        for band in range(64):
            left, centre, right = low + band * step, low + (band + 1) * step, low + (band + 2) * step
            out[k, band] = max(0.0, min((m - left) / (centre - left), (right - m) / (right - centre)))
    return out


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """YAMNet's features.py done the TF-Lite way: explicit frames, a DFT matrix with the frame centred
    in the 512 points (only the phase differs from tf.signal.stft's end padding), float64."""
    x = np.asarray(waveform, np.float64)
    # pad_waveform: at least 15,600 samples, then whole 7,680-sample hops
    n = max(x.size, 15600)
    n = 15600 + int(np.ceil((n - 15600) / 7680)) * 7680
    x = np.concatenate([x, np.zeros(n - x.size)])
    count = 1 + (n - 400) // 160
    frames = np.stack([x[i * 160:i * 160 + 400] for i in range(count)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(0, 1.0, 1.0 / 400))
    padded = np.zeros((count, 512))
    padded[:, 56:456] = frames * window
    dft = np.exp(-2j * np.pi * np.outer(np.arange(512), np.arange(257)) / 512)
    magnitude = np.abs(padded @ dft)
    return np.log(magnitude @ reference_mel_matrix() + 0.001)


def test_mel_matrix_is_tf_signals_definition() -> None:
    ours = frontend.mel_matrix()
    assert ours.shape == (257, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_mel_matrix(), atol=2e-6)
    assert not ours[0].any()  # the DC bin carries no weight
    # HTK mel, triangles linear in mel: band 0 peaks near 125 Hz's next edge, the last band ends at 7.5 kHz
    assert ours[:, 0].argmax() * 8000 / 256 == pytest.approx(156.25, abs=31.25)
    assert not ours[int(np.ceil(7500 / 31.25)) + 1:].any()


@pytest.mark.parametrize("samples, patches", [(0, 1), (1, 1), (15600, 1), (15601, 2), (23280, 2), (23281, 3),
                                              (48000, 6)])
def test_padding_gives_yamnets_patch_count(samples: int, patches: int) -> None:
    spec = frontend.log_mel_patches(np.zeros(samples, np.float32))
    assert spec.patches.shape == (patches, 96, 64)
    assert spec.start_s == pytest.approx(np.arange(patches) * 0.48)
    assert spec.duration_s == samples / RATE


def test_front_end_matches_the_reference_on_a_real_laugh_and_a_chirp(laughs: list[Path]) -> None:
    laugh = audio_media.read_pcm(laughs[0])
    t = np.arange(int(2.3 * RATE)) / RATE
    chirp = (0.5 * np.sin(2 * np.pi * (100 * t + 1500 * t**2))).astype(np.float32)  # 100 Hz → 7 kHz
    for waveform in (laugh, chirp):
        spec = frontend.log_mel_patches(waveform)
        reference = reference_log_mel(waveform)
        assert spec.log_mel.shape == reference.shape
        np.testing.assert_allclose(spec.log_mel, reference, atol=1e-5, rtol=0)
        # patches: 96 frames every 48
        for i, patch in enumerate(spec.patches):
            np.testing.assert_array_equal(patch, spec.log_mel[48 * i:48 * i + 96])


def test_a_tone_lights_the_band_holding_its_frequency() -> None:
    spec = frontend.log_mel_patches(audio_media.tone(1.0, RATE, 1000.0, 0.5))
    band = int(spec.log_mel[10:-10].mean(axis=0).argmax())
    edges = 700 * (np.exp(np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66) / 1127) - 1)
    assert edges[band] < 1000 < edges[band + 2]
    assert spec.log_mel.min() >= np.log(0.001) - 1e-6  # the log offset floors silence

# --- the model: YAMNet's own acceptance tests, then real recordings --------------------------------


def _top(model, waveform: np.ndarray, k: int = 10) -> list[str]:
    return [c.name for c in model.scores(waveform).top(k)]


def test_quantisation_comes_from_the_graph(audio_model) -> None:
    q = audio_model.quantisation
    assert q.input_scale == pytest.approx(0.04794, abs=1e-5) and q.input_zero_point == 144
    assert q.output_scale == pytest.approx(0.75654, abs=1e-5) and q.output_zero_point == 190
    # the lowest input code is the front end's log offset: silence is representable, nothing lower
    assert q.quantise(np.array([np.log(0.001)]))[0] == 0
    assert q.quantise(np.array([-50.0, 50.0])).tolist() == [0, 255]
    assert q.dequantise(np.array([190], np.uint8))[0] == 0.0
    assert len(audio_model.class_names) == 521 and audio_model.class_names[0] == "Speech"


def test_yamnet_own_test_zeros_read_silence(audio_model) -> None:
    scores = audio_model.scores(np.zeros(3 * RATE))
    assert scores.logits.shape == (6, 521) and scores.embeddings.shape == (6, 1024)
    assert "Silence" in _top(audio_model, np.zeros(3 * RATE))


def test_yamnet_own_test_uniform_noise_reads_white_noise(audio_model) -> None:
    np.random.seed(51773)  # the seed and generator of YAMNet's own test
    noise = np.random.uniform(-1.0, 1.0, (3 * RATE,))
    assert "White noise" in _top(audio_model, noise)


def test_yamnet_own_test_sine_reads_sine_wave(audio_model) -> None:
    assert "Sine wave" in _top(audio_model, np.sin(2 * np.pi * 440 * np.arange(0, 3, 1 / RATE)))


def test_real_laughter_reads_laughter(audio_model, laughs: list[Path]) -> None:
    for laugh in laughs:
        assert "Laughter" in _top(audio_model, audio_media.read_pcm(laugh), k=3), laugh.name
    joined = np.concatenate([audio_media.read_pcm(p) for p in laughs])
    scores = audio_model.scores(joined)
    assert scores.top(1)[0].name == "Laughter"
    assert scores.column("Laughter").max() > 0.0  # more likely than not in its best patch


def test_real_applause_reads_applause(audio_model, applause: Path) -> None:
    assert _top(audio_model, audio_media.read_pcm(applause), k=1) == ["Applause"]


def test_synthesised_speech_reads_speech_not_laughter(audio_model, speech: Path) -> None:
    top = _top(audio_model, audio_media.read_pcm(speech))
    assert top[0] == "Speech"
    assert "Laughter" not in top
    scores = audio_model.scores(audio_media.read_pcm(speech))
    assert scores.column("Laughter").max() < scores.column("Speech").min()


def test_music_mood_reads_by_contrast(audio_model, music: dict[str, np.ndarray]) -> None:
    """Mood classes never score high in absolute terms; their contrast tells an upbeat theme from a calm one."""
    classes = ("Exciting music", "Sad music", "Tender music", "Music")
    scores = {name: audio_model.scores(waveform) for name, waveform in music.items()}
    mood = {name: {c: float(s.column(c).mean()) for c in classes} for name, s in scores.items()}
    assert mood["upbeat"]["Music"] > 0 and mood["calm"]["Music"] > 0
    assert mood["upbeat"]["Exciting music"] > mood["upbeat"]["Sad music"] + 4
    assert mood["calm"]["Tender music"] > mood["calm"]["Exciting music"] + 2
    assert mood["upbeat"]["Exciting music"] > mood["calm"]["Exciting music"] + 2


def test_laughter_in_an_ad_is_found_at_its_time(audio_model, laughs: list[Path], tmp_path: Path) -> None:
    """Three real laughs (4.1 s) muxed at 3.0 s into 10 s of a 48 kHz stereo ad: the Laughter column
    of the patches reading them is high, and silent everywhere else."""
    laugh = np.concatenate([audio_media.read_pcm(p, rate=48000) for p in laughs])
    sound = np.zeros(10 * 48000, np.float32)
    sound[3 * 48000:3 * 48000 + laugh.size] = laugh
    ad = audio_media.audio_file(tmp_path / "ad.mp4", np.stack([sound, sound]), rate=48000, layout="stereo",
                                video=(64, 48, 10))
    track = decode_audio(ad)
    assert isinstance(track, AudioTrack)
    scores = audio_model.scores(track.samples)
    laughter = scores.column("Laughter")
    end = 3.0 + laugh.size / 48000
    inside = (scores.start_s >= 3.0) & (scores.start_s + frontend.PATCH_SPAN_SECONDS <= end)
    outside = (scores.start_s + frontend.PATCH_SPAN_SECONDS <= 3.0) | (scores.start_s >= end)
    assert inside.sum() >= 5 and outside.sum() >= 8
    assert laughter[inside].max() > 1.0 and np.median(laughter[inside]) > -2.0
    assert laughter[outside].max() < -20.0
    peak = scores.center_s[int(laughter.argmax())]
    assert 3.0 <= peak <= end


def test_a_late_audio_stream_says_where_it_starts(tmp_path: Path) -> None:
    clip = audio_media.audio_file(tmp_path / "late.mp4", audio_media.tone(1.0, 48000)[None], rate=48000,
                                  video=(64, 48, 10), offset_s=0.5)
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack)
    assert track.start_s == pytest.approx(0.5, abs=0.025)
    assert track.duration_s == pytest.approx(1.0, abs=0.03)


def test_embeddings_are_the_classifiers_input(audio_model, speech: Path, applause: Path) -> None:
    a = audio_model.scores(audio_media.read_pcm(speech)).embeddings
    b = audio_model.scores(audio_media.read_pcm(applause)).embeddings
    assert (a >= 0).all() and a.any()  # average of ReLU outputs
    # the same sound gives closer embeddings than a different sound
    same = np.linalg.norm(a[0] - a[1])
    assert same < np.linalg.norm(a[0] - b[0])


def test_patches_score_as_the_waveform_does_and_bad_shapes_are_refused(audio_model, laughs: list[Path]) -> None:
    waveform = audio_media.read_pcm(laughs[1])
    spec = frontend.log_mel_patches(waveform)
    np.testing.assert_array_equal(audio_model.score_patches(spec.patches).logits, audio_model.scores(waveform).logits)
    with pytest.raises(ValueError, match="96, 64"):
        audio_model.score_patches(np.zeros((2, 64, 96), np.float32))
    with pytest.raises(ValueError, match="Laughter"):
        audio_model.class_index("Laughing")


def test_missing_audio_weights_name_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emocore.audio.yamnet import load_audio_model
    from emocore.errors import WeightsMissing

    monkeypatch.setenv("EMOCORE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsMissing, match="python cli.py setup"):
        load_audio_model()

# --- decoding: every odd kind of track --------------------------------------------------------------


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(spectrum.argmax() * RATE / samples.size)


def _strength_at(samples: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(spectrum[int(round(hz * samples.size / RATE))] / samples.size)


def test_48khz_stereo_aac_beside_video_is_16khz_mono(tone_clip: Path) -> None:
    track = decode_audio(tone_clip)
    assert isinstance(track, AudioTrack)
    assert (track.source_rate, track.source_layout, track.source_channels, track.codec) == (48000, "stereo", 2, "aac")
    assert track.sample_rate == RATE and track.samples.dtype == np.float32 and track.samples.ndim == 1
    assert track.duration_s == pytest.approx(2.0, abs=0.03)
    assert track.start_s == pytest.approx(0.0, abs=0.03) and track.decode_errors == 0 and track.gap_s == 0
    # both channels survive the downmix
    assert _strength_at(track.samples, 440) > 0.05 and _strength_at(track.samples, 880) > 0.05


def test_8khz_track_is_upsampled(tmp_path: Path) -> None:
    clip = audio_media.audio_file(tmp_path / "8k.mp4", audio_media.tone(2.0, 8000)[None], rate=8000)
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack) and track.source_rate == 8000
    assert track.duration_s == pytest.approx(2.0, abs=0.06)
    assert _dominant_hz(track.samples) == pytest.approx(440, abs=2)


def test_5_1_track_is_downmixed_with_its_centre(tmp_path: Path) -> None:
    channels = np.zeros((6, 2 * 48000), np.float32)
    channels[2] = audio_media.tone(2.0, 48000, 440, 0.25)  # front centre only: the dialogue channel
    clip = audio_media.audio_file(tmp_path / "surround.mkv", channels, rate=48000, layout="5.1")
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack) and track.source_channels == 6 and track.source_layout.startswith("5.1")
    assert _dominant_hz(track.samples) == pytest.approx(440, abs=2)
    assert 0.1 < track.peak <= 1.0


def test_a_few_milliseconds_decode_and_score(tmp_path: Path, audio_model) -> None:
    clip = audio_media.audio_file(tmp_path / "blip.mp4", audio_media.tone(0.005, 48000)[None], rate=48000)
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack) and 0 < track.duration_s < 0.05
    assert audio_model.scores(track.samples).logits.shape == (1, 521)  # padded to one patch, as YAMNet does


def test_pure_silence_decodes_to_silence(tmp_path: Path, audio_model) -> None:
    clip = audio_media.audio_file(tmp_path / "quiet.mp4", np.zeros((2, 2 * 48000), np.float32), rate=48000,
                                  layout="stereo", video=(64, 48, 10))
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack) and track.peak == 0.0
    assert track.duration_s == pytest.approx(2.0, abs=0.03)
    assert audio_model.scores(track.samples).top(1)[0].name == "Silence"


def test_no_audio_track_is_no_audio_not_zeros(tmp_path: Path) -> None:
    result = decode_audio(audio_media.video_only(tmp_path / "mute.mp4"))
    assert isinstance(result, NoAudio) and result.reason == "no audio track"
    with av.open(str(tmp_path / "mute.mp4")) as container:
        assert audio_decoder(container) is None


def test_damaged_packets_are_skipped_and_time_is_kept(tone_clip: Path, tmp_path: Path) -> None:
    original = decode_audio(tone_clip)
    damaged = decode_audio(audio_media.damaged_audio_copy(tone_clip, tmp_path / "damaged.mp4", span=(0.4, 0.6)))
    assert isinstance(original, AudioTrack) and isinstance(damaged, AudioTrack)
    assert damaged.decode_errors > 0
    assert damaged.duration_s == pytest.approx(original.duration_s, abs=0.05)
    head = int(0.6 * RATE)  # the first 40 % of the packets are untouched
    np.testing.assert_array_equal(damaged.samples[:head], original.samples[:head])
    # the sound after the damage is back at its place (to within a third of a sample: 1,024 samples
    # at 48 kHz are 341.33 at 16 kHz, and the silence put in their place is a whole number)
    tail = slice(-int(0.5 * RATE), -int(0.05 * RATE))
    assert np.corrcoef(damaged.samples[tail], original.samples[tail])[0, 1] > 0.98


def test_dropped_packets_leave_silence_in_their_place(tmp_path: Path) -> None:
    clip = audio_media.audio_file(tmp_path / "t.mp4", audio_media.tone(3.0, 16000)[None], rate=16000)
    track = decode_audio(audio_media.dropped_audio_copy(clip, tmp_path / "holed.mp4", drop=(1.0, 2.0)))
    assert isinstance(track, AudioTrack)
    assert track.gap_s == pytest.approx(1.0, abs=0.07)
    assert track.duration_s == pytest.approx(3.0, abs=0.07)
    assert np.abs(track.samples[int(1.15 * RATE):int(1.85 * RATE)]).max() < 0.01
    assert _strength_at(track.samples[int(2.2 * RATE):int(2.9 * RATE)], 440) > 0.05


def test_unusable_tracks_fail_with_one_line(tone_clip: Path, tmp_path: Path) -> None:
    wrecked = audio_media.damaged_audio_copy(tone_clip, tmp_path / "wrecked.mp4", span=(0.0, 1.0))
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 10)
    empty = audio_media.empty_audio_track(tmp_path / "empty.mkv")
    for path, words in ((wrecked, "damaged audio packets"), (text, "not a readable media file"),
                        (tmp_path / "gone.mp4", "does not exist"), (empty, "the audio track holds no sound")):
        with pytest.raises(AudioError) as caught:
            decode_audio(path)
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_video_pass_can_feed_the_decoder(tone_clip: Path) -> None:
    """One demux of the file for both streams gives the same track as a separate audio pass."""
    alone = decode_audio(tone_clip)
    with av.open(str(tone_clip)) as container:
        video = container.streams.video[0]
        decoder = audio_decoder(container)
        assert isinstance(decoder, AudioDecoder)
        pictures = 0
        for packet in container.demux(video, decoder.stream):
            if packet.stream.index == decoder.stream.index:
                decoder.feed(packet)
                continue
            pictures += len(packet.decode())
        shared = decoder.finish()
    assert pictures == 20
    assert isinstance(alone, AudioTrack) and isinstance(shared, AudioTrack)
    np.testing.assert_array_equal(shared.samples, alone.samples)


def test_a_failing_soundtrack_never_stops_the_video_pass(tone_clip: Path, tmp_path: Path) -> None:
    wrecked = audio_media.damaged_audio_copy(tone_clip, tmp_path / "wrecked.mp4", span=(0.0, 1.0))
    with av.open(str(wrecked)) as container:
        video = container.streams.video[0]
        decoder = audio_decoder(container)
        assert decoder is not None
        pictures = 0
        for packet in container.demux(video, decoder.stream):
            if packet.stream.index == decoder.stream.index:
                decoder.feed(packet)  # never raises
            else:
                pictures += len(packet.decode())
        assert decoder.failed is not None
        with pytest.raises(AudioError, match="damaged"):
            decoder.finish()
    assert pictures == 20


def test_a_16khz_pcm_wav_decodes_sample_exact(tmp_path: Path) -> None:
    clip = audio_media.audio_file(tmp_path / "t.wav", audio_media.tone(1.0, 16000)[None], rate=16000, codec="pcm_s16le")
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack) and track.samples.size == 16000
    np.testing.assert_allclose(track.samples, audio_media.tone(1.0, 16000), atol=1 / 16384)


def test_the_demo_ads_soundtracks(audio_model, megamind: Path, bunny: Path, carphone: Path) -> None:
    """Real ads: Megamind's AC-3 stereo dialogue, Big Buck Bunny's AAC 5.1 score, carphone's silence of no track."""
    dialogue = decode_audio(megamind)
    assert isinstance(dialogue, AudioTrack) and dialogue.codec == "ac3"
    assert dialogue.duration_s == pytest.approx(11.23, abs=0.1)
    assert audio_model.scores(dialogue.samples).top(1)[0].name == "Speech"
    score = decode_audio(bunny)
    assert isinstance(score, AudioTrack) and score.source_channels == 6 and score.source_layout == "5.1"
    assert audio_model.scores(score.samples).top(1)[0].name == "Music"
    assert isinstance(decode_audio(carphone), NoAudio)
