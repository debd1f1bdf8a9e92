"""The `srtk` command line: each subcommand parses options, builds a config, calls one core function."""

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from srtk.errors import SrtkError, SrtkWarning

try:  # Typer >= 0.26 carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on plain click
    from click.exceptions import NoArgsIsHelpError, UsageError
from srtk.presets import describe_presets
from srtk.progress import ProgressFn, no_progress

if TYPE_CHECKING:  # the demo pulls in torch: imported by its command only
    from srtk.demo import DemoResult

app = typer.Typer(
    name="srtk",
    help="Structure-preserving super-resolution toolkit: train, evaluate, upscale and inspect SR models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: switches without a <bool> type, defaults as [default: x]
)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
_python_show_warning = warnings.showwarning
# A table is never cut at 80 columns when stdout is a file or a pipe: paths stay whole.
stdout = Console(width=None if sys.stdout.isatty() else 10_000)

# Exit statuses (README "Errors and exit codes").
EXIT_FAILED = 1  # an input, a file or a configuration could not be used (some inputs of a batch failed)
EXIT_USAGE = 2  # the command line itself is wrong: unknown option, missing or malformed value
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM; training saves a resumable checkpoint first


def _print_version(value: bool) -> None:
    if value:
        from srtk.version import __version__

        stdout.print(f"srtk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print srtk's version and exit."
    ),
) -> None:
    """Structure-preserving super-resolution toolkit: train, evaluate, upscale and inspect SR models."""


@contextmanager
def rich_progress() -> Iterator[ProgressFn]:
    """A ProgressFn drawing one rich bar per task description (on stderr, so stdout stays clean)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),  # e.g. training: it/s and the latest losses
    )
    if not console.is_terminal:  # a log file or a pipe gets results and error lines, not bar redraws
        yield no_progress
        return
    bars = Progress(*columns, console=console, transient=False)
    tasks: dict[str, int] = {}

    def report(description: str, done: int, total: int, detail: str = "") -> None:
        if not tasks:  # started by the first report: an error before any work leaves stderr at one line
            bars.start()
        if description not in tasks:
            tasks[description] = bars.add_task(description, total=total, detail=detail)
        bars.update(tasks[description], completed=done, total=total, detail=detail)

    try:
        yield report
    finally:
        if tasks:
            bars.stop()


def _split(values: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in values.split(",") if v.strip())


CONFIG_OPTION = typer.Option(None, "--config", help="YAML or TOML file of options (below flags and --set).")
SET_OPTION = typer.Option(
    [], "--set", help="KEY=VALUE, the most specific: e.g. tile=256 (train: optim.learning_rate=2e-4)."
)


def _given(flags: dict[str, object]) -> dict[str, object]:
    """The flags the user typed (None = not given), so that a config file's values are not overwritten by defaults."""
    return {key: value for key, value in flags.items() if value is not None}


def _check_not_a_method(model: str) -> None:
    """`--model spsr-p` names a training method: say how to get a model of it."""
    from srtk.models.bundled import bundled_path
    from srtk.presets import PRESETS

    if model in PRESETS and not Path(model).exists() and bundled_path(model) is None:
        raise SrtkError(
            f"{model}: a training method, not a model; train one with `srtk train --method {model}` and pass "
            "its final.safetensors to --model"
        )


def _resolve(defaults: object, config: Path | None, flags: dict[str, object], overrides: list[str]) -> object:
    """Defaults < --config file < flags < --set: the one precedence of every command (srtk.config.resolve).

    A checkpoint's own factor is the default scale: `--scale` (or a file / --set value) is needed only to ask
    a weight-free model such as bicubic for another factor than 4."""
    from dataclasses import replace

    from srtk.config import load_config_file, parse_overrides, resolve

    file = load_config_file(config) if config is not None else None
    parsed = parse_overrides(overrides)
    cfg = resolve(defaults, file=file, flags=_given(flags), overrides=parsed)
    if not hasattr(cfg, "model"):
        return cfg
    _check_not_a_method(cfg.model)  # type: ignore[attr-defined]
    from srtk.models.registry import check_model_reference, native_scale

    check_model_reference(cfg.model)  # type: ignore[attr-defined]  # before any work: the name says what exists
    scale_given = flags.get("scale") is not None or "scale" in (file or {}) or "scale" in parsed
    if hasattr(cfg, "scale") and not scale_given:
        own = native_scale(cfg.model)  # type: ignore[attr-defined]
        if own is not None:
            cfg = replace(cfg, scale=own)  # type: ignore[type-var]
    return cfg


