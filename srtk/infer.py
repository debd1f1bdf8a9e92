"""Inference on images: `srtk upscale` (folders of files, in batches that finish) and `srtk.upscale` (one image).

Each image comes back in the kind it came in (srtk.data.io.SourceImage): the model sees RGB, alpha is upscaled on
its own (MATLAB bicubic, or the model), grayscale returns to gray, 16 bits stay 16 bits. An output never
overwrites an input, and two inputs never share an output.

Convention: RGB, NCHW, float in [0, 1]. A model maps LR (N, 3, h, w) to SR (N, 3, s*h, s*w), or to a NamedTuple
whose `sr` field is that image (the two-branch generators).
"""

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from srtk.config import UpscaleConfig
from srtk.data.io import IMAGE_SUFFIXES, quantize, read_source_image, write_image_as
from srtk.data.resize import imresize
from srtk.errors import ConfigError, SrtkError
from srtk.export import accelerated
from srtk.models.registry import load_model
from srtk.paths import check_output_file, check_output_folder
from srtk.progress import ProgressFn, TqdmProgress, no_progress
from srtk.runtime import check_precision, pick_device
from srtk.tiling import TileStats, self_ensemble, upscale_tiled
from srtk.version import __version__

DEFAULT_SCALE = 4  # bicubic's factor when --scale is not given (every paper's main tables are x4)


class InputFile(NamedTuple):
    """One image to upscale: where it is, the folder it was found in, and its path below that folder."""

    path: Path
    root: Path | None  # the folder given on the command line; None for a file given by name
    relative: Path  # below `root` (mirrored in the output folder); the file's name for a file given by name


@dataclass
class FileResult:
    """What happened to one input: written, skipped or failed, with a one-line reason and the time it took."""

    source: str
    status: str  # "written", "skipped" or "failed"
    output: str | None = None
    reason: str = ""
    seconds: float = 0.0
    mode: str = ""  # the output's mode and depth, e.g. "RGBA 8-bit"
    tiles: int = 0  # model runs (srtk.tiling.TileStats), and of them:
    fp32_reruns: int = 0  # tiles whose reduced-precision output was not finite, run again in fp32
    halvings: int = 0  # out-of-memory errors that halved the tile


