"""Browser previews (H.264/AAC proxies of files browsers cannot play) and covers (the frame an ad is shown by),
on clips built here, through the indexer, the CLI, the worker pool's writer, and a real browser."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emocore.devtools import media
from emocore.engine import StoreProxy, Writer
from emocore.files import content_hash
from emocore.indexer import index_folder
from emocore.preview import (
    browser_playability,
    choose_cover,
    choose_player,
    encode_preview,
    frame_look,
    playability_of,
    preview_size,
)
from emocore.store import Store

SECONDS = 2.0
FPS = 25
SOUND_RATE = 44_100


def _avi(path: Path, *, size: tuple[int, int] = (1280, 960), seconds: float = SECONDS, black_s: float = 0.0,
         sound: bool = True) -> Path:
    """An AVI (MPEG-4 part 2 video, PCM sound): moving texture, the first `black_s` seconds black, a 440 Hz tone."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    tile = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    texture = cv2.resize(tile, (width, height), interpolation=cv2.INTER_NEAREST)
    with av.open(str(path), "w", format="avi") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=SOUND_RATE, layout="mono") if sound else None
        sent = 0
        for i in range(round(seconds * FPS)):
            picture = np.zeros_like(texture) if i < black_s * FPS else np.roll(texture, 4 * i, axis=1)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            if audio is not None:
                until = round((i + 1) * SOUND_RATE / FPS)
                t = np.arange(sent, until) / SOUND_RATE
                samples = (0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None, :]
                chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = SOUND_RATE, sent, Fraction(1, SOUND_RATE)
                out.mux(audio.encode(chunk))
                sent = until
        out.mux(video.encode(None))
        if audio is not None:
            out.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _avi(tmp_path_factory.mktemp("avi") / "ad.avi")


