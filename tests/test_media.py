"""Checks that every generator in emocore/devtools/media.py produces what its docstring claims.

Only PyAV (plus numpy) is used to inspect the files.  The whole module runs in a
few seconds; face_clip_720p is exercised with a 2 s duration only.
"""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from emocore.devtools import media

RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 200, 30)
COLOR_TOL = 12.0  # per-channel RGB tolerance on frame means after yuv420p round trip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temp directory shared by the module's tests."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def cut_clip(workdir: Path) -> Path:
    """Default colour-cut clip (moov at the end)."""
    return media.color_cut_clip(workdir / "cut.mp4")


@pytest.fixture(scope="module")
def cut_clip_faststart(workdir: Path) -> Path:
    """Default colour-cut clip with moov at the start."""
    return media.color_cut_clip(workdir / "cut_fs.mp4", faststart=True)


def rgb_frames(path: Path) -> list[np.ndarray]:
    """All decoded frames of the first video stream as RGB arrays."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def decode_until_error(path: Path) -> tuple[list[np.ndarray], BaseException | None]:
    """Decode frames with container.decode until it ends or raises; return (frames, exception)."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        try:
            for f in c.decode(video=0):
                frames.append(f.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            return frames, exc
    return frames, None


def means(frames: list[np.ndarray]) -> np.ndarray:
    """(n, 3) per-frame RGB means."""
    return np.array([f.reshape(-1, 3).mean(axis=0) for f in frames])


def assert_video(path: Path, *, n: int, size: tuple[int, int], fps: int) -> None:
    """Stream header and decode agree on frame count, size, rate; duration within one frame."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == size
        assert s.average_rate == fps
        assert s.frames == n
        assert c.duration is not None and abs(c.duration / 1e6 - n / fps) <= 1 / fps
        assert abs(float(s.duration * s.time_base) - n / fps) <= 1 / fps
        assert s.codec_context.name == "h264"
        assert s.codec_context.pix_fmt == "yuv420p"
        decoded = list(c.decode(s))
    assert len(decoded) == n
    assert [round(f.time * fps, 6) for f in decoded] == list(range(n))  # frame i shown at i / fps


def top_level_boxes(path: Path) -> list[str]:
    """Names of the top-level MP4 boxes in file order."""
    data, pos, names = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        names.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return names


def tkhd_matrix(path: Path) -> tuple[int, ...]:
    """The a, b, c, d entries (16.16 fixed point) of the video track's tkhd matrix."""
    data = path.read_bytes()
    i = data.index(b"tkhd")
    version = data[i + 4]
    off = i + 8 + (32 if version == 1 else 20) + 8 + 8  # times/ids/duration, reserved, layer..volume
    a, b, _u, c, d, *_rest = struct.unpack(">9i", data[off : off + 36])
    return a, b, c, d


# ---------------------------------------------------------------- colour cuts


def test_color_cut_default(cut_clip: Path) -> None:
    assert_video(cut_clip, n=100, size=(320, 240), fps=25)
    with av.open(str(cut_clip)) as c:
        assert [s.type for s in c.streams] == ["video"]
    m = means(rgb_frames(cut_clip))
    assert np.abs(m[:50] - RED).max() < COLOR_TOL
    assert np.abs(m[50:] - BLUE).max() < COLOR_TOL
    # the frame at exactly 2.0 s (pts 50, time_base 1/25) is the first blue one
    assert media.cut_frame_indices([2.0], 25) == [50]


def test_color_cut_has_moving_texture(cut_clip: Path) -> None:
    frames = rgb_frames(cut_clip)
    assert frames[0].std() > 1.0  # not a flat field
    assert np.abs(frames[1].astype(int) - frames[0]).mean() > 0.5  # texture moves


def test_color_cut_several_cuts_cycle_colours(workdir: Path) -> None:
    p = media.color_cut_clip(workdir / "cuts.mp4", cuts=(1.0, 2.5), seconds=3.0, colors=(RED, BLUE))
    assert_video(p, n=75, size=(320, 240), fps=25)
    m = means(rgb_frames(p))
    assert media.cut_frame_indices((1.0, 2.5), 25) == [25, 63]
    assert np.abs(m[:25] - RED).max() < COLOR_TOL
    assert np.abs(m[25:63] - BLUE).max() < COLOR_TOL
    assert np.abs(m[63:] - RED).max() < COLOR_TOL  # colours cycle


def test_color_cut_off_grid_and_options(workdir: Path) -> None:
    p = media.color_cut_clip(
        workdir / "offgrid.mp4", seconds=2.0, cut_at=1.01, fps=30, size=(160, 96), colors=(GREEN, RED)
    )
    assert_video(p, n=60, size=(160, 96), fps=30)
    m = means(rgb_frames(p))
    first_new = media.cut_frame_indices([1.01], 30)[0]
    assert first_new == 31  # 31/30 s is the first frame time >= 1.01 s
    assert np.abs(m[:first_new] - GREEN).max() < COLOR_TOL
    assert np.abs(m[first_new:] - RED).max() < COLOR_TOL


def test_color_cut_other_codec_avi(workdir: Path) -> None:
    p = media.color_cut_clip(workdir / "cut.avi", seconds=1.0, cut_at=0.5, codec="mpeg4")
    with av.open(str(p)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    m = means(rgb_frames(p))
    assert len(m) == 25
    assert np.abs(m[:13] - RED).max() < COLOR_TOL and np.abs(m[13:] - BLUE).max() < COLOR_TOL


def test_color_cut_rejects_bad_cuts(workdir: Path) -> None:
    with pytest.raises(ValueError):
        media.color_cut_clip(workdir / "bad.mp4", cuts=(2.0, 1.0))
    with pytest.raises(ValueError):
        media.color_cut_clip(workdir / "bad.mp4", cut_at=5.0, seconds=4.0)


def test_deterministic(workdir: Path, cut_clip: Path) -> None:
    again = media.color_cut_clip(workdir / "cut_again.mp4")
    assert again.read_bytes() == cut_clip.read_bytes()


def test_faststart_moves_moov(cut_clip: Path, cut_clip_faststart: Path) -> None:
    default_boxes, fast_boxes = top_level_boxes(cut_clip), top_level_boxes(cut_clip_faststart)
    assert default_boxes.index("moov") > default_boxes.index("mdat")
    assert fast_boxes.index("moov") < fast_boxes.index("mdat")


# ---------------------------------------------------------------- one frame


def test_one_frame_clip(workdir: Path) -> None:
    p = media.one_frame_clip(workdir / "one.mp4")
    assert p.suffix == ".mp4"
    assert_video(p, n=1, size=(320, 240), fps=25)


# ---------------------------------------------------------------- rotation


def to_display(frame: av.VideoFrame) -> np.ndarray:
    """What the lead's reader must do: rotate by frame.rotation (counter-clockwise degrees)."""
    return np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90))


