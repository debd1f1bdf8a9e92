"""`srtk ablate` configuration: which paper table to re-run, on what data, for how long, on which devices. Resolved
like every job: defaults < file < flags < `--set` (srtk.config.resolve); the training runs of the study resolve
their own configs from the presets (srtk.presets.resolve_train_config) with `overrides` on top."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srtk.config.inference import METRIC_KEYS
from srtk.config.resolve import as_json_dict
from srtk.errors import ConfigError

# What the study folder's settings must agree on for a restart to continue it (devices may change: they do not
# change the mathematics, and the engine resumes across them).
STUDY_SETTINGS = (
    "study",
    "data",
    "data_root",
    "iterations",
    "datasets",
    "metrics",
    "scale",
    "overrides",
    "init",
    "nse",
    "embedding",
    "allow_random_perceptual",
)


@dataclass(frozen=True)
class AblateConfig:
    """`srtk ablate`: every variant of one paper table trained and evaluated into `out_dir`."""

    study: str = ""  # a name of srtk.studies.paper_tables.STUDIES
    out_dir: Path = Path("ablate")
    data: tuple[str, ...] = ()  # training sets (registry names or folders); empty: the presets' (DIV2K)
    data_root: Path | None = None  # where registry datasets live, for training and evaluation
    iterations: int | None = None  # every training run of the study; None: each preset's (the papers')
    datasets: tuple[str, ...] = ()  # evaluation benchmarks; empty: the paper table's
    metrics: tuple[str, ...] = ()  # srtk evaluate metrics; empty: those of the paper table that srtk computes
    scale: int = 4  # every ablation table is x4
    devices: tuple[str, ...] = ("auto",)  # one: variants run here, in turn; several: one worker process each
    overrides: Mapping[str, Any] = field(default_factory=dict)  # dotted `--set` keys for every training run
    init: Path | None = None  # a ready PSNR-oriented model instead of the study's psnr-init step
    nse: Path | None = None  # a ready contrastive NSE instead of the study's nse-contrastive step
    embedding: Path | None = None  # PCL-F's fixed pre-trained E_D (paper 004 Table V)
    allow_random_perceptual: bool = False  # tests only: VGG / LPIPS networks with random weights

    def __post_init__(self) -> None:
        if not self.devices:
            raise ConfigError("--devices: give at least one device, e.g. cuda:0 or cpu")
        if self.iterations is not None and self.iterations <= 0:
            raise ConfigError(f"--iterations must be positive, not {self.iterations}")
        unknown = [m for m in self.metrics if m not in METRIC_KEYS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(METRIC_KEYS)}")

    def settings(self) -> dict[str, Any]:
        """What a restart must agree on (STUDY_SETTINGS), JSON-ready."""
        values = self.as_dict()
        return {key: values[key] for key in STUDY_SETTINGS}

    def as_dict(self) -> dict[str, Any]:
        return as_json_dict(self)
