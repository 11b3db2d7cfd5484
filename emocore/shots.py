"""Shot boundaries, found by PySceneDetect's ContentDetector on the decoded frames.

The detector is fed from the decoding pass itself (`Video.sample(on_frame=...)`), with tiny frames,
so finding shots costs no second decode. A boundary is the time (seconds from the start) of the
first frame of a new shot.
"""

from __future__ import annotations

import numpy as np
from scenedetect import ContentDetector, FrameTimecode

from emocore.params import ShotParams  # defined with the other index parameters; re-exported here


class ShotDetector:
    """Feed the frames in order with `feed`, then read `boundaries()`.

    Frames are numbered by their time (time × fps), so a pass that did not decode every frame (the
    index lets the decoder drop non-reference frames no sample needs) keeps the detector's frame
    arithmetic (the shortest shot) in real frames. A cut is found at the first frame fed after it:
    where the frame starting a shot was not decoded, the boundary lands up to a few frames late.
    Encoders put a key or reference frame at a cut, so on the demo ads and the test clips the
    boundaries were those of every frame, or one frame (33 ms) later."""

    def __init__(self, fps: float, params: ShotParams = ShotParams()) -> None:
        self._fps = fps if fps > 0 else 25.0
        self._detector = ContentDetector(threshold=params.threshold, min_scene_len=params.min_shot_s)
        self._times: dict[int, float] = {}
        self._last = -1
        self._cuts: list[int] = []

    def feed(self, time_s: float, tiny_bgr: np.ndarray) -> None:
        number = max(self._last + 1, round(time_s * self._fps))
        self._last = number
        self._times[number] = time_s
        position = FrameTimecode(number, self._fps)
        self._cuts.extend(tc.frame_num for tc in self._detector.process_frame(position, tiny_bgr))

    def boundaries(self) -> list[float]:
        """Times of the cuts found so far, ascending, without the start of the video."""
        if self._times:
            self._cuts.extend(tc.frame_num for tc in self._detector.post_process(FrameTimecode(self._last, self._fps)))
        first = min(self._times, default=0)
        frames = sorted({n for n in self._cuts if n > first and n in self._times})
        self._cuts = frames
        return [round(self._times[n], 6) for n in frames]
