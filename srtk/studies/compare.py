"""`srtk compare`: several SR models side by side under the one protocol of `srtk evaluate`.

Every model's SR of every benchmark image is made by `evaluate.super_resolve` (the papers' protocol, tiling and
self-ensemble included) and scored by `evaluate.ImageScorer`; SR images and their metrics are cached by model hash
and image, so a second comparison with one more model runs and scores only that model. Outputs, under OUT:

- table.json / table.md / table.csv: mean metrics per dataset, ranked, best and second best marked per metric
  (bold / underline in Markdown, as the papers' tables; flags in JSON and CSV);
- perception_distortion.png: PSNR against NIQE (and LPIPS when measured), one point per model (Blau & Michaeli's
  plane, as the papers' figures);
- figures/: per image, crops and their gradient maps M(I) (paper 000 eq. 2), laid out like its Fig. 7-8;
- report/index.html: a static page (assets beside it) with synchronised zoomable crops of LR, HR and every SR
  with its M(I), placed where the models' gradient maps disagree most.
"""

import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.config import HIGHER_IS_BETTER, CompareConfig
from srtk.data.color import rgb_to_y
from srtk.data.datasets import BENCHMARKS, EvalPair, evaluation_pairs, resolve_dataset
from srtk.data.io import atomic_path, list_images, read_image, write_image, write_json
from srtk.errors import ConfigError, SrtkError, SrtkWarning
from srtk.evaluate import PROTOCOL, ImageScorer, super_resolve
from srtk.gradmap import DISPLAY_PERCENTILE
from srtk.metrics.lpips import LPIPS_TRUNKS
from srtk.models.checkpoint import ModelCard, card_path
from srtk.models.gradient import gradient_map
from srtk.models.pretrained import require_hub_checkpoint
from srtk.models.registry import PARAMETER_FREE, check_model_reference, load_model_with_card
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import pick_device
from srtk.version import __version__

HASH_CHARS = 16  # of the SHA-256 hex digest naming a model's cache folder: 64 bits, no collision in practice
CHUNK = 1 << 20


@dataclass(frozen=True)
class ComparedModel:
    """One column of the comparison: its label, what was asked for, and the hash its cached outputs live under."""

    label: str
    spec: str  # registry name or checkpoint path
    key: str  # model_key: SHA-256 of the weights and the network their card builds, or of a weight-free name
    architecture: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {
            "label": self.label,
            "model": self.spec,
            "hash": self.key,
            "architecture": self.architecture,
            "source": self.source,
        }


@dataclass(frozen=True)
class CropBox:
    """A square window in HR pixels (top-left corner, side); a multiple of the scale, so the LR crop is exact."""

    top: int
    left: int
    size: int

    def of(self, img: Tensor, scale: int = 1) -> Tensor:
        """The window of a (C, H, W) image of 1/`scale` the HR size."""
        top, left, size = self.top // scale, self.left // scale, self.size // scale
        return img[..., top : top + size, left : left + size]


@dataclass
class ImageView:
    """What the report and the figures show of one image: where its assets are and where to look."""

    dataset: str
    name: str
    width: int
    height: int
    crops: list[CropBox]
    assets: dict[str, str]  # "lr", "hr", "hr_grad", "<model>", "<model>_grad" -> path relative to the report
    metrics: dict[str, dict[str, float]]  # model label -> its metrics on this image