@dataclass
class UpscaleReport:
    """Every input's FileResult in order, what the run did once (notes), and whether Ctrl-C stopped it."""

    files: list[FileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def written(self) -> list[Path]:
        return [Path(f.output) for f in self.files if f.status == "written" and f.output is not None]

    @property
    def failed(self) -> dict[str, str]:
        return {f.source: f.reason for f in self.files if f.status == "failed"}

    @property
    def skipped(self) -> dict[str, str]:
        return {f.source: f.reason for f in self.files if f.status == "skipped"}

    def counts(self) -> dict[str, int]:
        return {status: sum(f.status == status for f in self.files) for status in ("written", "skipped", "failed")}

    def as_dict(self, cfg: UpscaleConfig, out_dir: Path) -> dict[str, Any]:
        return {
            "srtk_version": __version__,
            "config": cfg.as_dict(),
            "out": str(out_dir),
            "counts": self.counts(),
            "interrupted": self.interrupted,
            "notes": self.notes,
            "files": [asdict(f) for f in self.files],
        }


# --- what to read ---


def _hidden(relative: Path) -> bool:
    # Dot files include the temporary files of atomic writes still in progress (srtk.data.io.atomic_path).
    return any(part.startswith(".") for part in relative.parts)


def collect_inputs(
    inputs: list[Path], *, recursive: bool = False, out_dir: Path | None = None
) -> tuple[list[InputFile], list[FileResult]]:
    """Files as given and the images inside given folders (and their subfolders with `recursive`).

    The output folder is not searched when it lies inside an input folder (its images are earlier outputs).
    A missing path or an empty folder is a FileResult of status "failed", not an exception.
    """
    found: list[InputFile] = []
    failed: list[FileResult] = []
    out_resolved = out_dir.resolve() if out_dir is not None else None
    seen: set[Path] = set()
    for item in inputs:
        if item.is_dir():
            root = item.resolve()
            candidates = item.rglob("*") if recursive else item.iterdir()
            images = []
            for path in candidates:
                relative = path.relative_to(item)
                if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or _hidden(relative):
                    continue
                parent = path.parent.resolve()
                if out_resolved is not None and out_resolved != root and out_resolved in (parent, *parent.parents):
                    continue
                images.append(InputFile(path, item, relative))
            if not images:
                failed.append(FileResult(str(item), "failed", reason=f"{item}: folder holds no images"))
            found.extend(sorted(images, key=lambda f: f.relative.as_posix()))
        elif item.is_file():
            found.append(InputFile(item, None, Path(item.name)))
        else:
            failed.append(FileResult(str(item), "failed", reason=f"{item}: no such file or folder"))
    unique = []
    for file in found:  # a file given twice (by name and in its folder) is upscaled once
        if file.path.resolve() not in seen:
            seen.add(file.path.resolve())
            unique.append(file)
    return unique, failed


# --- where to write ---


def _key(path: Path) -> str:
    # Case-folded: on case-insensitive file systems (macOS, Windows) A.png and a.png are one file.
    return str(path.resolve()).casefold()


@dataclass
class _Name:
    """The tags that make one output's name unique, always in this order: extension, folder, number, scale."""

    extension: bool = False
    folder: bool = False
    number: int = 0
    in_place: bool = False


def scale_tag(scale: float) -> str:
    """'x4', 'x3.5': the tag of an output written beside its input."""
    return f"x{scale:g}"


def plan_outputs(
    files: list[InputFile], out_dir: Path, *, suffix: str, tag: str
) -> tuple[list[tuple[InputFile, Path]], list[FileResult]]:
    """Each input's output path, none equal to an input or to another output; and the inputs left out as outputs.

    An output is `OUT/<relative folder>/<stem><suffix>`. An output written beside its own input (a folder upscaled
    into itself) gets the scale tag: `<stem>_x4`. Where two inputs would share an output, each gets what tells
    them apart in its name: the source extension (a_jpg.png, a_png.png), then its input folder's name (x_one.png,
    x_two.png), then a number. Beside its input, a file `<stem>_..._<tag><suffix>` whose `<stem>.*` is also an
    input is an earlier output of that input: it is left out (reported as skipped) and may be rewritten.
    """

    def beside(file: InputFile) -> bool:
        return (out_dir / file.relative.parent).resolve() == file.path.parent.resolve()

    def path_of(file: InputFile, name: _Name) -> Path:
        parts = [file.relative.stem]
        if name.extension:
            parts.append(file.path.suffix.lstrip(".").lower())
        if name.folder:
            parts.append((file.root or file.path.parent).resolve().name)
        if name.number:
            parts.append(str(name.number))
        if name.in_place:
            parts.append(tag)
        return out_dir / file.relative.parent / ("_".join(parts) + suffix)

    stems_by_folder: dict[Path, set[str]] = defaultdict(set)
    for file in files:
        stems_by_folder[file.path.parent.resolve()].add(file.relative.stem)
    sources, earlier = [], []
    for file in files:
        stem = file.relative.stem
        neighbours = stems_by_folder[file.path.parent.resolve()]
        origin = [other for other in neighbours if other != stem and stem.startswith(f"{other}_")]
        if beside(file) and file.path.suffix.lower() == suffix and stem.endswith(f"_{tag}") and origin:
            original = file.path.parent / f"{max(origin, key=len)}.*"  # the longest: a_b_x4 is of a_b, not a
            reason = f"{file.path}: an earlier output of {original}, not upscaled again"
            earlier.append(FileResult(str(file.path), "skipped", output=str(file.path), reason=reason))
        else:
            sources.append(file)
    input_keys = {_key(f.path) for f in sources}
    names = [_Name(in_place=beside(f)) for f in sources]
    for _ in range(len(sources) + 3):  # each round settles at least one clash; this bound is never reached
        groups: dict[str, list[int]] = defaultdict(list)
        for index, (file, name) in enumerate(zip(sources, names, strict=True)):
            groups[_key(path_of(file, name))].append(index)
        clashes = [(key, members) for key, members in groups.items() if len(members) > 1 or key in input_keys]
        if not clashes:
            return [(file, path_of(file, name)) for file, name in zip(sources, names, strict=True)], earlier
        for key, members in clashes:
            extensions = {sources[i].path.suffix.lower() for i in members}
            folders = {(sources[i].root or sources[i].path.parent).resolve().name for i in members}
            for rank, index in enumerate(members):
                name = names[index]
                if key in input_keys and not name.in_place:  # it would overwrite an input: beside it, tagged
                    name.in_place = True
                elif len(extensions) > 1 and not name.extension:
                    name.extension = True
                elif len(folders) > 1 and not name.folder:
                    name.folder = True
                elif rank > 0 or len(members) == 1:
                    name.number += rank + 1
    raise SrtkError(f"{out_dir}: could not give every output a distinct name")  # pragma: no cover


def check_format(suffix: str, bit_depth: int | None) -> None:
    """The output format exists and holds the bit depth asked for."""
    if bit_depth == 16 and suffix != ".png":
        raise ConfigError(f"--bit-depth 16 needs --suffix .png, not {suffix}")
    if suffix not in IMAGE_SUFFIXES:
        raise ConfigError(
            f"--suffix {suffix}: not an image format srtk writes; choose one of: {', '.join(IMAGE_SUFFIXES)}"
        )


# --- how to upscale one image ---


def load_upscaler(cfg: UpscaleConfig, device: torch.device) -> nn.Module:
    """The model of `cfg` on `device`; a checkpoint asked for a factor it does not have is an error naming both."""
    model = load_model(cfg.model, scale=cfg.scale or DEFAULT_SCALE)
    if cfg.scale is not None and int(model.scale) != cfg.scale:
        raise ConfigError(
            f"{cfg.model}: the model upscales x{model.scale}, but --scale is {cfg.scale} "
            f"(--outscale {cfg.scale} resizes its output to that factor)"
        )
    model = model.to(device).eval()
    if not cfg.accelerate:
        return model
    card = getattr(model, "card", None)  # the fastest runner of the same network (CPU: a cached ONNX export)
    return accelerated(model, device, architecture=card.architecture if card is not None else "generator")


def output_size(height: int, width: int, scale: int, outscale: float | None) -> tuple[int, int]:
    """The SR size: the model's factor, or `outscale` rounded up as MATLAB's imresize(img, outscale) does."""
    if outscale is None:
        return height * scale, width * scale
    # round() first: 100 * 1.1 is 110.00000000000001 in floating point, whose ceiling would be one pixel too many
    return max(1, math.ceil(round(height * outscale, 6))), max(1, math.ceil(round(width * outscale, 6)))


def upscale_planes(
    model: Callable[[Tensor], Tensor | tuple],
    rgb: Tensor,
    alpha: Tensor | None,
    cfg: UpscaleConfig,
    *,
    scale: int,
    on_tile: Callable[[int, int], None] | None = None,
    stats: TileStats | None = None,
) -> tuple[Tensor, Tensor | None]:
    """SR of (N, 3, h, w) `rgb` and its (N, 1, h, w) `alpha`: the model at its `scale`, then MATLAB bicubic to
    `cfg.outscale`; alpha by bicubic or, with `cfg.alpha == "model"`, by the model on three copies of it."""
    run = partial(
        upscale_tiled,
        scale=scale,
        tile=cfg.tile,
        overlap=cfg.tile_overlap,
        precision=cfg.precision,
        on_tile=on_tile,
        stats=stats,
    )

    def super_resolve(lr: Tensor) -> Tensor:
        return self_ensemble(partial(run, model), lr) if cfg.self_ensemble else run(model, lr)

    size = output_size(rgb.shape[-2], rgb.shape[-1], scale, cfg.outscale)

    def fit(img: Tensor) -> Tensor:
        return img if tuple(img.shape[-2:]) == size else imresize(img, size=size)

    sr = fit(super_resolve(rgb)).clamp(0, 1)
    if alpha is None:
        return sr, None
    if cfg.alpha == "model":
        sr_alpha = fit(super_resolve(alpha.expand(-1, 3, -1, -1)).mean(1, keepdim=True))
    else:  # alpha is a mask, not a picture: no model was trained on it
        sr_alpha = imresize(alpha, size=size)
    return sr, sr_alpha.clamp(0, 1)


def _one_line(error: BaseException, path: Path) -> str:
    """`error` as one line naming `path` (srtk's errors already do; a decoder's or torch's may not)."""
    if isinstance(error, SrtkError):
        return str(error)
    text = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return f"{path}: out of GPU memory (try --tile 256 or smaller)"
    if isinstance(error, MemoryError):
        return f"{path}: out of memory (try --tile 256 or smaller)"
    return f"{path}: {type(error).__name__}: {text}" if text else f"{path}: {type(error).__name__}"


def _upscale_file(
    model: nn.Module, path: Path, target: Path, cfg: UpscaleConfig, *, scale: int, device: torch.device
) -> FileResult:
    """One file read, upscaled and written in its own mode; any exception but Ctrl-C becomes a failed FileResult."""
    started = time.perf_counter()
    if cfg.skip_existing and target.exists():
        return FileResult(str(path), "skipped", str(target), f"{target}: already exists")
    try:
        source = read_source_image(path)
        bit_depth = cfg.bit_depth or (source.bit_depth if cfg.suffix == ".png" else 8)
        # The image stays in host memory: srtk.tiling moves one tile at a time to the model's device.
        stats = TileStats()
        sr, sr_alpha = upscale_planes(
            model,
            source.rgb.unsqueeze(0),
            source.alpha.unsqueeze(0) if source.alpha is not None else None,
            cfg,
            scale=scale,
            stats=stats,
        )
        write_image_as(
            target,
            sr[0],
            color=source.color,
            alpha=sr_alpha[0] if sr_alpha is not None else None,
            bit_depth=bit_depth,
            icc_profile=source.icc_profile,
        )
    except Exception as error:  # one file's failure, whatever it is, must not stop the batch
        if device.type == "cuda":
            torch.cuda.empty_cache()  # an out-of-memory on one large file should not starve the next
        return FileResult(str(path), "failed", None, _one_line(error, path), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    mode = f"{source.mode} {bit_depth}-bit"
    return FileResult(
        str(path), "written", str(target), "", seconds, mode, stats.tiles, stats.fp32_reruns, stats.halvings
    )


def upscale_files(
    inputs: list[Path], out_dir: Path, cfg: UpscaleConfig, *, progress: ProgressFn = no_progress
) -> UpscaleReport:
    """Upscale every input image into `out_dir`, each in its own mode; a failing file is reported, the rest done.

    Everything that can be checked before the work is (options, output folder, model); after that no exception
    of one file stops the batch. Ctrl-C stops it between files, leaving no partial file: `report.interrupted`.
    """
    check_format(cfg.suffix, cfg.bit_depth)
    check_output_folder(out_dir)
    if cfg.report is not None:
        check_output_file(cfg.report, suffixes=(".json",))
    device = pick_device(cfg.device)
    check_precision(cfg.precision, device)  # once, not as a failure of every file
    model = load_upscaler(cfg, device)
    scale = int(model.scale)
    report = UpscaleReport()
    if cfg.outscale is not None and cfg.outscale != scale:
        report.notes.append(f"the model upscales x{scale}; MATLAB bicubic then resizes to x{cfg.outscale:g}")
    if not cfg.recursive:  # not searched, but never in silence
        for folder in (item for item in inputs if item.is_dir()):
            subfolders = [
                p
                for p in folder.iterdir()
                if p.is_dir() and not p.name.startswith(".") and p.resolve() != out_dir.resolve()
            ]
            if subfolders:
                report.notes.append(f"{folder}: {len(subfolders)} subfolder(s) not searched (--recursive mirrors them)")
    files, missing = collect_inputs(inputs, recursive=cfg.recursive, out_dir=out_dir)
    report.files.extend(missing)
    jobs, earlier = plan_outputs(files, out_dir, suffix=cfg.suffix, tag=scale_tag(cfg.outscale or scale))
    report.files.extend(earlier)
    try:
        for done, (file, target) in enumerate(jobs):
            progress("upscale", done, len(jobs))
            report.files.append(_upscale_file(model, file.path, target, cfg, scale=scale, device=device))
            progress("upscale", done + 1, len(jobs))
    except KeyboardInterrupt:  # between or inside files: an atomic write in progress has removed its temporary file
        report.interrupted = True
    return report


# --- the Python API ---


def _planes_of_array(array: np.ndarray) -> tuple[Tensor, Tensor | None, bool]:
    """HW or HWC (C = 1..4) uint8 / uint16 / float [0, 1] -> ((1, 3, H, W) RGB, (1, 1, H, W) alpha, gray?)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise SrtkError(f"an image array must be HxW or HxWxC with C = 1 to 4, not {array.shape}")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535
    elif np.issubdtype(array.dtype, np.floating):
        values = np.clip(array.astype(np.float32), 0, 1)
    else:
        raise SrtkError(f"an image array must be uint8, uint16 or float in [0, 1], not {array.dtype}")
    planes = torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1).unsqueeze(0)
    return _split_planes(planes)


def _split_planes(planes: Tensor) -> tuple[Tensor, Tensor | None, bool]:
    """(N, C, H, W), C = 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA) -> (RGB, alpha or None, gray?)."""
    channels = planes.shape[1]
    if channels not in (1, 2, 3, 4):
        raise SrtkError(f"an image must have 1 to 4 channels, not {channels}")
    color = 1 if channels <= 2 else 3
    alpha = planes[:, color:] if channels in (2, 4) else None
    return planes[:, :color].expand(-1, 3, -1, -1), alpha, color == 1


def _join_planes(sr: Tensor, alpha: Tensor | None, gray: bool) -> Tensor:
    if gray:  # BT.601 luma, as the file writer: the model's three channels of a gray input become one again
        sr = (0.299 * sr[:, 0:1] + 0.587 * sr[:, 1:2] + 0.114 * sr[:, 2:3]).clamp(0, 1)
    return sr if alpha is None else torch.cat([sr, alpha], dim=1)


def _array_of_planes(planes: Tensor, like: np.ndarray) -> np.ndarray:
    """(1, C, H, W) [0, 1] -> an array of `like`'s dtype and layout (HW stays HW)."""
    values = planes[0].permute(1, 2, 0).detach().float().cpu()
    if like.dtype in (np.uint8, np.uint16):
        levels = 255 if like.dtype == np.uint8 else 65535
        out = (quantize(values, levels=levels) * levels).round().numpy().astype(like.dtype)
    else:
        out = values.numpy().astype(like.dtype)
    return out[..., 0] if like.ndim == 2 else out


def upscale(
    image: str | Path | np.ndarray | Tensor,
    *,
    model: str | Path | nn.Module = "bicubic",
    scale: int | None = None,
    outscale: float | None = None,
    tile: int | str | None = "auto",
    tile_overlap: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
    alpha: str = "bicubic",
    progress: ProgressFn | bool = True,
) -> np.ndarray | Tensor:
    """Super-resolve one image and return it in the kind it came as; `srtk upscale` without files.

    image: a path (returns an HxW / HxWxC uint8 or uint16 array in the file's mode: L, LA, RGB, RGBA), a numpy
    array HxW or HxWxC (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; uint8, uint16 or float in [0, 1]; the same
    dtype and layout back), or a tensor (C, H, W) / (N, C, H, W) float in [0, 1] (the same back, on its device).
    model: a registry name, a checkpoint path, or a loaded model with a `scale` attribute (e.g. from load_model).
    progress: True draws tqdm.auto bars (widgets in a notebook), False nothing, or any ProgressFn.
    """
    name = model if isinstance(model, (str, Path)) else "(module)"
    cfg = UpscaleConfig(
        model=str(name),
        scale=scale,
        outscale=outscale,
        tile=tile,
        tile_overlap=tile_overlap,
        device=device,
        precision=precision,
        self_ensemble=self_ensemble,
        alpha=alpha,
    )
    report: ProgressFn = TqdmProgress() if progress is True else (progress or no_progress)
    run_device = pick_device(device)
    check_precision(precision, run_device)
    if isinstance(model, nn.Module):
        native = getattr(model, "scale", scale)
        if native is None:
            raise ConfigError("a model without a `scale` attribute needs scale=")
        if scale is not None and int(native) != scale:
            raise ConfigError(f"the model upscales x{native}, but scale is {scale}")
        network = model.eval()  # used where it is
    else:
        network = load_upscaler(cfg, run_device)
        native = network.scale
    if isinstance(image, (str, Path)):
        source = read_source_image(image)
        dtype = np.uint8 if source.bit_depth == 8 else np.uint16
        like = np.zeros((1, 1) if source.mode == "L" else (1, 1, 1), dtype)  # the file's layout: L is HxW
        rgb = source.rgb.unsqueeze(0)
        alpha_planes = source.alpha.unsqueeze(0) if source.alpha is not None else None
        gray = source.color == "L"
    elif isinstance(image, np.ndarray):
        like = image
        rgb, alpha_planes, gray = _planes_of_array(image)
    elif isinstance(image, Tensor):
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        if image.ndim not in (3, 4) or not image.is_floating_point():
            raise SrtkError(f"an image tensor must be float (C, H, W) or (N, C, H, W), not {tuple(image.shape)}")
        rgb, alpha_planes, gray = _split_planes(batch.float())
    else:
        raise SrtkError(f"upscale takes a path, a numpy array or a tensor, not {type(image).__name__}")
    tiles_seen = []

    def on_tile(done: int, total: int) -> None:
        tiles_seen.append(done)
        report("upscale", done, total)

    report("upscale", 0, 1)
    sr, sr_alpha = upscale_planes(network, rgb, alpha_planes, cfg, scale=int(native), on_tile=on_tile)
    if not tiles_seen:
        report("upscale", 1, 1)
    out = _join_planes(sr, sr_alpha, gray)
    if isinstance(image, Tensor):
        out = out.to(device=image.device, dtype=image.dtype)
        return out if image.ndim == 4 else out[0]
    return _array_of_planes(out, like)