@app.command()
def evaluate(
    model: str | None = typer.Option(None, help="'bicubic' (default) or a checkpoint path (srtk or official format)."),
    datasets: str | None = typer.Option(None, help="Comma-separated benchmark names or folders (default: set5,set14)."),
    data_root: Path | None = typer.Option(None, help="Folder holding the benchmarks (else $SRTK_DATA, then cache)."),
    scale: int | None = typer.Option(None, help="Upscaling factor: 2, 3, 4 or 8 (default: 4)."),
    metrics: str | None = typer.Option(None, help="Comma-separated: psnr, ssim, niqe, lpips (default: psnr,ssim)."),
    out: Path | None = typer.Option(None, help="Write the JSON result here."),
    device: str | None = typer.Option(None, help="'auto' (default), 'cpu', 'cuda', 'cuda:1', ..."),
    precision: str | None = typer.Option(None, help="auto (default: fp32 on CPU, bf16 on GPU), fp32, bf16 or fp16."),
    tile: str | None = typer.Option(None, help="LR tile size, 'auto' (default: what fits in memory) or 'none'."),
    tile_overlap: int | None = typer.Option(None, help="LR pixels of context per tile (default: receptive field)."),
    self_ensemble: bool | None = typer.Option(None, help="Average the 8 flips/rotations (the papers' '+' rows)."),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """PSNR/SSIM (Y channel), NIQE and LPIPS of MODEL on benchmark DATASETS, under the papers' protocol.

    Writes a JSON result (per image and mean): --out, or evaluate-MODEL-xSCALE.json in the current folder."""
    from srtk.paths import check_input_folder, check_output_file

    if data_root is not None:
        check_input_folder(data_root, "--data-root")
    if out is not None:
        check_output_file(out, suffixes=(".json",))
    from srtk.config import EvalConfig
    from srtk.data.io import write_json
    from srtk.evaluate import run_evaluation

    flags = {
        "model": model,
        "datasets": _split(datasets) if datasets is not None else None,
        "scale": scale,
        "metrics": _split(metrics) if metrics is not None else None,
        "data_root": data_root,
        "device": device,
        "precision": precision,
        "tile": tile,
        "tile_overlap": tile_overlap,
        "self_ensemble": self_ensemble,
    }
    cfg = _resolve(EvalConfig(), config, flags, overrides)
    assert isinstance(cfg, EvalConfig)
    out = out or _free_name(Path(f"evaluate-{Path(cfg.model).stem}-x{cfg.scale}.json"))
    with rich_progress() as progress:
        result = run_evaluation(cfg, progress=progress)
    table = Table(title=f"{cfg.model} x{cfg.scale}")
    table.add_column("dataset")
    table.add_column("images", justify="right")
    for key in cfg.result_keys:
        table.add_column(key, justify="right")
    for name, ds in result.datasets.items():
        mean = ds.mean()
        count = f"{len(ds.images)}" + (f" of {ds.expected_images} (!)" if ds.incomplete else "")
        table.add_row(name, count, *(f"{mean[k]:.4f}" if k in mean else "-" for k in cfg.result_keys))
    stdout.print(table)
    for ds in result.datasets.values():
        if ds.incomplete:
            print_warning(ds.incomplete)
    write_json(out, result.as_dict())
    stdout.print(f"results written to {out}")
    for ds in result.datasets.values():
        for message in ds.failed.values():
            print_error(message)
    if result.num_failed:
        raise typer.Exit(EXIT_FAILED)


def _free_name(path: Path) -> Path:
    """`path`, or `stem-2.json`, `stem-3.json`, ... if it exists: a default name never replaces an earlier result."""
    candidate, number = path, 2
    while candidate.exists():
        candidate, number = path.with_name(f"{path.stem}-{number}{path.suffix}"), number + 1
    return candidate


@app.command()
def upscale(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (never overwrites an input)."),
    model: str | None = typer.Option(None, help="'bicubic' (default) or a checkpoint path."),
    scale: int | None = typer.Option(None, help="The model's factor: 4 for bicubic (default); a checkpoint's own."),
    outscale: float | None = typer.Option(None, help="Final factor, e.g. 2 or 3.5: the model, then MATLAB bicubic."),
    tile: str | None = typer.Option(None, help="LR tile size, 'auto' (default: what fits in memory) or 'none'."),
    tile_overlap: int | None = typer.Option(None, help="LR pixels of context per tile (default: receptive field)."),
    device: str | None = typer.Option(None, help="'auto' (default), 'cpu', 'cuda', ..."),
    precision: str | None = typer.Option(None, help="auto (default: fp32 on CPU, bf16 on GPU), fp32, bf16 or fp16."),
    self_ensemble: bool | None = typer.Option(None, help="Average the 8 flips/rotations."),
    suffix: str | None = typer.Option(None, help="Output format by file suffix: .png (default), .jpg, .webp, ..."),
    bit_depth: int | None = typer.Option(None, help="8 or 16 bits per channel (default: the input's; 16 needs .png)."),
    alpha: str | None = typer.Option(None, help="Alpha upscaled by 'bicubic' (default) or the 'model'."),
    recursive: bool | None = typer.Option(None, help="Also upscale subfolders, mirrored in OUT."),
    skip_existing: bool | None = typer.Option(None, help="Keep outputs already in OUT; do not redo their inputs."),
    report: Path | None = typer.Option(None, help="Write a JSON report here: every file's status, reason, seconds."),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Super-resolve images with MODEL into OUT, each in its own mode (gray, alpha, 16-bit come back as given).

    Outputs are named after their inputs with SUFFIX; an output that would overwrite an input is written beside it
    as NAME_x4, and inputs that would share a name keep their extension or folder in it (a_jpg.png, a_png.png).
    Exit status: 0 all written, 1 a file failed, 130 interrupted (no partial file is left).
    """
    from srtk.config import UpscaleConfig
    from srtk.data.io import write_json
    from srtk.infer import upscale_files

    flags = {
        "model": model,
        "scale": scale,
        "outscale": outscale,
        "tile": _tile_option(tile),
        "tile_overlap": tile_overlap,
        "device": device,
        "precision": precision,
        "self_ensemble": self_ensemble,
        "suffix": suffix,
        "bit_depth": bit_depth,
        "alpha": alpha,
        "recursive": recursive,
        "skip_existing": skip_existing,
        "report": report,
    }
    cfg = _resolve(UpscaleConfig(), config, flags, overrides)
    assert isinstance(cfg, UpscaleConfig)
    try:
        with rich_progress() as progress:
            result = upscale_files(inputs, out, cfg, progress=progress)
    except KeyboardInterrupt:  # while loading the model or listing files: nothing was written yet
        console.print("interrupted: 0 image(s) written", highlight=False)
        raise typer.Exit(130) from None
    _print_upscale_summary(result, out)
    if cfg.report is not None:
        write_json(cfg.report, result.as_dict(cfg, out))
        stdout.print(f"report written to {cfg.report}")
    if result.interrupted:
        console.print(f"interrupted: {len(result.written)} image(s) written before Ctrl-C", highlight=False)
        raise typer.Exit(130)
    if result.failed:
        raise typer.Exit(1)


def _tile_option(text: str | None) -> int | str | None:
    """--tile as typed: a size, 'auto', or 'none' (the whole image at once); a bad value is a one-line error."""
    if text is None or text.lower() == "auto":
        return text and "auto"
    if text.lower() == "none":
        return "none"  # the config reads "none" as None
    try:
        return int(text)
    except ValueError:
        raise SrtkError(f"--tile must be a size in LR pixels, 'auto' or 'none', not {text!r}") from None


def _print_upscale_summary(result: "UpscaleReport", out: Path) -> None:  # noqa: F821 (imported lazily)
    """Counts, then one row per skipped or failed file with its reason (stdout); each failure as an error line."""
    for note in result.notes:
        stdout.print(note, highlight=False)
    counts = result.counts()
    rows = [f for f in result.files if f.status != "written"]
    if rows:
        table = Table(title="not written")
        table.add_column("file", overflow="fold")
        table.add_column("status")
        table.add_column("reason", overflow="fold")
        for row in rows:
            table.add_row(row.source, row.status, row.reason)
        stdout.print(table)
    stdout.print(
        f"{counts['written']} written to {out}, {counts['skipped']} skipped, {counts['failed']} failed", highlight=False
    )
    reruns, halvings = sum(f.fp32_reruns for f in result.files), sum(f.halvings for f in result.files)
    if reruns or halvings:
        stdout.print(f"{reruns} tile(s) re-run in fp32 (reduced precision overflowed), {halvings} tile halving(s)")
    for message in result.failed.values():
        print_error(message)


@app.command()
def gradmap(
    source: Path = typer.Argument(..., help="Input image."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image path."),
    mode: Literal["rgb", "luma"] = typer.Option(
        "rgb", help="'rgb': M(I) per channel (as the papers' losses); 'luma': of Y only."
    ),
    normalize: Literal["percentile", "max", "none"] = typer.Option(
        "percentile", help="'percentile' (99.5th -> white), 'max' or 'none'."
    ),
    gamma: float = typer.Option(1.0, help="Display gamma (< 1 brightens faint structure)."),
) -> None:
    """Write the gradient-intensity map M(I) of SOURCE (SPSR eq. 2) as an image."""
    from srtk.gradmap import gradmap_file

    stdout.print(f"gradient map written to {gradmap_file(source, out, mode=mode, normalize=normalize, gamma=gamma)}")


@app.command()
def convert(
    source: Path = typer.Argument(
        ...,
        help="Official checkpoint (.pth): SPSR, ESRGAN/BasicSR, EDSR-PyTorch EDSR/RCAN, VGG critic, PCL embedding.",
    ),
    target: Path = typer.Argument(..., help="Output .safetensors path (its .json model card is written beside it)."),
) -> None:
    """Convert an official checkpoint to srtk's format (safetensors + model card), detecting its layout."""
    from srtk.paths import check_output_file

    if not source.is_file():
        raise SrtkError(
            f"{source}: no such file" if not source.exists() else f"{source}: is a folder, not a checkpoint"
        )
    check_output_file(target, suffixes=(".safetensors",), inputs=(source,))
    from srtk.models.registry import convert_official_to_srtk

    card = convert_official_to_srtk(source, target)
    stdout.print(f"{card.architecture} x{card.scale} ({card.source}) written to {target}")


@app.command()
def info(
    model: str = typer.Option(..., help="Registry name or checkpoint path."),
    scale: int = typer.Option(4, help="Upscaling factor for registry names."),
    lr_size: str = typer.Option("320x180", help="LR input WIDTHxHEIGHT for the FLOPs count (x4: 1280x720 out)."),
) -> None:
    """Parameters, FLOPs at a given input size and feature taps of MODEL."""
    from srtk.models.summary import describe_model

    for key, value in describe_model(model, scale=scale, lr_size=lr_size).items():
        stdout.print(f"{key:>12}: {value}")


@app.command()
def download(
    dataset: str = typer.Argument(..., help="Registry name, e.g. div2k."),
    root: Path | None = typer.Option(None, help="Where to unpack (default: srtk's data cache)."),
    sha256: str | None = typer.Option(None, help="Expected SHA-256 of the archive (required if none is pinned)."),
) -> None:
    """Download a dataset of the registry, verifying its checksum (srtk's only network access)."""
    from srtk.paths import check_output_folder

    if root is not None:
        check_output_folder(root)
    from srtk.data.datasets import download_dataset

    stdout.print(f"{dataset} unpacked to {download_dataset(dataset, root=root, sha256=sha256)}")


@app.command()
def datasets(data_root: Path | None = typer.Option(None, help="Folder holding the benchmarks.")) -> None:
    """List the dataset registry: where each dataset is found and how many of its images are there."""
    from srtk.paths import check_input_folder

    if data_root is not None:
        check_input_folder(data_root, "--data-root")
    from srtk.data.datasets import BENCHMARKS, resolve_dataset
    from srtk.data.io import list_images

    table = Table(title="datasets")
    for column in ("name", "found", "of", "found at", "about"):
        table.add_column(column, justify="right" if column in ("found", "of") else "left")
    table.columns[3].overflow = "fold"  # a path is folded onto more lines on a narrow terminal, never cut
    for name, info in BENCHMARKS.items():
        try:
            folder = resolve_dataset(name, data_root)
        except SrtkError:
            table.add_row(name, "-", str(info.num_images or "?"), "-", info.description)
            continue
        found = len(list_images(folder))
        short = info.num_images is not None and found != info.num_images
        count = f"[yellow]{found}[/yellow]" if short else str(found)
        table.add_row(name, count, str(info.num_images or "?"), str(folder), info.description)
    stdout.print(table)


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print the model cards as JSON.")) -> None:
    """List the models bundled with srtk (`--model NAME` anywhere) and their measured metrics."""
    import json

    from srtk.models.bundled import bundled_cards, bundled_folder, bundled_models

    cards = bundled_cards()
    if as_json:
        print(json.dumps({name: card.as_dict() for name, card in cards.items()}, indent=2))
        return
    if not cards:
        raise SrtkError(f"{bundled_folder()}: no bundled models there; the installation is incomplete")
    scored = {d for card in cards.values() for d, m in card.metrics.items() if isinstance(m, dict) and "psnr_y" in m}
    datasets = sorted(scored, key=_dataset_order)
    table = Table(title=f"bundled models (x{', x'.join(sorted({str(c.scale) for c in cards.values()}))})")
    for column in ("model", "method", "network", "MB", "trained"):
        table.add_column(column, justify="right" if column == "MB" else "left")
    for dataset in datasets:
        subset = {card.metrics[dataset].get("images") for card in cards.values() if dataset in card.metrics} - {None}
        name = f"{dataset} (first {subset.pop()} images)" if subset else dataset
        table.add_column(f"{name}\nPSNR-Y / SSIM-Y / NIQE", justify="right")
    files = bundled_models()
    for name, card in cards.items():
        training = card.training
        minutes = training.get("wall_time_s") and f"{training['wall_time_s'] / 60:.0f} min"
        trained = f"{training.get('iterations', '?')} it, {minutes or '?'} {str(training.get('hardware', ''))[:3]}"
        label = f"{name} (preview)" if training.get("preview") else name  # below its bar: MODEL_ZOO.md says why
        row = [label, card.method or "-", _network_text(card), f"{files[name].stat().st_size / 1e6:.1f}", trained]
        for dataset in datasets:
            m = card.metrics.get(dataset, {})
            row.append(" / ".join(_metric_text(m.get(key), digits) for key, digits in METRIC_COLUMNS))
        table.add_row(*row)
    stdout.print(table)
    stdout.print("Metrics: srtk compare on the shipped weights (PSNR/SSIM on Y, 4 px border; NIQE lower is better).")
    if any(card.training.get("preview") for card in cards.values()):
        stdout.print("(preview): trained at CPU scale and below its bar (PSNR over bicubic, or NIQE under it).")
    stdout.print("Use one: srtk upscale photo.png --model NAME; its card: srtk info --model NAME. See MODEL_ZOO.md.")


METRIC_COLUMNS = (("psnr_y", 2), ("ssim_y", 4), ("niqe", 2))


def _metric_text(value: object, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _dataset_order(name: str) -> tuple[int, str]:
    order = ("set5", "set14", "urban100")
    return (order.index(name) if name in order else len(order), name)


def _network_text(card: object) -> str:
    config = getattr(card, "config", {})
    backbone = config.get("backbone")
    return f"{card.architecture}({backbone})" if backbone else card.architecture  # type: ignore[attr-defined]


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Folder for every output (a second run rewrites it)."),
    iterations: int = typer.Option(1500, help="Training iterations of the demo model (about a minute on a CPU)."),
    device: str = typer.Option("auto", help="'auto', 'cpu', 'cuda', ..."),
) -> None:
    """Train a small model for a minute, compare it and the bundled models with bicubic, upscale, draw M(I)."""
    from srtk.paths import check_output_folder

    if iterations <= 0:
        raise SrtkError(f"--iterations must be positive, not {iterations}")
    check_output_folder(out)
    from srtk.demo import TEST_SAMPLES, TRAIN_SAMPLES, run_demo
    from srtk.models.bundled import bundled_models

    count = len(bundled_models())
    console.print(
        f"srtk demo: trains a small EDSR from scratch on {len(TRAIN_SAMPLES)} photographs ({iterations} iterations), "
        f"then compares it{f' and the {count} bundled models' if count else ''} with bicubic on {len(TEST_SAMPLES)} "
        f"held-out photographs, upscales them and draws gradient maps, all into {out}/",
        highlight=False,
        markup=False,
    )
    with rich_progress() as progress:
        result = run_demo(out, iterations=iterations, device=device, progress=progress)
    stdout.print(_demo_table(result))
    if not any(row.origin == "bundled" for row in result.rows):
        from srtk.models.bundled import bundled_folder

        stdout.print(f"No bundled models in {bundled_folder()}: the installation is incomplete (srtk models).")
    stdout.print(
        "PSNR-oriented models aim at fidelity (PSNR/SSIM on Y, higher is better); perceptual ones at realistic "
        "texture (NIQE, lower is better), usually at some PSNR cost."
    )
    maps = result.gradient_maps
    rows = (
        ("report", f"{result.report}  (open in a browser: zoomable crops and gradient maps of every model)"),
        ("tables, plot", f"{out / 'compare'}/table.md, table.csv, perception_distortion.png, figures/"),
        ("upscaled", ", ".join(str(out / "sr" / label) for label in result.upscaled)),
        ("gradient maps", f"{maps[0].parent}/ ({', '.join(p.name for p in maps)})"),
        ("trained model", f"{result.model} (+ card, training log beside it)"),
        ("summary", str(result.result_file)),
    )
    stdout.print(f"\nEverything is in {out}/ (done in {result.seconds['total']:.0f} s):", highlight=False)
    for name, where in rows:
        stdout.print(f"  {name:<14}{where}", highlight=False, markup=False)
    stdout.print("Next:", highlight=False)
    for command in result.next_commands:
        stdout.print(f"  {command}", highlight=False, markup=False)


def _demo_table(result: "DemoResult") -> Table:
    """The demo's final table: each model's mean metrics on the test photographs and its PSNR-Y gain over bicubic."""
    from srtk.demo import TEST_SAMPLES

    bicubic = next(row.metrics for row in result.rows if row.origin == "baseline")
    table = Table(title=f"x4 super-resolution of {len(TEST_SAMPLES)} held-out photographs ({', '.join(TEST_SAMPLES)})")
    for column in ("model", "kind", "PSNR-Y ↑", "SSIM-Y ↑", "NIQE ↓", "vs bicubic"):
        table.add_column(column, justify="left" if column in ("model", "kind") else "right", no_wrap=True)
    for index, row in enumerate(result.rows):
        label = row.label
        if row.origin == "trained now":
            label += f" ({result.iterations} it, {result.training_seconds:.0f} s)"
        colour = "green" if row.psnr_gain > 0 else "red"
        gain = "-" if row.origin == "baseline" else f"[{colour}]{row.psnr_gain:+.2f} dB"
        niqe = f"{row.metrics['niqe']:.2f}"
        if row.origin != "baseline" and row.metrics["niqe"] < bicubic["niqe"]:
            niqe = f"[green]{niqe}"
        following = result.rows[index + 1] if index + 1 < len(result.rows) else None
        table.add_row(
            escape(label),
            row.kind,
            f"{row.metrics['psnr_y']:.2f}",
            f"{row.metrics['ssim_y']:.4f}",
            niqe,
            gain,
            end_section=following is not None and (following.origin, following.kind) != (row.origin, row.kind),
        )
    return table


def _training_flags(named: dict[str, object], data: list[str]) -> dict[str, object]:
    """The dotted config keys of the flags typed (None: not given) and of --data (repeatable)."""
    flags = {key: value for key, value in named.items() if value is not None}
    if data:
        flags["data.train"] = list(data)
    return flags


@app.command(
    epilog="Method presets (the papers' settings; change any with --config or --set):\n\n"
    # \b keeps click from re-wrapping a paragraph: each preset stays one searchable line
    + "\n\n".join(f"\b\n{paragraph}" for paragraph in describe_presets().split("\n\n"))
)
def train(
    method: str | None = typer.Option(None, help="A preset listed below (default: psnr)."),
    backbone: str | None = typer.Option(None, help="Registry name of the SR network / SR branch, e.g. rrdbnet."),
    config: Path | None = typer.Option(None, "--config", help="YAML or TOML file of options (overrides the preset)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="SECTION.KEY=VALUE for any other option, e.g. optim.learning_rate=2e-4 (--show-config)."
    ),
    data: list[str] = typer.Option([], "--data", help="Training set: registry name or folder of HR images."),
    data_root: Path | None = typer.Option(None, help="Folder holding registry datasets (else $SRTK_DATA, then cache)."),
    val_dataset: str | None = typer.Option(None, help="Validation set: registry name or folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder: checkpoints, log, result."),
    scale: int | None = typer.Option(None, help="Upscaling factor 2, 3, 4 or 8 (default: 4)."),
    iterations: int | None = typer.Option(None, help="Total training iterations (default: the preset's)."),
    batch_size: int | None = typer.Option(None, help="Patches per batch and process (default: the preset's)."),
    patch_size: int | None = typer.Option(None, help="LR patch size in pixels; HR = x scale (default: the preset's)."),
    val_every: int | None = typer.Option(None, help="Iterations between validations (default: 5000)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in OUT (else an error)."),
    init: Path | None = typer.Option(None, "--init", help="Initialise the generator from this (PSNR) checkpoint."),
    nse: Path | None = typer.Option(
        None, "--nse", help="spsr-p/spsr-j: the structure extractor (final.safetensors of srtk pretrain-nse)."
    ),
    embedding: Path | None = typer.Option(
        None, "--embedding", help="pcl: a fixed pre-trained embedding network E_D (PCL-F, paper 004 Table V)."
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Train a preset that starts from --init without one (a warning)."
    ),
    device: str | None = typer.Option(None, help="'auto', 'cpu', 'cuda', ... (torchrun: one GPU per rank)."),
    precision: str | None = typer.Option(None, help="fp32, bf16 or fp16."),
    allow_random_perceptual: bool = typer.Option(
        False, "--allow-random-perceptual", help="Tests only: VGG/LPIPS losses with random weights."
    ),
    skip_bad_images: bool = typer.Option(
        False, "--skip-bad-images", help="Leave out unreadable or too small training images (a warning)."
    ),
    show_config: bool = typer.Option(
        False, "--show-config", help="Print the resolved configuration (every --set key) as JSON and exit."
    ),
) -> None:
    """Train a method (preset < --config file < flags and --set), writing checkpoints and a JSON result."""
    import json

    from srtk.config import load_config_file, parse_overrides
    from srtk.paths import check_input_folder, check_output_folder
    from srtk.presets import resolve_train_config

    if resume and overwrite:
        raise SrtkError("--resume continues the run in --out, --overwrite replaces it: choose one")
    if data_root is not None:
        check_input_folder(data_root, "--data-root")
    if out is not None:
        check_output_folder(out)
    named = {
        "model.backbone": backbone,
        "data.data_root": data_root,
        "data.val_dataset": val_dataset,
        "data.scale": scale,
        "data.batch_size": batch_size,
        "data.lr_patch_size": patch_size,
        "checkpoint.out_dir": out,
        "checkpoint.validate_every": val_every,
        "optim.iterations": iterations,
        "model.init": init,
        "structure.nse": nse,
        "contrastive.embedding_checkpoint": embedding,
        "runtime.device": device,
        "runtime.precision": precision,
    }
    flags = _training_flags(named, data)
    switches = {
        "checkpoint.resume": resume,
        "checkpoint.overwrite": overwrite,
        "losses.allow_random_perceptual": allow_random_perceptual,
        "model.from_scratch": from_scratch,
        "data.skip_unusable_images": skip_bad_images,
    }
    flags.update({key: True for key, on in switches.items() if on})
    file = load_config_file(config) if config is not None else None
    if resume and file is None and out is not None:
        from srtk.train.run_folder import CONFIG_FILE, STATE_FILE

        if not (out / STATE_FILE).is_file():  # before the preset's data is looked for: the folder is the problem
            raise SrtkError(f"{out}: no run to resume (no {STATE_FILE}); start it without --resume")
        if (out / CONFIG_FILE).is_file():  # `--out DIR --resume` alone continues the run as it was
            file = json.loads((out / CONFIG_FILE).read_text())["config"]
    cfg = resolve_train_config(method, file=file, flags=flags, overrides=parse_overrides(overrides))
    if show_config:
        stdout.print_json(json.dumps(cfg.as_dict()))
        return
    from srtk.train.engine import run_training  # torch loads only once the command line is known to be right

    with rich_progress() as progress:
        result = run_training(cfg, progress=progress)
    losses = ", ".join(f"{name} {value:.4g}" for name, value in result.final_losses.items())
    stdout.print(f"{result.status} after {result.iterations} iterations; losses: {losses or '-'}")
    if result.validation:
        stdout.print(f"validation: psnr_y {result.validation['psnr_y']:.4f}, ssim_y {result.validation['ssim_y']:.4f}")
    stdout.print(f"outputs in {result.out_dir}")
    if result.status == "interrupted":
        stdout.print(f"resume with: srtk train --out {result.out_dir} --resume")
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command("pretrain-nse")
def pretrain_nse(
    task: str = typer.Option("contrastive", help="Pretext task: contrastive (SPSR-P) or jigsaw (SPSR-J)."),
    sampling: str | None = typer.Option(None, help="Contrastive context layout: h, v or c (default: h)."),
    data: list[str] = typer.Option([], "--data", help="Training set: registry name or folder of HR images."),
    data_root: Path | None = typer.Option(None, help="Folder holding registry datasets (else $SRTK_DATA, then cache)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder: checkpoints, log, result."),
    iterations: int | None = typer.Option(None, help="Total training iterations."),
    batch_size: int | None = typer.Option(None, help="Patches per batch (default: 48)."),
    patch_size: int | None = typer.Option(None, help="HR patch size in pixels, a multiple of 4 (default: 420)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in OUT (else an error)."),
    evaluate: Path | None = typer.Option(
        None, "--evaluate", help="Measure this NSE instead of training one: heads re-fitted, top-1 vs chance."
    ),
    test: str = typer.Option("set14", help="--evaluate: test images (registry name or folder)."),
    repeats: int = typer.Option(8, help="--evaluate: random anchor draws per test patch."),
    device: str | None = typer.Option(None, help="'auto', 'cpu', 'cuda', ... (torchrun: one GPU per rank)."),
    precision: str | None = typer.Option(None, help="fp32, bf16 or fp16."),
    config: Path | None = typer.Option(None, "--config", help="YAML or TOML file of options (overrides the preset)."),
    overrides: list[str] = typer.Option([], "--set", help="SECTION.KEY=VALUE, e.g. pretext.temperature=32."),
) -> None:
    """Train the neural structure extractor by a pretext task (paper 000 sec. 4.2), or measure one (--evaluate)."""
    from srtk.config import load_config_file, parse_overrides
    from srtk.errors import ConfigError
    from srtk.paths import check_input_folder, check_output_folder
    from srtk.presets import resolve_pretext_config

    if data_root is not None:
        check_input_folder(data_root, "--data-root")
    if out is not None:
        check_output_folder(out)
    if evaluate is not None and not evaluate.is_file():
        raise SrtkError(f"{evaluate}: no such file (--evaluate takes the final.safetensors of srtk pretrain-nse)")
    flags: dict[str, object] = {}
    if patch_size is not None:
        if patch_size <= 0 or patch_size % 4:
            raise ConfigError(f"--patch-size {patch_size}: must be a positive multiple of 4 (the NSE's stride)")
        flags["data.lr_patch_size"] = patch_size // 4  # the data stream cuts HR patches as LR patches x4
    named = {
        "pretext.sampling": sampling,
        "optim.iterations": iterations,
        "data.batch_size": batch_size,
        "data.data_root": data_root,
        "runtime.device": device,
        "runtime.precision": precision,
    }
    flags.update(_training_flags(named, data))
    file = load_config_file(config) if config is not None else None
    if evaluate is not None:
        _evaluate_nse(evaluate, out or Path("runs/nse-evaluation"), test, repeats, flags, file, overrides)
        return
    flags["checkpoint.out_dir"] = out or Path(f"runs/nse-{task}")
    flags.update({key: True for key, on in (("checkpoint.resume", resume), ("checkpoint.overwrite", overwrite)) if on})
    cfg = resolve_pretext_config(task, file=file, flags=flags, overrides=parse_overrides(overrides))
    from srtk.train.engine import run_training  # torch loads only once the command line is known to be right

    with rich_progress() as progress:
        result = run_training(cfg, progress=progress)
    losses = ", ".join(f"{name} {value:.4g}" for name, value in result.final_losses.items())
    stdout.print(f"{result.status} after {result.iterations} iterations; {losses or '-'}")
    stdout.print(f"NSE written to {result.model or result.out_dir}")
    if result.status == "interrupted":
        stdout.print(f"resume with: srtk pretrain-nse --task {task} --out {result.out_dir} --resume")
        raise typer.Exit(130)


def _evaluate_nse(
    nse: Path, out: Path, test: str, repeats: int, flags: dict, file: dict | None, overrides: list[str]
) -> None:
    from srtk.config import parse_overrides
    from srtk.presets import resolve_pretext_config
    from srtk.train.pretext_evaluation import NSEEvaluation, evaluate_nse, refit_flags

    train = tuple(flags.pop("data.train", ("div2k",)))  # type: ignore[arg-type]
    spec = NSEEvaluation(
        nse=nse,
        out_dir=out,
        train=train,
        data_root=flags.get("data.data_root"),  # type: ignore[arg-type]
        test=test,
        sampling=flags.pop("pretext.sampling", None),  # type: ignore[arg-type]
        repeats=repeats,
        device=str(flags.pop("runtime.device", "auto")),
    )
    refit = {
        task: resolve_pretext_config(
            task,
            file=file,
            flags={
                **refit_flags(spec),
                **flags,
                "checkpoint.out_dir": out / f"refit-{task}",
                "checkpoint.overwrite": True,  # the heads are scratch work of this evaluation: a re-run replaces them
            },
            overrides=parse_overrides(overrides),
        )
        for task in ("contrastive", "jigsaw")
    }
    with rich_progress() as progress:
        report = evaluate_nse(spec, refit, progress=progress)
    table = Table(title=f"{nse} on {test} patches (heads re-fitted on the frozen extractor)")
    for column in ("task", "patch", "top-1", "chance", "patches"):
        table.add_column(column, justify="right")
    for task in refit:
        row = report[task]
        table.add_row(task, str(row["patch_size"]), f"{row['top1']:.4f}", f"{row['chance']:.4f}", str(row["patches"]))
    stdout.print(table)
    stdout.print(f"evaluation written to {out / 'evaluation.json'}")


@app.command()
def compare(
    models: str | None = typer.Option(
        None, help="Comma-separated: 'bicubic', checkpoint paths, or LABEL=PATH (default: bicubic)."
    ),
    datasets: str | None = typer.Option(None, help="Comma-separated benchmark names or folders (default: set5)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: compare)."),
    data_root: Path | None = typer.Option(None, help="Folder holding the benchmarks (else $SRTK_DATA, then cache)."),
    scale: int | None = typer.Option(None, help="Upscaling factor: 2, 3, 4 or 8 (default: 4)."),
    metrics: str | None = typer.Option(None, help="Comma-separated (default: psnr_y,ssim_y,niqe,lpips)."),
    cache: Path | None = typer.Option(None, help="SR cache folder, shared between runs (default: OUT/cache)."),
    crops: int | None = typer.Option(None, help="Crops per image where the models disagree most (default: 2)."),
    crop_size: int | None = typer.Option(None, help="Crop side in HR pixels (default: 96)."),
    report_images: int | None = typer.Option(None, help="Images per dataset in the report and figures (default: all)."),
    device: str | None = typer.Option(None, help="'auto' (default), 'cpu', 'cuda', ..."),
    precision: str | None = typer.Option(None, help="fp32 (default), bf16 or fp16 (autocast) for the models."),
    tile: int | None = typer.Option(None, help="Run the models on LR tiles of this size (bounded memory)."),
    self_ensemble: bool | None = typer.Option(None, help="Average the 8 flips/rotations (the papers' '+' rows)."),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """MODELS side by side on DATASETS under the protocol of `srtk evaluate`: ranked tables, perception-distortion
    plot, figure grids of crops and gradient maps, and a static HTML report (SR and metrics cached by model hash)."""
    from srtk.config import CompareConfig
    from srtk.studies.compare import run_comparison

    flags = {
        "models": _split(models) if models is not None else None,
        "datasets": _split(datasets) if datasets is not None else None,
        "out": out,
        "data_root": data_root,
        "scale": scale,
        "metrics": _split(metrics) if metrics is not None else None,
        "cache": cache,
        "crops": crops,
        "crop_size": crop_size,
        "report_images": report_images,
        "device": device,
        "precision": precision,
        "tile": tile,
        "self_ensemble": self_ensemble,
    }
    cfg = _resolve(CompareConfig(), config, flags, overrides)
    assert isinstance(cfg, CompareConfig)
    with rich_progress() as progress:
        result = run_comparison(cfg, progress=progress)
    for dataset, rows in result.ranked().items():
        table = Table(title=f"{dataset} x{cfg.scale} (bold: best, underlined: second)")
        table.add_column("model")
        for key in result.keys:
            table.add_column(key, justify="right")
        for row in rows:
            cells = [row["metrics"][key] for key in result.keys]
            styles = ["bold" if c["best"] else "underline" if c["second"] else "none" for c in cells]
            table.add_row(row["model"], *(f"[{s}]{c['value']:.4f}[/]" for s, c in zip(styles, cells, strict=True)))
        stdout.print(table)
    computed, cached = sum(result.sr_computed.values()), sum(result.sr_cached.values())
    stdout.print(f"SR images: {computed} computed, {cached} from the cache {cfg.cache_dir}")
    for name, path in result.files.items():
        stdout.print(f"{name:>10}: {path}")
    for key, message in result.failed.items():
        console.print(f"[red]error:[/red] {key}: {message}", highlight=False)
    if result.failed:
        raise typer.Exit(1)


@app.command()
def ablate(
    study: str | None = typer.Option(None, help="A paper table to re-run (--list shows them with their variants)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Study folder: one run per variant, the table."),
    list_studies: bool = typer.Option(False, "--list", help="List the studies, their first steps and variants."),
    data: list[str] = typer.Option([], "--data", help="Training set for every run (default: the presets' DIV2K)."),
    data_root: Path | None = typer.Option(None, help="Folder holding registry datasets (training and evaluation)."),
    iterations: int | None = typer.Option(None, help="Iterations of every training run (default: each preset's)."),
    datasets: str | None = typer.Option(None, help="Comma-separated benchmarks (default: the paper table's)."),
    metrics: str | None = typer.Option(None, help="Comma-separated srtk evaluate metrics (default: the table's)."),
    device: str | None = typer.Option(None, help="Run the variants here, one after another ('auto', 'cuda:0')."),
    devices: str | None = typer.Option(None, help="Comma-separated: one worker per device, e.g. 0,1,2,3 or cpu,cpu."),
    overrides: list[str] = typer.Option([], "--set", help="SECTION.KEY=VALUE for every training run of the study."),
    init: Path | None = typer.Option(None, "--init", help="A ready PSNR model instead of the psnr-init first step."),
    nse: Path | None = typer.Option(None, "--nse", help="A ready contrastive NSE instead of the nse-contrastive step."),
    embedding: Path | None = typer.Option(None, "--embedding", help="PCL-F's fixed E_D (pcl-fixed-embedding)."),
    allow_random_perceptual: bool = typer.Option(
        False, "--allow-random-perceptual", help="Tests only: VGG/LPIPS losses and metric with random weights."
    ),
) -> None:
    """Train and evaluate every variant of a paper's ablation table; write it with the paper's numbers beside.

    The first steps a study needs (the PSNR model GAN variants start from, the NSEs) are trained once in the study
    folder unless --init / --nse give them. Run the same command again to continue an interrupted study: finished
    variants are skipped, the one in progress resumes from its checkpoint."""
    from srtk.config import AblateConfig, parse_overrides
    from srtk.errors import ConfigError
    from srtk.studies.ablate import describe_studies, run_study

    if list_studies:
        stdout.print(describe_studies(), markup=False, highlight=False)
        return
    if study is None or out is None:
        raise ConfigError("srtk ablate needs --study NAME and --out DIR (srtk ablate --list shows the studies)")
    if device is not None and devices is not None:
        raise ConfigError("give --device (one) or --devices (several), not both")
    chosen = _split(devices) if devices is not None else (device or "auto",)
    chosen = tuple(f"cuda:{d}" if d.isdigit() else d for d in chosen)
    cfg = AblateConfig(
        study=study,
        out_dir=out,
        data=tuple(data),
        data_root=data_root,
        iterations=iterations,
        datasets=_split(datasets) if datasets is not None else (),
        metrics=_split(metrics) if metrics is not None else (),
        devices=chosen,
        overrides=parse_overrides(overrides),
        init=init,
        nse=nse,
        embedding=embedding,
        allow_random_perceptual=allow_random_perceptual,
    )
    with rich_progress() as progress:
        result = run_study(cfg, progress=progress)
    stdout.print(result.files[2].read_text(), markup=False, highlight=False)
    stdout.print(f"ran {len(result.ran)} job(s) ({', '.join(result.ran) or 'all were finished'})")
    for path in result.files:
        stdout.print(f"table written to {path}")


@app.command()
def export(
    model: str = typer.Argument(..., help="Checkpoint to export (srtk .safetensors or an official .pth)."),
    onnx: Path = typer.Option(..., "--onnx", help="Write the ONNX graph here (dynamic height and width)."),
    fp16: bool = typer.Option(False, "--fp16", help="Export in float16 (inputs and outputs too)."),
) -> None:
    """Export MODEL to ONNX for deployment; onnxruntime checks it against PyTorch on a random input."""
    from srtk.export import export_onnx

    result = export_onnx(model, onnx, fp16=fp16)
    stdout.print(
        f"{result.architecture} x{result.scale} ({result.precision}) written to {result.path}; onnxruntime vs "
        f"PyTorch on a random {result.check_size[0]}x{result.check_size[1]} input: max abs difference "
        f"{result.max_abs_diff:.3g} (bound {result.bound:.3g})",
        highlight=False,
    )


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    if issubclass(category, SrtkWarning):
        print_warning(str(message))
    else:
        _python_show_warning(message, category, *args, **kwargs)  # type: ignore[arg-type]


def print_warning(message: str) -> None:
    """One line on stderr: `warning: ...`."""
    console.print(f"[yellow]warning:[/yellow] {escape(' '.join(message.split()))}", highlight=False)


def print_error(message: str) -> None:
    """One line on stderr: `error: ...` (the message's brackets are text, not rich markup)."""
    console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", highlight=False)


def _usage_message(error: UsageError) -> str:
    command = error.ctx.command_path if error.ctx is not None else "srtk"
    return f"{command}: {error.format_message()} (see {command} --help)"


def main(args: list[str] | None = None) -> None:
    """Console entry point: every failure is one `error:` line on stderr and a documented exit status.

    0 ok; 1 an input, file or configuration could not be used (or some inputs of a batch failed); 2 the command
    line is wrong; 130 interrupted. SrtkWarning is one `warning:` line.
    """
    warnings.showwarning = _show_warning
    try:
        status = app(args=args, standalone_mode=False)
    except NoArgsIsHelpError as error:  # plain `srtk` or `srtk train`-less group: the help, not an error
        stdout.print(error.format_message(), highlight=False, markup=False)
        sys.exit(0)
    except UsageError as error:  # Typer's box would span lines and columns
        print_error(_usage_message(error))
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        print_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except SrtkError as error:
        print_error(str(error))
        sys.exit(EXIT_FAILED)
    except OSError as error:  # e.g. a full disk or a permission the checks could not foresee
        where = f"{error.filename}: " if error.filename else ""
        print_error(f"{where}{error.strerror or error}")
        sys.exit(EXIT_FAILED)
    except Exception as error:  # noqa: BLE001 - a bug must still not bury the user in a traceback
        if os.environ.get("SRTK_DEBUG"):
            raise
        print_error(f"internal error {type(error).__name__}: {error} (SRTK_DEBUG=1 shows the traceback)")
        sys.exit(EXIT_FAILED)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