@dataclass
class ComparisonResult:
    config: CompareConfig
    models: list[ComparedModel]
    keys: tuple[str, ...]  # the metric keys measured (lpips left out when its trunk is absent)
    datasets: dict[str, dict[str, dict[str, dict[str, float]]]]  # dataset -> model -> image -> key -> value
    folders: dict[str, str]
    sr_computed: dict[str, int] = field(default_factory=dict)  # model label -> SR images made by a forward pass
    sr_cached: dict[str, int] = field(default_factory=dict)  # model label -> SR images read from the cache
    views: list[ImageView] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # "dataset/image" -> why it was skipped
    files: dict[str, Path] = field(default_factory=dict)  # what was written: table_json, plot, report, ...

    def means(self) -> dict[str, dict[str, dict[str, float]]]:
        """dataset -> model -> key -> mean over the dataset's images."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for dataset, by_model in self.datasets.items():
            out[dataset] = {}
            for label, images in by_model.items():
                out[dataset][label] = {
                    k: sum(values[k] for values in images.values()) / len(images) for k in self.keys if images
                }
        return out

    def ranked(self) -> dict[str, list[dict[str, Any]]]:
        """dataset -> table rows, ordered by `rank_by`, each metric with its rank and best / second flags."""
        return {dataset: rank_rows(means, self.keys, self.config.rank_by) for dataset, means in self.means().items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "scale": self.config.scale,
            "protocol": PROTOCOL.format(scale=self.config.scale),
            "metrics": {k: "higher is better" if HIGHER_IS_BETTER[k] else "lower is better" for k in self.keys},
            "models": [m.as_dict() for m in self.models],
            "tables": self.ranked(),
            "datasets": {
                dataset: {"folder": self.folders[dataset], "images": by_model}
                for dataset, by_model in self.datasets.items()
            },
            "cache": {
                "folder": str(self.config.cache_dir),
                "computed": self.sr_computed,
                "cached": self.sr_cached,
            },
            "failed": self.failed,
            "config": self.config.as_dict(),
            "srtk_version": __version__,
        }


def rank_rows(means: dict[str, dict[str, float]], keys: tuple[str, ...], rank_by: str) -> list[dict[str, Any]]:
    """Rows of one dataset's table: per metric its value, its rank (1 = best; ties share a rank) and the flags
    `best` / `second` of the papers' bold and underline; rows ordered by `rank_by`, then by label."""
    ranks: dict[str, dict[str, int]] = {}
    for key in keys:
        distinct = sorted({m[key] for m in means.values()}, reverse=HIGHER_IS_BETTER[key])
        ranks[key] = {label: distinct.index(m[key]) + 1 for label, m in means.items()}
    rows = []
    for label, values in means.items():
        cells = {
            key: {
                "value": values[key],
                "rank": ranks[key][label],
                "best": ranks[key][label] == 1,
                "second": ranks[key][label] == 2,
            }
            for key in keys
        }
        rows.append({"model": label, "metrics": cells})
    return sorted(rows, key=lambda row: (row["metrics"][rank_by]["rank"], row["model"]))


def _format(key: str, value: float) -> str:
    return f"{value:.4f}" if key in ("ssim_y", "lpips") else f"{value:.2f}"


