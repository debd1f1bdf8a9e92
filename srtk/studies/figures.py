"""Figures of `srtk compare`, drawn with matplotlib (Agg: files only, no display):

- the perception-distortion plane (Blau & Michaeli 2018), PSNR against NIQE and LPIPS, one point per model, as
  the papers place their methods (paper 000 Fig. 1, paper 002 Fig. 1);
- figure grids of crops and their gradient maps M(I), laid out like paper 000 Fig. 7-8, ready for slides.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit, the same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from srtk.data.io import atomic_path, read_image  # noqa: E402

if TYPE_CHECKING:
    from srtk.studies.compare import ImageView

PERCEPTUAL = {"niqe": "NIQE", "lpips": "LPIPS"}  # x axes of the plane: lower is better
FIDELITY = {"psnr_y": "PSNR (Y, dB)", "psnr_rgb": "PSNR (RGB, dB)"}  # y axis: higher is better
CROP_COLORS = ("#e4572e", "#17bebb", "#ffc914", "#76b041", "#a06cd5")  # crop 1, 2, ... in every view
DPI = 150
CELL_INCHES = 1.7  # one crop panel in a figure grid
OVERVIEW_CELLS = 3
LABEL_GAP = 0.15  # of a cell: room for the 'image' / 'M(I)' row labels beside the overview


def _save(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)
    return path


def perception_distortion_plot(
    means: dict[str, dict[str, dict[str, float]]], keys: tuple[str, ...], path: Path
) -> Path | None:
    """PSNR (y) against each perceptual metric measured (x), one panel per dataset and metric, one point per model.

    `means`: dataset -> model -> key -> value. None (nothing drawn) without a PSNR and a perceptual metric.
    """
    fidelity = next((k for k in FIDELITY if k in keys), None)
    perceptual = [k for k in PERCEPTUAL if k in keys]
    if fidelity is None or not perceptual:
        return None
    datasets = list(means)
    figure, axes = plt.subplots(
        len(perceptual), len(datasets), figsize=(4.4 * len(datasets), 3.4 * len(perceptual)), squeeze=False
    )
    colors = plt.get_cmap("tab10")
    for row, metric in enumerate(perceptual):
        for col, dataset in enumerate(datasets):
            ax = axes[row][col]
            for index, (label, values) in enumerate(means[dataset].items()):
                point = (values[metric], values[fidelity])
                ax.scatter(*point, s=60, color=colors(index % 10), zorder=3, label=label)
                ax.annotate(label, point, textcoords="offset points", xytext=(6, 4), fontsize=8)
            ax.set_xlabel(f"{PERCEPTUAL[metric]} (lower is better)")
            ax.set_ylabel(f"{FIDELITY[fidelity]} (higher is better)")
            ax.set_title(dataset, fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.margins(0.25)  # room for the labels of the outermost points
    figure.suptitle("Perception-distortion plane (one point per model)", fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def figure_grid(
    view: "ImageView", report: Path, labels: list[str], keys: tuple[str, ...], scale: int, out_dir: Path
) -> Path:
    """One PNG per image: the HR image with its crops outlined (left); per crop, a row of HR and SR crops and a row
    of their gradient maps M(I), each SR captioned with its PSNR / NIQE on this image (paper 000 Fig. 7-8)."""
    columns = ["HR", *labels]
    images = {
        "HR": read_image(report / view.assets["hr"]),
        **{la: read_image(report / view.assets[la]) for la in labels},
    }
    grads = {
        "HR": read_image(report / view.assets["hr_grad"]),
        **{la: read_image(report / view.assets[f"{la}_grad"]) for la in labels},
    }
    crops = view.crops or []
    rows = max(1, 2 * len(crops))
    # The overview is as tall as the crop rows, at most OVERVIEW_CELLS crops wide.
    overview_width = min(CELL_INCHES * rows * view.width / view.height, CELL_INCHES * OVERVIEW_CELLS)
    figure = plt.figure(figsize=(overview_width + CELL_INCHES * (len(columns) + LABEL_GAP), CELL_INCHES * rows * 1.08))
    grid = figure.add_gridspec(
        rows,
        len(columns) + 2,  # overview, a gap for the row labels, the crops
        width_ratios=[overview_width / CELL_INCHES, LABEL_GAP] + [1] * len(columns),
        wspace=0.04,
        hspace=0.12,
    )
    overview = figure.add_subplot(grid[:, 0])
    overview.imshow(images["HR"].permute(1, 2, 0).numpy())
    overview.set_title(f"{view.dataset}/{view.name}", fontsize=9)
    overview.axis("off")
    for index, box in enumerate(crops):
        color = CROP_COLORS[index % len(CROP_COLORS)]
        overview.add_patch(Rectangle((box.left, box.top), box.size, box.size, fill=False, edgecolor=color, lw=1.5))
        for half, source in enumerate((images, grads)):
            for col, name in enumerate(columns):
                ax = figure.add_subplot(grid[2 * index + half, col + 2])
                ax.imshow(box.of(source[name]).permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(1.5)
                if half == 0 and index == 0:
                    ax.set_title(name, fontsize=8)
                if half == 1 and index == len(crops) - 1 and name in view.metrics:
                    ax.set_xlabel(_caption(view.metrics[name], keys), fontsize=7)
                if col == 0:
                    ax.set_ylabel("image" if half == 0 else "M(I)", fontsize=7)
    path = out_dir / view.dataset / f"{Path(view.name).stem}.png"
    return _save(figure, path)


def _caption(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = []
    if "psnr_y" in keys:
        parts.append(f"{metrics['psnr_y']:.2f} dB")
    if "niqe" in keys:
        parts.append(f"NIQE {metrics['niqe']:.2f}")
    return " / ".join(parts)
