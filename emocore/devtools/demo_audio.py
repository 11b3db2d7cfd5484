"""A demo ad with a real soundtrack: demo footage re-encoded (H.264 + AAC) with real laughter and applause
muxed at known times, so a new user sees audio lanes on the first run.

    made = build_demo_ad("cache/demo-ads/Megamind-laughs.mp4", "cache/demo-ads/Megamind.avi")
    made.laughter_s, made.applause_s        # (start, end) of each sound on the file's timeline

The builder lives in `emocore.provision` (`python cli.py setup` makes this ad in the demo folder);
this module re-exports it for the tests and benchmarks.
"""

from __future__ import annotations

from emocore.provision import (
    APPLAUSE, DEMO_NAME, DEMO_SOURCE, LAUGHS, RATE, DemoSoundtrack, build_demo_ad, demo_soundtrack,
)

soundtrack = demo_soundtrack

__all__ = ["APPLAUSE", "DEMO_NAME", "DEMO_SOURCE", "LAUGHS", "RATE", "DemoSoundtrack", "build_demo_ad", "soundtrack"]