def table_markdown(result: ComparisonResult) -> str:
    """The ranked tables as Markdown: best in bold, second best underlined (<ins>, which GitHub renders)."""
    arrows = {k: "↑" if HIGHER_IS_BETTER[k] else "↓" for k in result.keys}
    lines = [f"# srtk compare, x{result.config.scale}", "", PROTOCOL.format(scale=result.config.scale) + ".", ""]
    lines.append("**Bold**: best; <ins>underlined</ins>: second best.")
    for dataset, rows in result.ranked().items():
        count = len(next(iter(result.datasets[dataset].values())))
        lines += ["", f"## {dataset} ({count} images)", ""]
        lines.append("| model | " + " | ".join(f"{k} {arrows[k]}" for k in result.keys) + " |")
        lines.append("|---|" + "---:|" * len(result.keys))
        for row in rows:
            cells = []
            for key in result.keys:
                cell = row["metrics"][key]
                text = _format(key, cell["value"])
                cells.append(f"**{text}**" if cell["best"] else f"<ins>{text}</ins>" if cell["second"] else text)
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(result: ComparisonResult) -> str:
    """One line per dataset and model: each metric's value, rank and flag (best / second / empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "model", *(f"{k}{suffix}" for k in result.keys for suffix in ("", "_rank", "_flag"))])
    for dataset, rows in result.ranked().items():
        for row in rows:
            cells = []
            for key in result.keys:
                cell = row["metrics"][key]
                flag = "best" if cell["best"] else "second" if cell["second"] else ""
                cells += [f"{cell['value']:.6f}", cell["rank"], flag]
            writer.writerow([dataset, row["model"], *cells])
    return buffer.getvalue()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_key(path: Path, card: ModelCard) -> str:
    """What a checkpoint's SR images depend on: its weights' bytes and the network its card builds. The card's
    metrics and training record are left out: writing measured metrics into a card keeps its cached outputs."""
    digest = hashlib.sha256(file_sha256(path).encode())
    if card_path(path).exists():
        network = {"architecture": card.architecture, "config": card.config, "scale": card.scale}
        digest.update(json.dumps(network, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _label_and_spec(entry: str) -> tuple[str | None, str]:
    """`LABEL=PATH` names a column; a bare name or path is labelled by itself (a path by its file stem)."""
    label, sep, spec = entry.partition("=")
    if sep and label and not Path(entry).expanduser().exists():
        return label, spec
    return None, entry


def resolve_models(cfg: CompareConfig) -> list[tuple[ComparedModel, nn.Module]]:
    """Every model of `cfg.models`, loaded (on the CPU) and checked, before any image is touched."""
    resolved: list[tuple[ComparedModel, nn.Module]] = []
    for entry in cfg.models:
        label, spec = _label_and_spec(entry)
        if spec in PARAMETER_FREE:
            key = hashlib.sha256(f"registry:{spec}".encode()).hexdigest()
            model, card_info = load_model_with_card(spec, scale=cfg.scale)
        else:
            path = check_model_reference(spec)  # a file, or the name of a bundled model
            model, card_info = load_model_with_card(spec, scale=cfg.scale)
            key = model_key(path, card_info)
            label = label or path.stem
        if int(card_info.scale) != cfg.scale:
            raise ConfigError(f"{spec}: the model upscales x{card_info.scale}, but --scale is {cfg.scale}")
        resolved.append(
            (ComparedModel(label or spec, spec, key, card_info.architecture, card_info.source), model.eval())
        )
    labels = [m.label for m, _ in resolved]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(f"model label(s) {', '.join(twice)} given twice: name them with LABEL=PATH in --models")
    return resolved


def check_output(folder: Path, option: str) -> None:
    """`folder` must be a folder srtk can create or write to: checked before any work, created by nobody here."""
    if folder.exists() and not folder.is_dir():
        raise SrtkError(f"{folder}: exists and is not a folder ({option} takes a folder)")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SrtkError(f"{folder}: cannot write there ({existing} is not a writable folder; {option})")


def measured_keys(cfg: CompareConfig) -> tuple[str, ...]:
    """cfg.result_keys, less LPIPS when its trunk is not in the torch hub cache (warned, never downloaded)."""
    if "lpips" not in cfg.result_keys or cfg.allow_random_lpips:
        return cfg.result_keys
    try:
        require_hub_checkpoint(LPIPS_TRUNKS[cfg.lpips_net], f"LPIPS {cfg.lpips_net} trunk")
    except SrtkError as error:
        warnings.warn(f"LPIPS left out of the comparison: {error}", SrtkWarning, stacklevel=2)
        return tuple(k for k in cfg.result_keys if k != "lpips")
    return cfg.result_keys


def cache_folder(cfg: CompareConfig, model: ComparedModel) -> Path:
    """Where a model's SR images are cached: its hash and what changes the SR (scale, precision, self-ensemble)."""
    variant = f"x{cfg.scale}-{cfg.precision}" + ("-ensemble" if cfg.self_ensemble else "")
    return cfg.cache_dir / f"{model.key[:HASH_CHARS]}-{variant}"


def image_key(path: Path) -> str:
    """An image's cache name: its stem and the hash of its bytes (a changed file is never served stale)."""
    return f"{path.stem}-{file_sha256(path)[:HASH_CHARS]}.png"


def luma_gradient(img: Tensor) -> Tensor:
    """M(Y) of a (3, H, W) image: (H, W), the gradient length of its MATLAB luma (paper 000 eq. 2)."""
    return gradient_map(rgb_to_y(img).unsqueeze(0))[0, 0]


