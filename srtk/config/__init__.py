"""srtk's configuration home: typed, frozen dataclasses for every job, resolved one way (srtk.config.resolve)."""

from srtk.config.inference import METRIC_KEYS, EvalConfig, UpscaleConfig
from srtk.config.resolve import load_config_file, parse_override, parse_overrides, resolve
from srtk.config.train import TrainConfig

__all__ = [
    "METRIC_KEYS",
    "EvalConfig",
    "TrainConfig",
    "UpscaleConfig",
    "load_config_file",
    "parse_override",
    "parse_overrides",
    "resolve",
]
