"""The training-state file: everything `--resume` needs to continue a run exactly (networks, optimizers, gradient
scaler, EMA, RNG states, data position, counters), written atomically so a kill never leaves half a file.

Model checkpoints for inference are separate (srtk.models.checkpoint: safetensors + model card); this file is
for resuming only. It is read with `torch.load(weights_only=True)`: tensors and plain containers, no code.
"""

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtk.data.io import atomic_path
from srtk.errors import CheckpointError

STATE_FORMAT = "srtk-train-state/1"


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
