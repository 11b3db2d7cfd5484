"""Shot boundaries, found by PySceneDetect's ContentDetector on every decoded frame.

The detector is fed from the decoding pass itself (`Video.sample(on_frame=...)`), with tiny frames,
so finding shots costs no second decode. A boundary is the time (seconds from the start) of the
first frame of a new shot.
"""

from __future__ import annotations

import numpy as np
from scenedetect import ContentDetector, FrameTimecode

from emocore.params import ShotParams  # defined with the other index parameters; re-exported here


class ShotDetector:
    """Feed every frame in order with `feed`, then read `boundaries()`."""

    def __init__(self, fps: float, params: ShotParams = ShotParams()) -> None:
        self._fps = fps if fps > 0 else 25.0
        self._detector = ContentDetector(threshold=params.threshold, min_scene_len=params.min_shot_s)
        self._times: list[float] = []
        self._cuts: list[int] = []

    def feed(self, time_s: float, tiny_bgr: np.ndarray) -> None:
        position = FrameTimecode(len(self._times), self._fps)
        self._times.append(time_s)
        self._cuts.extend(tc.frame_num for tc in self._detector.process_frame(position, tiny_bgr))

    def boundaries(self) -> list[float]:
        """Times of the cuts found so far, ascending, without the start of the video."""
        if self._times:
            self._cuts.extend(
                tc.frame_num for tc in self._detector.post_process(FrameTimecode(len(self._times) - 1, self._fps))
            )
        frames = sorted({n for n in self._cuts if 0 < n < len(self._times)})
        self._cuts = frames
        return [round(self._times[n], 6) for n in frames]