def _streams(path: Path) -> dict[str, object]:
    """What PyAV reads back from a file: codecs, picture size, durations, decoded frames."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        facts = {"video": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
                 "size": (video.width, video.height), "audio": audio.codec_context.name if audio else None,
                 "channels": audio.codec_context.channels if audio else 0}
        times = [frame.time for frame in container.decode(video=0)]
    facts["frames"] = len(times)
    facts["first_s"] = times[0]
    facts["duration_s"] = times[-1] - times[0] + 1.0 / FPS
    return facts


def test_the_rule_of_what_browsers_play() -> None:
    assert playability_of(".mp4", "h264", "yuv420p", "aac").playable
    assert playability_of(".MP4", "h264", "yuv420p", None).mime == "video/mp4"
    assert playability_of(".webm", "vp9", "yuv420p", "opus").mime == "video/webm"
    assert playability_of(".mov", "av1", "yuv420p", "aac").playable
    unplayable = ((".avi", "h264", "yuv420p", "aac"), (".mkv", "h264", "yuv420p", "aac"),
                  (".mov", "prores", "yuv422p10le", "pcm_s16le"), (".mp4", "hevc", "yuv420p", "aac"),
                  (".mp4", "mpeg4", "yuv420p", "aac"), (".mp4", "h264", "yuv420p10le", "aac"),
                  (".mp4", "h264", "yuv420p", "ac3"), (".webm", "h264", "yuv420p", "opus"))
    for suffix, video, pix, audio in unplayable:
        found = playability_of(suffix, video, pix, audio)
        assert not found.playable and found.mime is None and "cannot play" in found.reason, (suffix, video, pix, audio)
    assert preview_size(1920, 1080) == (1280, 720)
    assert preview_size(1080, 1920) == (720, 1280)  # a portrait phone clip: 720 wide
    assert preview_size(320, 240) == (320, 240)  # never upscaled
    assert preview_size(1280, 960) == (960, 720)


def test_an_avi_gets_an_h264_aac_proxy_of_the_same_length(avi: Path, tmp_path: Path) -> None:
    assert not browser_playability(avi).playable
    made = encode_preview(avi, tmp_path / "proxy.mp4")
    source, proxy = _streams(avi), _streams(made.path)
    assert (proxy["video"], proxy["pix_fmt"], proxy["audio"]) == ("h264", "yuv420p", "aac")
    assert proxy["size"] == (960, 720) and min(proxy["size"]) <= 720  # 1280×960 scaled to 720p
    assert proxy["frames"] == source["frames"] == round(SECONDS * FPS)
    assert proxy["first_s"] == pytest.approx(0.0, abs=1e-3)  # time 0 is the first frame, as in the index
    assert abs(proxy["duration_s"] - source["duration_s"]) <= 0.1
    assert made.audio and not made.audio_dropped
    data = made.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: the index first, so it streams
    assert browser_playability(made.path).playable  # what it is made for
    # the tone survives: the proxy's sound is the source's (decoded back, its level is that of a 0.25 sine)
    with av.open(str(made.path)) as container:
        rate = container.streams.audio[0].rate
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert len(sound) / rate == pytest.approx(SECONDS, abs=0.1)
    assert np.sqrt(np.mean(sound[SOUND_RATE // 4: -SOUND_RATE // 4] ** 2)) == pytest.approx(0.25 / math.sqrt(2),
                                                                                              rel=0.1)


def test_a_file_that_is_no_video_fails_the_proxy_with_one_line(tmp_path: Path) -> None:
    from emocore.errors import PreviewError

    with pytest.raises(PreviewError, match="cannot open|no video") as caught:
        encode_preview(media.text_as_video(tmp_path / "x.avi"), tmp_path / "p.mp4")
    assert "\n" not in str(caught.value)


def test_index_makes_the_proxy_once_counts_it_and_no_preview_skips_it(avi: Path, tmp_path: Path, face_model) -> None:
    ads = tmp_path / "ads"
    ads.mkdir()
    (ads / "ad.avi").write_bytes(avi.read_bytes())
    digest = content_hash(avi)

    skipped = index_folder(ads, tmp_path / "none", model=face_model, explain=None, audio=False, preview=None)
    assert skipped.outcomes[0].status == "indexed" and skipped.outcomes[0].preview is None
    with Store(tmp_path / "none") as store:
        assert store.preview(digest) is None and store.disk_usage().previews == 0

    first = index_folder(ads, tmp_path / "cache", model=face_model, explain=None, audio=False)
    outcome = first.outcomes[0]
    assert outcome.status == "indexed" and outcome.preview == "made" and outcome.note is None
    assert 0 < outcome.preview_s < outcome.seconds
    with Store(tmp_path / "cache") as store:
        stored = store.preview(digest)
        assert stored is not None and _streams(stored)["video"] == "h264"
        usage = store.disk_usage()
        assert usage.previews == stored.stat().st_size and usage.preview_files == 1
        assert usage.total == usage.database + usage.thumbnails + usage.previews
        assert not [p for p in stored.parent.iterdir() if p != stored]  # no temporary left behind
        made_at = stored.stat().st_mtime_ns
    again = index_folder(ads, tmp_path / "cache", model=face_model, explain=None, audio=False)
    assert (again.outcomes[0].status, again.outcomes[0].preview) == ("skipped", "stored")
    assert stored.stat().st_mtime_ns == made_at  # made once

    # an ad indexed with --no-preview gets its proxy on the next run that makes previews
    later = index_folder(ads, tmp_path / "none", model=face_model, explain=None, audio=False)
    assert (later.outcomes[0].status, later.outcomes[0].preview) == ("skipped", "made")


def test_an_h264_mp4_needs_no_proxy(tmp_path: Path, face_model) -> None:
    clip = media.with_audio_clip(tmp_path / "ads" / "ad.mp4", seconds=1.0)
    assert browser_playability(clip).playable
    report = index_folder(tmp_path / "ads", tmp_path / "cache", model=face_model, explain=None, audio=False)
    assert report.outcomes[0].preview == "playable"
    with Store(tmp_path / "cache") as store:
        assert store.preview(content_hash(clip)) is None and store.disk_usage().preview_files == 0


def test_cli_no_preview(avi: Path, tmp_path: Path, weights_ready: None) -> None:
    from cli import app

    ads = tmp_path / "ads"
    ads.mkdir()
    (ads / "ad.avi").write_bytes(avi.read_bytes())
    done = CliRunner().invoke(app, ["index", str(ads), "--cache", str(tmp_path / "c"), "--no-preview",
                                    "--no-explain", "--no-audio", "--workers", "1"])
    assert done.exit_code == 0, done.output
    assert "cache size" in done.output and "previews 0.0 MiB in 0 files" in done.output
    assert not (tmp_path / "c" / "previews").exists() or not any((tmp_path / "c" / "previews").iterdir())


def test_a_failing_proxy_is_a_note_never_a_failed_ad(avi: Path, tmp_path: Path, face_model,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from emocore import indexer
    from emocore.errors import PreviewError

    def broken(*args: object, **kwargs: object) -> None:
        raise PreviewError("the encoder gave up")

    monkeypatch.setattr(indexer, "encode_preview", broken)
    (tmp_path / "ads").mkdir()
    (tmp_path / "ads" / "ad.avi").write_bytes(avi.read_bytes())
    outcome = index_folder(tmp_path / "ads", tmp_path / "cache", model=face_model, explain=None,
                           audio=False).outcomes[0]
    assert outcome.status == "indexed" and outcome.preview == "failed"
    assert outcome.note == "preview failed: the encoder gave up"
    with Store(tmp_path / "cache") as store:
        assert store.ad(outcome.ad_key).status == "ok" and store.preview(content_hash(avi)) is None


def test_the_worker_pools_writer_stores_the_proxy(tmp_path: Path) -> None:
    """A worker records the proxy like every other write; the one writer stores it."""
    cache = tmp_path / "cache"
    Store(cache).close()
    proxy = StoreProxy(cache, tmp_path / "scratch")
    try:
        assert proxy.preview("c0ffee") is None
        proxy.write_preview("c0ffee", b"mp4 bytes")
        assert proxy.preview("c0ffee") is None  # recorded, not written by the worker
        with Store(cache) as store:
            Writer(store).apply(proxy.calls)
            assert store.preview("c0ffee").read_bytes() == b"mp4 bytes"
        assert proxy.preview("c0ffee") is not None
    finally:
        proxy.close()


def test_a_clip_opening_on_black_gets_a_cover_that_is_not_black(tmp_path: Path, face_model) -> None:
    clip = _avi(tmp_path / "ads" / "opens-black.avi", size=(320, 240), seconds=2.0, black_s=1.0, sound=False)
    report = index_folder(tmp_path / "ads", tmp_path / "cache", model=face_model, explain=None, audio=False,
                          preview=None)
    key = report.outcomes[0].ad_key
    with Store(tmp_path / "cache") as store:
        ad, timeline = store.ad(key), store.timeline(key)
        first = cv2.imread(str(store.thumbnail(key, 0)), cv2.IMREAD_GRAYSCALE)
        cover = cv2.imread(str(store.cover(key)), cv2.IMREAD_GRAYSCALE)
    assert clip.is_file() and first.mean() < 8  # the first frame is black: it was the thumbnail until now
    assert ad.cover_idx is not None and timeline.times[ad.cover_idx] >= 1.0
    assert cover.mean() > 60 and cover.std() > 20


def test_the_cover_is_the_largest_face_in_a_frame_that_is_not_blank() -> None:
    rng = np.random.default_rng(0)
    black = frame_look(np.zeros((90, 160, 3), np.uint8))
    white = frame_look(np.full((90, 160, 3), 255, np.uint8))
    grey = frame_look(np.full((90, 160, 3), 120, np.uint8))
    busy = frame_look(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))
    calm = frame_look(np.repeat(np.tile(np.linspace(20, 230, 160).astype(np.uint8), (90, 1))[..., None], 3, 2))
    assert black.blank and white.blank and grey.blank and not busy.blank and not calm.blank
    assert busy.detail > calm.detail
    looks = [black, calm, busy, calm]
    nan = math.nan
    # a large face in a black frame does not count; the largest face elsewhere wins over detail
    assert choose_cover(looks, np.array([400.0, 120.0, 60.0, nan])).index == 1
    assert choose_cover(looks, np.array([400.0, 120.0, 60.0, nan])).reason == "largest face"
    assert choose_cover(looks, np.full(4, nan)).index == 2  # no face: the most detailed frame
    assert choose_cover(looks).reason == "most detailed"
    assert choose_cover([black, white, grey]).reason == "all blank"
    with pytest.raises(ValueError):
        choose_cover([])


def test_the_player_plays_the_original_else_the_proxy_else_says_why(avi: Path, tmp_path: Path) -> None:
    mp4 = media.with_audio_clip(tmp_path / "ok.mp4", seconds=0.5)
    assert choose_player(mp4, None).source == "original"
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(b"")
    chosen = choose_player(avi, proxy)
    assert (chosen.source, chosen.path, chosen.mime) == ("preview", proxy, "video/mp4")
    nothing = choose_player(avi, None)
    assert nothing.source == "none" and "cannot play .avi" in nothing.reason and "--no-preview" in nothing.reason
    gone = choose_player(tmp_path / "gone.avi", proxy)
    assert gone.source == "preview" and "no longer at" in gone.reason
    assert choose_player(tmp_path / "gone.avi", None).source == "none"


@pytest.mark.slow
def test_the_ad_page_plays_the_avis_proxy_from_the_moment_and_seeks_on_a_click(demo_cache: Path,
                                                                               tmp_path: Path) -> None:
    from browser import assert_no_exception, chromium_page, click_plot_point, goto_app, streamlit_server, wait_for_text

    with Store(demo_cache, readonly=True) as store:
        ad = next(a for a in store.ads() if a.name == "Megamind.avi")
        times = store.timeline(ad.key).times
        assert store.preview(ad.content_hash) is not None
        cover = cv2.imread(str(store.cover(ad.key)), cv2.IMREAD_GRAYSCALE)
    assert cover.mean() > 20  # the demo opens on black; its cover does not
    # a moment half-way between whole seconds: st.video alone would start 0.5 s early
    start = int(np.argmin(np.abs(times - 5.5)))
    later = int(np.argmin(np.abs(times - 8.5)))
    playing = ("() => { const v = document.querySelector('video[data-testid=\"stVideo\"]');"
               " return v ? {ready: v.readyState, t: v.currentTime, error: v.error && v.error.code} : null; }")

    def wait_until_at(page, t: float) -> dict:
        page.wait_for_function(
            f"() => {{ const v = document.querySelector('video[data-testid=\"stVideo\"]');"
            f" return v && v.readyState >= 2 && Math.abs(v.currentTime - {t}) < 0.25; }}", timeout=60_000)
        return page.evaluate(playing)

    with streamlit_server(demo_cache) as url, chromium_page(tmp_path) as page:
        goto_app(page, f"{url}/ad?ad={ad.key}&t={times[start]:.3f}", timeout=120_000)
        wait_for_text(page, f"The moment at {times[start]:.1f} s", timeout=60_000)
        wait_for_text(page, "The original cannot play here")
        state = wait_until_at(page, float(times[start]))
        assert state["ready"] >= 2 and state["error"] is None
        click_plot_point(page, later, key="ad-timeline", trace=None)
        wait_for_text(page, f"The moment at {times[later]:.1f} s")
        assert wait_until_at(page, float(times[later]))["ready"] >= 2
        assert_no_exception(page)