def disagreement_crops(maps: list[Tensor], *, count: int, size: int, scale: int) -> list[CropBox]:
    """Up to `count` non-overlapping square windows of `size` HR pixels where the gradient maps differ most.

    Disagreement is the per-pixel standard deviation of the maps, summed over the window; windows start on
    multiples of `scale` (exact LR crops). The map borders (zero padding of M) are ignored.
    """
    height, width = maps[0].shape
    size = min(size, height // scale * scale, width // scale * scale)
    spread = torch.stack(maps).std(dim=0, unbiased=False)
    spread[:scale], spread[-scale:], spread[:, :scale], spread[:, -scale:] = 0, 0, 0, 0
    # Window sums at every multiple of the scale: one pooling call over the whole map.
    scores = F.avg_pool2d(spread[None, None], kernel_size=size, stride=scale)[0, 0]
    boxes: list[CropBox] = []
    for _ in range(count):
        flat = int(torch.argmax(scores))
        row, col = divmod(flat, scores.shape[1])
        if scores[row, col] == float("-inf"):
            break
        boxes.append(CropBox(row * scale, col * scale, size))
        reach = size // scale  # windows that would overlap this one are no longer candidates
        scores[max(row - reach + 1, 0) : row + reach, max(col - reach + 1, 0) : col + reach] = float("-inf")
    return boxes


def display_gradients(maps: dict[str, Tensor], reference: str) -> dict[str, Tensor]:
    """Gradient maps as (3, H, W) grey images on one scale: the reference's high percentile is white, so a blurred
    output looks darker than a sharp one (per-image normalisation would hide exactly that)."""
    ref = maps[reference].flatten()
    top = torch.quantile(ref[:: max(1, ref.numel() // (1 << 24))], DISPLAY_PERCENTILE / 100).clamp_min(1e-6)
    return {name: (m / top).clamp(0, 1).expand(3, -1, -1) for name, m in maps.items()}


class _Comparison:
    """One run of `run_comparison`: the loaded models, the scorer and the counters, over every image."""

    def __init__(self, cfg: CompareConfig, models: list[tuple[ComparedModel, nn.Module]], keys: tuple[str, ...]):
        self.cfg, self.models, self.keys = cfg, models, keys
        self.device = pick_device(cfg.device)
        metrics = tuple(k for k in cfg.metrics if k != "lpips") if "lpips" not in keys else cfg.metrics
        self.eval_cfg = cfg.eval_config(metrics=metrics)
        self.scorer = ImageScorer(self.eval_cfg, self.device)
        self.on_device: set[str] = set()
        self.computed = {m.label: 0 for m, _ in models}
        self.cached = {m.label: 0 for m, _ in models}

    def sr(self, model: ComparedModel, network: nn.Module, pair: EvalPair, cache: Path) -> Tensor:
        """(1, 3, H, W) SR of `pair` by `network`, from the cache when it is there (then no forward pass)."""
        if cache.is_file():
            try:
                sr = read_image(cache)
            except SrtkError:  # a cache file cut short (a killed run, a full disk) is made again
                sr = None
            if sr is not None and sr.shape == pair.hr.shape:
                self.cached[model.label] += 1
                return sr.unsqueeze(0)
        if model.label not in self.on_device:  # moved only when it has work to do
            network.to(self.device)
            self.on_device.add(model.label)
        sr = super_resolve(network, pair.lr.unsqueeze(0).to(self.device), self.eval_cfg).cpu()
        write_image(cache, sr)  # 8-bit levels already (the protocol rounds SR): the PNG is exact
        self.computed[model.label] += 1
        return sr

    def score(self, sr: Tensor, hr: Tensor, cache: Path) -> dict[str, float]:
        """The protocol's metrics of `sr`, from the cache when every key is there (NIQE of a large image takes
        seconds); LPIPS with a random trunk differs from run to run and is never cached."""
        stored: dict[str, float] = {}
        if cache.is_file():
            try:
                stored = json.loads(cache.read_text())
            except (OSError, json.JSONDecodeError):  # cut short: scored again
                stored = {}
        if all(k in stored for k in self.keys) and not (self.cfg.allow_random_lpips and "lpips" in self.keys):
            return {k: stored[k] for k in self.keys}
        values = self.scorer.score(sr, hr)
        keep = {k: v for k, v in values.items() if not (k == "lpips" and self.cfg.allow_random_lpips)}
        write_json(cache, {**stored, **keep})
        return values

    def view(self, dataset: str, pair: EvalPair, outputs: dict[str, Tensor], report: Path) -> ImageView:
        """Write the report assets of one image and find its crops."""
        folder = Path("assets") / dataset / Path(pair.name).stem
        (report / folder).mkdir(parents=True, exist_ok=True)
        raw = {"hr": luma_gradient(pair.hr), **{label: luma_gradient(sr) for label, sr in outputs.items()}}
        model_maps = [raw[label] for label in outputs]
        maps = model_maps if len(model_maps) > 1 else [*model_maps, raw["hr"]]
        crops = disagreement_crops(maps, count=self.cfg.crops, size=self.cfg.crop_size, scale=self.cfg.scale)
        shown = display_gradients(raw, "hr")
        assets = {
            "lr": write_image(report / folder / "lr.png", pair.lr),
            "hr": write_image(report / folder / "hr.png", pair.hr),
        }
        assets["hr_grad"] = write_image(report / folder / "hr_grad.png", shown["hr"])
        for index, (label, sr) in enumerate(outputs.items()):
            assets[label] = write_image(report / folder / f"sr{index}.png", sr)
            assets[f"{label}_grad"] = write_image(report / folder / f"sr{index}_grad.png", shown[label])
        height, width = pair.hr.shape[-2:]
        relative = {name: str(path.relative_to(report)) for name, path in assets.items()}
        return ImageView(dataset, pair.name, width, height, crops, relative, {})


@torch.no_grad()
def run_comparison(cfg: CompareConfig, *, progress: ProgressFn = no_progress) -> ComparisonResult:
    """Evaluate every model of `cfg` on every dataset, write the tables, the plot, the figures and the report."""
    from srtk.studies.figures import figure_grid, perception_distortion_plot  # matplotlib: only when drawing
    from srtk.studies.report import write_report

    check_output(cfg.out, "--out")
    check_output(cfg.cache_dir, "--cache")
    folders = {name: resolve_dataset(name, cfg.data_root) for name in cfg.datasets}
    models = resolve_models(cfg)
    keys = measured_keys(cfg)
    run = _Comparison(cfg, models, keys)
    report = cfg.out / "report"
    if report.exists():  # assets of an earlier run must not linger beside the new page
        shutil.rmtree(report / "assets", ignore_errors=True)
    result = ComparisonResult(cfg, [m for m, _ in models], keys, {}, {})
    for name, folder in folders.items():
        dataset = BENCHMARKS[name.lower()].folder if name.lower() in BENCHMARKS else folder.name
        result.folders[dataset] = str(folder)
        scores: dict[str, dict[str, dict[str, float]]] = {m.label: {} for m, _ in models}
        paths = {p.name: p for p in list_images(folder)}
        total, label = len(paths), f"{dataset} x{cfg.scale}"
        progress(label, 0, total)
        for done, item in enumerate(evaluation_pairs(folder, cfg.scale), start=1):
            if isinstance(item, tuple):
                result.failed[f"{dataset}/{item[0]}"] = str(item[1])
                progress(label, done, total)
                continue
            key = image_key(paths[item.name])
            outputs = {
                model.label: run.sr(model, network, item, cache_folder(cfg, model) / dataset / key)
                for model, network in models
            }
            for model, _ in models:
                cache = cache_folder(cfg, model) / dataset / key
                try:
                    scores[model.label][item.name] = run.score(
                        outputs[model.label], item.hr, cache.with_suffix(f".{cfg.lpips_net}.json")
                    )
                except SrtkError as error:  # e.g. NIQE of a flat output: say whose output it is
                    raise SrtkError(f"{model.label} on {dataset}/{item.name}: {error}") from None
            if cfg.report_images is None or done <= cfg.report_images:
                view = run.view(dataset, item, {k: v[0] for k, v in outputs.items()}, report)
                view.metrics = {model_label: scores[model_label][item.name] for model_label in outputs}
                result.views.append(view)
            progress(label, done, total)
        if not any(scores.values()):
            raise SrtkError(f"{folder}: no readable image to compare")
        result.datasets[dataset] = scores
    result.sr_computed, result.sr_cached = run.computed, run.cached
    out = cfg.out
    result.files["table_json"] = write_json(out / "table.json", result.as_dict())
    result.files["table_md"] = _write_text(out / "table.md", table_markdown(result))
    result.files["table_csv"] = _write_text(out / "table.csv", table_csv(result))
    plot = perception_distortion_plot(result.means(), keys, out / "perception_distortion.png")
    if plot is not None:
        result.files["plot"] = plot
    if cfg.figures:
        for index, view in enumerate(result.views):
            progress("figures", index, len(result.views))
            grid = figure_grid(view, report, [m.label for m in result.models], keys, cfg.scale, out / "figures")
            result.files.setdefault("figures", grid.parent.parent)
        progress("figures", len(result.views), len(result.views))
    result.files["report"] = write_report(result, report)
    return result


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
