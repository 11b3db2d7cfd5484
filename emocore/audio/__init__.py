"""The soundtrack: decoding it (PyAV), YAMNet's log-mel front end, and YAMNet itself (onnxruntime).

    from emocore.audio import decode_audio, load_audio_model, NoAudio
    track = decode_audio("ad.mp4")                 # AudioTrack (16 kHz mono float32) or NoAudio
    if not isinstance(track, NoAudio):
        with load_audio_model() as model:
            scores = model.scores(track.samples)   # AudioScores: logits per 0.96 s patch, every 0.48 s
            scores.column("Laughter")
            lanes = score_lanes(track, model)        # AudioLanes: laughter, applause, music moods, … per second
            # emocore.audio.explain.explain_audio_moment(track, model, 4.2, ("laughter",)): LIME + SHAP

Modules: `frontend` (log-mel patches, NumPy only), `yamnet` (the model; needs `python cli.py
setup`), `decode` (the soundtrack, also decodable in the video's own demux pass), `lanes`
(per-second lanes and the funny / exciting cue table), `explain` (LIME and SHAP over the
spectrogram) and `render` (drawing an explanation). `explain` and `render` sit in higher layers
(explainers, pipeline: see tests/test_layers.py), so this package does not import them: import
them by their full names. onnxruntime is imported only when a model is loaded.
"""

from __future__ import annotations

from emocore.audio.decode import AudioDecoder, AudioFailed, AudioTrack, NoAudio, audio_decoder, decode_audio
from emocore.audio.frontend import LogMelPatches, log_mel_patches
from emocore.audio.lanes import CUE_TABLE, AudioLanes, score_lanes
from emocore.audio.yamnet import AudioModel, AudioScores, ClassScore, PatchScores, load_audio_model

__all__ = ["CUE_TABLE", "AudioDecoder", "AudioLanes", "AudioModel", "AudioScores",
           "AudioFailed", "AudioTrack", "ClassScore", "LogMelPatches", "NoAudio", "PatchScores", "audio_decoder", "decode_audio",
           "load_audio_model", "log_mel_patches", "score_lanes"]
