"""srtk: structure-preserving image super-resolution (SPSR, ugsr, GPSR, PCL and baselines).

Public API, imported lazily so that `import srtk` does no work: load_model, upscale, evaluate.
"""

from typing import Any

from srtk.version import __version__

__all__ = ["__version__", "evaluate", "load_model", "upscale"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from srtk.models.registry import load_model

        return load_model
    if name == "upscale":
        from srtk.infer import upscale

        return upscale
    if name == "evaluate":
        from srtk.evaluate import run_evaluation

        return run_evaluation
    raise AttributeError(f"module 'srtk' has no attribute {name!r}")
