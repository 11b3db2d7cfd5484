"""The soundtrack: decoding it (PyAV), YAMNet's log-mel front end, and YAMNet itself (onnxruntime).

    from emocore.audio import decode_audio, load_audio_model, NoAudio
    track = decode_audio("ad.mp4")                 # AudioTrack (16 kHz mono float32) or NoAudio
    if not isinstance(track, NoAudio):
        with load_audio_model() as model:
            scores = model.scores(track.samples)   # AudioScores: logits per 0.96 s patch, every 0.48 s
            scores.column("Laughter")

Modules: `frontend` (log-mel patches, NumPy only), `yamnet` (the model; needs `python cli.py
setup`), `decode` (the soundtrack, also decodable in the video's own demux pass). onnxruntime
is imported only when a model is loaded.
"""

from __future__ import annotations

from emocore.audio.decode import AudioDecoder, AudioTrack, NoAudio, audio_decoder, decode_audio
from emocore.audio.frontend import LogMelPatches, log_mel_patches
from emocore.audio.yamnet import AudioModel, AudioScores, ClassScore, PatchScores, load_audio_model

__all__ = ["AudioDecoder", "AudioModel", "AudioScores", "AudioTrack", "ClassScore", "LogMelPatches", "NoAudio", "PatchScores",
           "audio_decoder", "decode_audio", "load_audio_model", "log_mel_patches"]
