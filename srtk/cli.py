"""The `srtk` command line: each subcommand parses options, builds a config, calls one core function."""

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
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
from srtk.presets import describe_presets
from srtk.progress import ProgressFn

app = typer.Typer(
    name="srtk",
    help="Structure-preserving super-resolution toolkit: train, evaluate, upscale and inspect SR models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
_python_show_warning = warnings.showwarning
stdout = Console()


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


def _resolve(defaults: object, config: Path | None, flags: dict[str, object], overrides: list[str]) -> object:
    """Defaults < --config file < flags < --set: the one precedence of every command (srtk.config.resolve)."""
    from srtk.config import load_config_file, parse_overrides, resolve

    file = load_config_file(config) if config is not None else None
    return resolve(defaults, file=file, flags=_given(flags), overrides=parse_overrides(overrides))


@app.command()
def evaluate(
    model: str | None = typer.Option(None, help="'bicubic' (default) or a checkpoint path (srtk or official format)."),
    datasets: str | None = typer.Option(None, help="Comma-separated benchmark names or folders (default: set5,set14)."),
    data_root: Path | None = typer.Option(None, help="Folder holding the benchmarks (else $SRTK_DATA, then cache)."),
    scale: int | None = typer.Option(None, help="Upscaling factor: 2, 3, 4 or 8 (default: 4)."),
    metrics: str | None = typer.Option(None, help="Comma-separated: psnr, ssim, niqe, lpips (default: psnr,ssim)."),
    out: Path | None = typer.Option(None, help="Write the JSON result here."),
    device: str | None = typer.Option(None, help="'auto' (default), 'cpu', 'cuda', 'cuda:1', ..."),
    precision: str | None = typer.Option(None, help="fp32 (default), bf16 or fp16 (autocast) for the model."),
    tile: int | None = typer.Option(None, help="Run the model on LR tiles of this size (bounded memory)."),
    tile_overlap: int | None = typer.Option(None, help="LR pixels of context around each tile (default: 16)."),
    self_ensemble: bool | None = typer.Option(None, help="Average the 8 flips/rotations (the papers' '+' rows)."),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """PSNR/SSIM (Y channel), NIQE and LPIPS of MODEL on benchmark DATASETS, under the papers' protocol."""
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
    with rich_progress() as progress:
        result = run_evaluation(cfg, progress=progress)
    table = Table(title=f"{cfg.model} x{cfg.scale}")
    table.add_column("dataset")
    table.add_column("images", justify="right")
    for key in cfg.result_keys:
        table.add_column(key, justify="right")
    for name, ds in result.datasets.items():
        mean = ds.mean()
        table.add_row(name, str(len(ds.images)), *(f"{mean[k]:.4f}" if k in mean else "-" for k in cfg.result_keys))
    stdout.print(table)
    if out is not None:
        write_json(out, result.as_dict())
        stdout.print(f"results written to {out}")
    for ds in result.datasets.values():
        for message in ds.failed.values():
            console.print(f"[red]error:[/red] {message}", highlight=False)
    if result.num_failed:
        raise typer.Exit(1)


@app.command()
def upscale(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: str | None = typer.Option(None, help="'bicubic' (default) or a checkpoint path."),
    scale: int | None = typer.Option(None, help="Upscaling factor (default: 4) (checkpoints know theirs)."),
    tile: int | None = typer.Option(None, help="LR tile size for large images (bounded memory)."),
    tile_overlap: int | None = typer.Option(None, help="LR pixels of context around each tile (default: 16)."),
    device: str | None = typer.Option(None, help="'auto' (default), 'cpu', 'cuda', ..."),
    precision: str | None = typer.Option(None, help="fp32 (default), bf16 or fp16 (autocast)."),
    self_ensemble: bool | None = typer.Option(None, help="Average the 8 flips/rotations."),
    suffix: str | None = typer.Option(None, help="Output format by file suffix (default: .png)."),
    bit_depth: int | None = typer.Option(None, help="8 (default) or 16 bits per channel (16 needs .png/.tif)."),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] = SET_OPTION,
) -> None:
    """Super-resolve images with MODEL and write them to OUT (same names, SUFFIX)."""
    from srtk.config import UpscaleConfig
    from srtk.infer import upscale_files

    flags = {
        "model": model,
        "scale": scale,
        "tile": tile,
        "tile_overlap": tile_overlap,
        "device": device,
        "precision": precision,
        "self_ensemble": self_ensemble,
        "suffix": suffix,
        "bit_depth": bit_depth,
    }
    cfg = _resolve(UpscaleConfig(), config, flags, overrides)
    assert isinstance(cfg, UpscaleConfig)
    with rich_progress() as progress:
        report = upscale_files(inputs, out, cfg, progress=progress)
    stdout.print(f"{len(report.written)} image(s) written to {out}")
    for message in report.failed.values():
        console.print(f"[red]error:[/red] {message}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def gradmap(
    source: Path = typer.Argument(..., help="Input image."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image path."),
    mode: str = typer.Option("rgb", help="'rgb': M(I) per channel (as the papers' losses); 'luma': of Y only."),
    normalize: str = typer.Option("percentile", help="'percentile' (99.5th -> white), 'max' or 'none'."),
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
    from srtk.data.datasets import download_dataset

    stdout.print(f"{dataset} unpacked to {download_dataset(dataset, root=root, sha256=sha256)}")


@app.command()
def datasets(data_root: Path | None = typer.Option(None, help="Folder holding the benchmarks.")) -> None:
    """List the dataset registry and where each dataset is found."""
    from srtk.data.datasets import BENCHMARKS, resolve_dataset

    table = Table(title="datasets")
    for column in ("name", "images", "found at", "about"):
        table.add_column(column)
    for name, info in BENCHMARKS.items():
        try:
            where = str(resolve_dataset(name, data_root))
        except SrtkError:
            where = "-"
        table.add_row(name, str(info.num_images or "?"), where, info.description)
    stdout.print(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Folder for every output of the demo."),
    iterations: int = typer.Option(400, help="Training iterations of the demo model (a few minutes on a CPU)."),
    device: str = typer.Option("auto", help="'auto', 'cpu', 'cuda', ..."),
) -> None:
    """Train a small model on bundled photographs, compare it with bicubic, upscale and draw gradient maps."""
    from srtk.demo import run_demo

    with rich_progress() as progress:
        result = run_demo(out, iterations=iterations, device=device, progress=progress)
    keys = ("psnr_y", "ssim_y", "niqe")
    table = Table(title="held-out photographs, x4: bicubic vs the demo model")
    table.add_column("image", no_wrap=True)
    for key in keys:
        table.add_column(f"{key} bicubic", justify="right")
        table.add_column(f"{key} trained", justify="right")
    bicubic, trained = (next(iter(r.datasets.values())) for r in (result.bicubic, result.trained))
    rows = [(name, bicubic.images[name], trained.images[name]) for name in bicubic.images]
    rows.append(("mean", bicubic.mean(), trained.mean()))
    for name, before, after in rows:
        table.add_row(name, *(f"{values[k]:.4f}" for k in keys for values in (before, after)))
    stdout.print(table)
    stdout.print(f"trained model (safetensors + card): {result.model}")
    stdout.print(f"training log and result:            {result.model.parent}")
    stdout.print(f"upscaled test photographs:          {out / 'sr'} ({len(result.upscaled.written)} files)")
    stdout.print(f"gradient maps M(I):                 {', '.join(map(str, result.gradient_maps))}")
    stdout.print(f"comparison JSON:                    {result.result_file}")


def _training_flags(named: dict[str, object], data: list[str]) -> dict[str, object]:
    """The dotted config keys of the flags typed (None: not given) and of --data (repeatable)."""
    flags = {key: value for key, value in named.items() if value is not None}
    if data:
        flags["data.train"] = list(data)
    return flags


@app.command(
    epilog="Method presets (the papers' settings; change any with --config or --set):\n\n" + describe_presets()
)
def train(
    method: str | None = typer.Option(None, help="A preset listed below (default: psnr)."),
    backbone: str | None = typer.Option(None, help="Registry name of the SR network / SR branch, e.g. rrdbnet."),
    config: Path | None = typer.Option(None, "--config", help="YAML or TOML file of options (overrides the preset)."),
    overrides: list[str] = typer.Option([], "--set", help="SECTION.KEY=VALUE, e.g. optim.learning_rate=2e-4."),
    data: list[str] = typer.Option([], "--data", help="Training set: registry name or folder of HR images."),
    val_dataset: str | None = typer.Option(None, help="Validation set: registry name or folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder: checkpoints, log, result."),
    iterations: int | None = typer.Option(None, help="Total training iterations."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint."),
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
) -> None:
    """Train a method (preset < --config file < flags and --set), writing checkpoints and a JSON result."""
    import json

    from srtk.config import load_config_file, parse_overrides
    from srtk.presets import resolve_train_config
    from srtk.train.engine import run_training

    flags: dict[str, object] = {}
    named = {
        "model.backbone": backbone,
        "data.val_dataset": val_dataset,
        "checkpoint.out_dir": out,
        "optim.iterations": iterations,
        "model.init": init,
        "structure.nse": nse,
        "contrastive.embedding_checkpoint": embedding,
        "runtime.device": device,
        "runtime.precision": precision,
    }
    flags.update(_training_flags(named, data))
    if resume:
        flags["checkpoint.resume"] = True
    if allow_random_perceptual:
        flags["losses.allow_random_perceptual"] = True
    if from_scratch:
        flags["model.from_scratch"] = True
    file = load_config_file(config) if config is not None else None
    saved = (out or Path()) / "config.json"
    if resume and file is None and out is not None and saved.is_file():
        file = json.loads(saved.read_text())["config"]  # `--out DIR --resume` alone continues the run as it was
    cfg = resolve_train_config(method, file=file, flags=flags, overrides=parse_overrides(overrides))
    with rich_progress() as progress:
        result = run_training(cfg, progress=progress)
    losses = ", ".join(f"{name} {value:.4g}" for name, value in result.final_losses.items())
    stdout.print(f"{result.status} after {result.iterations} iterations; losses: {losses or '-'}")
    if result.validation:
        stdout.print(f"validation: psnr_y {result.validation['psnr_y']:.4f}, ssim_y {result.validation['ssim_y']:.4f}")
    stdout.print(f"outputs in {result.out_dir}")
    if result.status == "interrupted":
        stdout.print(f"resume with: srtk train --out {result.out_dir} --resume (and the same options)")
        raise typer.Exit(130)


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
    from srtk.presets import resolve_pretext_config

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
    if resume:
        flags["checkpoint.resume"] = True
    from srtk.train.engine import run_training

    cfg = resolve_pretext_config(task, file=file, flags=flags, overrides=parse_overrides(overrides))
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
            flags={**refit_flags(spec), **flags, "checkpoint.out_dir": out / f"refit-{task}"},
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


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    if issubclass(category, SrtkWarning):
        console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
    else:
        _python_show_warning(message, category, *args, **kwargs)  # type: ignore[arg-type]


def main() -> None:
    """Console entry point: SrtkError becomes one line on stderr and exit status 1; SrtkWarning one line too."""
    warnings.showwarning = _show_warning
    try:
        app()
    except SrtkError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
