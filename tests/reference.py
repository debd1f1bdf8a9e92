"""Rebuild the official state dicts of shared/reference/parity from their recipe (see its README)."""

import json
import zlib

import numpy as np
import torch

from tests.conftest import shared_path


def parity_spec(name: str) -> dict:
    return json.loads(shared_path("reference", "parity", f"{name}.json").read_text())


def parity_io(name: str) -> dict[str, np.ndarray]:
    with np.load(shared_path("reference", "parity", f"{name}.npz")) as npz:
        return {key: npz[key] for key in npz.files}


def _recipe_tensor(key: str, shape: list[int], gain: float) -> np.ndarray:
    if len(shape) >= 2:
        std = np.float32(gain / np.sqrt(np.prod(shape[1:], dtype=np.float64)))
    else:
        std = np.float32(0.01)
    return np.random.RandomState(zlib.crc32(key.encode())).standard_normal(shape).astype(np.float32) * std


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The official state dict, keys in the official order, as the authors' code would save it."""
    spec = parity_spec(name)
    out: dict[str, torch.Tensor] = {}
    for entry in spec["state_dict"]:
        key, shape, init = entry["key"], entry["shape"], entry["init"]
        if init == "recipe":
            value = torch.from_numpy(_recipe_tensor(key, shape, spec["gain"]))
        elif init == "fixed":
            value = torch.tensor(entry["value"], dtype=getattr(torch, entry.get("dtype", "float32")))
            value = value.reshape(shape)
        elif init == "alias":
            continue  # filled below: the official model stores one tensor under two keys
        else:
            raise ValueError(f"unknown init {init!r} for {key}")
        out[key] = value
    aliases = {e["key"]: e["alias_of"] for e in spec["state_dict"] if e["init"] == "alias"}
    # Rebuild in the official key order, aliases sharing their tensor.
    return {e["key"]: out[aliases.get(e["key"], e["key"])] for e in spec["state_dict"]}