def white_corner(img: np.ndarray) -> str:
    """Which corner ('tl', 'tr', 'bl', 'br') holds the white block."""
    h, w = img.shape[:2]
    corners = {
        "tl": img[: h // 8, : w // 8],
        "tr": img[: h // 8, -w // 8 :],
        "bl": img[-h // 8 :, : w // 8],
        "br": img[-h // 8 :, -w // 8 :],
    }
    bright = [k for k, v in corners.items() if v.mean() > 200]
    assert len(bright) == 1, {k: v.mean() for k, v in corners.items()}
    return bright[0]


@pytest.mark.parametrize(
    ("rotation", "pyav_rotation", "display_shape", "corner"),
    [
        (90, -90, (320, 180), "tr"),
        (270, 90, (320, 180), "bl"),
        (-90, 90, (320, 180), "bl"),
        (180, -180, (180, 320), "br"),
        (0, 0, (180, 320), "tl"),
    ],
)
def test_rotated_clip(
    workdir: Path, rotation: int, pyav_rotation: int, display_shape: tuple[int, int], corner: str
) -> None:
    p = media.rotated_clip(workdir / f"rot{rotation}.mp4", rotation)
    assert_video(p, n=25, size=(320, 180), fps=25)  # encoded landscape
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert "rotate" not in s.metadata  # FFmpeg 7 no longer exports the legacy tag
        frames = list(c.decode(s))
    assert all(f.rotation == pyav_rotation for f in frames)
    first = frames[0]
    assert white_corner(first.to_ndarray(format="rgb24")) == "tl"  # pixels are NOT auto-rotated
    has_matrix = av.sidedata.sidedata.Type.DISPLAYMATRIX in [sd.type for sd in first.side_data]
    assert has_matrix == (rotation % 360 != 0)
    shown = to_display(first)
    assert shown.shape[:2] == display_shape
    assert white_corner(shown) == corner


def test_rotated_clip_container_matrix(workdir: Path) -> None:
    """Independent of PyAV's reader: the mp4 tkhd matrix is the standard 90-degree-clockwise one."""
    p = media.rotated_clip(workdir / "rot90_matrix.mp4", 90)
    one = 1 << 16
    assert tkhd_matrix(p) == (0, one, -one, 0)  # a, b, c, d as written by iPhones for portrait


# ---------------------------------------------------------------- big / audio


def test_big_clip(workdir: Path) -> None:
    p = media.big_clip(workdir / "big.mp4")
    assert_video(p, n=25, size=(3840, 2160), fps=25)


def test_with_audio_clip(workdir: Path) -> None:
    p = media.with_audio_clip(workdir / "audio.mp4")
    with av.open(str(p)) as c:
        assert [s.type for s in c.streams] == ["audio", "video"]  # video is NOT stream 0
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        assert a.rate == 44100
        assert abs(float(a.duration * a.time_base) - 2.0) < 0.05
        samples = sum(f.samples for f in c.decode(audio=0))
        assert abs(samples - 2.0 * 44100) <= 2048  # AAC priming/padding
    assert_video(p, n=50, size=(320, 240), fps=25)
    p2 = media.with_audio_clip(workdir / "audio2.mp4", audio_first=False)
    with av.open(str(p2)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


# ---------------------------------------------------------------- broken files


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_moov_at_end_is_unreadable(workdir: Path, cut_clip: Path, keep: float) -> None:
    p = media.truncated_copy(cut_clip, workdir / f"trunc{keep}.mp4", keep)
    assert p.stat().st_size == int(cut_clip.stat().st_size * keep)
    with pytest.raises(av.error.InvalidDataError):  # FFmpeg logs "moov atom not found"
        av.open(str(p))


def test_truncated_faststart_decodes_a_prefix(workdir: Path, cut_clip_faststart: Path) -> None:
    p = media.truncated_copy(cut_clip_faststart, workdir / "trunc_fs.mp4", 0.5)
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert s.frames == 100  # header still claims the full clip
        assert abs(c.duration / 1e6 - 4.0) < 0.05
    frames, exc = decode_until_error(p)
    assert isinstance(exc, av.error.InvalidDataError)
    assert 30 <= len(frames) <= 70
    original = rgb_frames(cut_clip_faststart)
    assert all(np.array_equal(a, b) for a, b in zip(frames, original))


def test_corrupt_middle(workdir: Path, cut_clip: Path) -> None:
    p = media.corrupt_middle_copy(cut_clip, workdir / "corrupt.mp4", seed=0)
    assert p.stat().st_size == cut_clip.stat().st_size
    src, dst = cut_clip.read_bytes(), p.read_bytes()
    assert src[:2048] == dst[:2048] and src[-2048:] == dst[-2048:]  # header and moov intact
    assert src != dst
    with av.open(str(p)) as c:
        assert c.streams.video[0].frames == 100
    frames, exc = decode_until_error(p)
    assert isinstance(exc, av.error.InvalidDataError)  # raised mid-decode, not at open
    assert 30 <= len(frames) < 100
    original = rgb_frames(cut_clip)
    assert all(np.array_equal(a, b) for a, b in zip(frames, original))
    # per-packet decoding with the error caught skips the damage and goes on
    recovered, errors = 0, 0
    with av.open(str(p)) as c:
        for packet in c.demux(video=0):
            try:
                recovered += len(packet.decode())
            except av.error.InvalidDataError:
                errors += 1
    assert errors > 0 and len(frames) < recovered < 100
    # seeded: same seed same bytes, other seed other bytes
    assert media.corrupt_middle_copy(cut_clip, workdir / "corrupt_b.mp4", seed=0).read_bytes() == dst
    assert media.corrupt_middle_copy(cut_clip, workdir / "corrupt_c.mp4", seed=1).read_bytes() != dst


def test_corrupt_middle_with_audio(workdir: Path) -> None:
    src = media.with_audio_clip(workdir / "audio_for_corrupt.mp4")
    p = media.corrupt_middle_copy(src, workdir / "audio_corrupt.mp4")
    frames, exc = decode_until_error(p)
    assert isinstance(exc, av.error.InvalidDataError)
    assert 15 <= len(frames) < 50


@pytest.mark.parametrize("maker", [media.text_as_video, media.zero_byte])
def test_not_a_video(workdir: Path, maker) -> None:  # type: ignore[no-untyped-def]
    p = maker(workdir / f"{maker.__name__}.mp4")
    assert p.suffix == ".mp4"
    if maker is media.zero_byte:
        assert p.stat().st_size == 0
    else:
        assert p.read_text().startswith("This is not a video")
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(p))


# ---------------------------------------------------------------- benchmark clip


def test_face_clip_synthetic_sources_letterbox_loop_and_cache(workdir: Path) -> None:
    """Runs without real footage: a 0.5 s 320x240 20 fps source looped into 1 s at 30 fps."""
    src = media.color_cut_clip(workdir / "face_src.mp4", seconds=0.5, cut_at=0.25, fps=20)
    p = media.face_clip_720p(workdir / "face_syn.mp4", seconds=1, sources=[src])
    assert_video(p, n=30, size=(1280, 720), fps=30)
    with av.open(str(p)) as c:
        assert [s.type for s in c.streams] == ["video"]
        keyframes = [i for i, pkt in enumerate(c.demux(video=0)) if pkt.is_keyframe]
    assert keyframes[0] == 0
    assert top_level_boxes(p).index("moov") < top_level_boxes(p).index("mdat")  # faststart
    frames = rgb_frames(p)
    # letterbox: 4:3 source -> 960x720 picture centred, black bars of 160 px
    assert frames[0][:, :150].max() < 40 and frames[0][:, -150:].max() < 40
    centre = means([f[:, 200:-200] for f in frames])
    # source: frames 0-4 red, 5-9 blue at 20 fps; output frame k shows source frame floor(k * 20 / 30),
    # so each 15-frame pass is red for k = 0..7 and blue for k = 8..14, and the pass repeats once
    for start in (0, 15):
        assert np.abs(centre[start : start + 8] - RED).max() < COLOR_TOL
        assert np.abs(centre[start + 8 : start + 15] - BLUE).max() < COLOR_TOL
    # cached: a second call does not rewrite the file
    mtime = p.stat().st_mtime_ns
    assert media.face_clip_720p(p, seconds=1, sources=[src]) == p
    assert p.stat().st_mtime_ns == mtime
    assert not list(workdir.glob("*.partial*"))


def test_face_clip_real_footage(workdir: Path, megamind: Path, carphone: Path) -> None:
    p = media.face_clip_720p(workdir / "face_real.mp4", seconds=1, sources=[megamind, carphone])
    assert_video(p, n=30, size=(1280, 720), fps=30)
    frames = rgb_frames(p)
    assert max(f[:, 200:-200].std() for f in frames) > 20  # real picture (Megamind opens on black)
