"""The training-state file: everything `--resume` needs to continue a run exactly (networks, optimizers, gradient
scaler, EMA, RNG states, data position, counters), written atomically so a kill never leaves half a file.

Model checkpoints for inference are separate (srtk.models.checkpoint: safetensors + model card); this file is
for resuming only. It is read with `torch.load(weights_only=True)`: tensors and plain containers, no code.
"""

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtk.config.resolve import as_json_dict
from srtk.config.train import TrainConfig
from srtk.data.io import atomic_path
from srtk.errors import CheckpointError, ConfigError
from srtk.version import __version__

STATE_FORMAT = "srtk-train-state/2"


@dataclass
class RunState:
    """The counters of a run that a checkpoint saves and --resume restores (beside networks, optimizers, RNG)."""

    iteration: int = 0
    bad_in_a_row: int = 0  # consecutive skipped steps
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"iteration", "reason"} of every skipped step
    best: dict[str, Any] = field(default_factory=dict)  # {"metric", "value", "iteration"} of the best validation
    last_validation: dict[str, float] = field(default_factory=dict)
    data_position: dict[str, int] = field(default_factory=lambda: {"epoch": 0, "batch": 0})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "RunState":
        return cls(**{key: saved[key] for key in cls.__dataclass_fields__})


def seed_everything(seed: int) -> None:
    """Seed every random generator a training step may draw from (those rng_state saves)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def rng_state() -> dict[str, Any]:
    """The states of every random generator a training step may draw from (torch CPU/CUDA, Python, NumPy)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    saved = state["numpy"]
    np.random.set_state(
        (saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"], saved["has_gauss"], saved["cached"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """Python's RNG state is nested tuples; serialisation may hand back lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_training_state(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (temporary file in the same folder, then rename)."""
    with atomic_path(Path(path)) as tmp:
        torch.save({"format": STATE_FORMAT, **state}, tmp)
    return Path(path)


def load_training_state(path: Path) -> dict[str, Any]:
    """A state written by save_training_state, or a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - truncated or foreign files fail in many ways
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: unreadable training state ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an srtk training state")
    return state


# Options that may change between a run and its resumption: they do not change what is computed.
RESUMABLE_CHANGES = (
    "optim.iterations",
    "checkpoint.",
    "runtime.device",
    "runtime.compile",
    "data.num_workers",
    "data.val_dataset",
    "data.val_max_images",
    "data.val_tile",
    "data.cache_dir",
    "model.init",
    "model.from_scratch",
)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def check_resumable(state: dict[str, Any], cfg: TrainConfig, world_size: int, path: Path) -> None:
    """A ConfigError unless `cfg` computes what the run that saved `state` computed, with as many processes."""
    differences = _differences(state["config"], cfg.as_dict())
    changed = [
        key
        for key in differences
        if not any(key == ok or (ok.endswith(".") and key.startswith(ok)) for ok in RESUMABLE_CHANGES)
    ]
    optim = cfg.optim
    if optim.schedule == "cosine" and optim.cosine_period is None and "optim.iterations" in differences:
        changed.append("optim.iterations (the cosine schedule spans the run)")
    if changed:
        raise ConfigError(f"{path}: cannot resume with a different configuration ({', '.join(changed)})")
    if state["world_size"] != world_size:
        raise ConfigError(
            f"{path}: written by {state['world_size']} process(es), resumed with {world_size}: "
            f"the data order would differ"
        )


@dataclass
class TrainResult:
    status: str  # "completed", "interrupted" (signal; checkpoint written) or "diverged" (raised, result written)
    iterations: int
    out_dir: Path
    final_losses: dict[str, float]
    validation: dict[str, float]
    best: dict[str, Any]
    skipped_steps: list[dict[str, Any]]
    initialization: dict[str, Any] | None  # what --init copied and could not
    model: Path | None
    wall_time_s: float
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"srtk_version": __version__, **as_json_dict(self)}
