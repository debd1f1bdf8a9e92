"""Model registry: name -> builder, and load_model() for names and checkpoint files."""

from collections.abc import Callable
from pathlib import Path

from torch import nn

from srtk.errors import CheckpointError, SrtkError
from srtk.models.bicubic import Bicubic

MODELS: dict[str, Callable[..., nn.Module]] = {
    "bicubic": Bicubic,
}
# Models that need no weights: `--model NAME` works without a checkpoint.
PARAMETER_FREE = frozenset({"bicubic"})


def build_model(name: str, **overrides: object) -> nn.Module:
    if name not in MODELS:
        raise SrtkError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**overrides)


def load_model(name_or_path: str | Path, *, scale: int = 4) -> nn.Module:
    """A ready-to-run SR model in eval mode: a parameter-free registry name, or a checkpoint file."""
    name = str(name_or_path)
    if name in PARAMETER_FREE:
        return build_model(name, scale=scale).eval()
    path = Path(name).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"{name}: neither a checkpoint file nor a weight-free model ({', '.join(sorted(PARAMETER_FREE))})"
        )
    raise CheckpointError(f"{path}: checkpoint loading arrives with the model zoo")
