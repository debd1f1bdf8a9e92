"""srtk's configuration home: typed, frozen dataclasses for every job, resolved one way (srtk.config.resolve)."""

from srtk.config.ablate import AblateConfig
from srtk.config.inference import METRIC_KEYS, EvalConfig, UpscaleConfig
from srtk.config.resolve import load_config_file, parse_override, parse_overrides, resolve
from srtk.config.studies import HIGHER_IS_BETTER, CompareConfig
from srtk.config.train import TrainConfig

__all__ = [
    "AblateConfig",
    "HIGHER_IS_BETTER",
    "METRIC_KEYS",
    "CompareConfig",
    "EvalConfig",
    "TrainConfig",
    "UpscaleConfig",
    "load_config_file",
    "parse_override",
    "parse_overrides",
    "resolve",
]
