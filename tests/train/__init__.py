"""Helpers for the training tests: synthetic image folders and tiny configs (8 features, 4 blocks, 8x8 LR)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import torch

from srtk.data.io import write_image

# Tiny networks: RRDB-based generators need 4 blocks for the 4 gradient-branch taps (paper 000 sec. 3.2).
TINY_RRDB = {"num_features": 8, "num_blocks": 4, "growth_channels": 4}
TINY_GPSR = {"num_features": 4, "num_modules": 1, "num_residual_blocks": 1}
TINY_SRRESNET = {"num_features": 8, "num_blocks": 2}


def shapes_image(seed: int, size: int = 48) -> torch.Tensor:
    """(3, size, size) in [0, 1]: flat coloured rectangles on a flat background (sharp edges: structure)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(3, 1, 1, generator=generator).expand(3, size, size).clone()
    for _ in range(6):
        top, left = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        height, width = torch.randint(6, size // 2, (2,), generator=generator).tolist()
        image[:, top : top + height, left : left + width] = torch.rand(3, 1, 1, generator=generator)
    return image


def image_folder(folder: Path, count: int, *, first_seed: int = 0, size: int = 48, two_tone: bool = False) -> Path:
    """`count` synthetic PNGs (coloured rectangles, or black-and-white ones with `two_tone`) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    make = two_tone_image if two_tone else shapes_image
    for index in range(count):
        write_image(folder / f"{index:03d}.png", make(first_seed + index, size))
    return folder


def tiny_overrides(method: str, data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """Dotted overrides turning a paper preset into a CPU-sized run of a few iterations.

    Presets that start from a PSNR model (--init) train from scratch here (model.from_scratch): each test that
    is about initialisation sets model.init itself."""
    overrides: dict[str, Any] = {
        "data.train": [str(data)],
        "data.lr_patch_size": 8,
        "data.batch_size": 2,
        "data.num_workers": 0,
        "data.repeat": 2,
        "optim.iterations": 4,
        "checkpoint.out_dir": str(out),
        "checkpoint.every": 2,
        "checkpoint.validate_every": 2,
        "checkpoint.log_every": 1,
        "runtime.device": "cpu",
        "losses.allow_random_perceptual": True,
        "model.from_scratch": True,
        "model.discriminator_options": {"num_features": 4, "num_levels": 2}
        if method == "ugsr"
        else {"num_features": 4},
        "model.gradient_discriminator_options": {"num_features": 4},
    }
    # Generators that build their own SR network take their sizes as generator options, the others' backbone.
    if method == "gpsr":
        overrides["model.generator_options"] = TINY_GPSR
    elif method == "ugsr":
        overrides["model.generator_options"] = TINY_RRDB
    else:
        overrides["model.backbone_options"] = TINY_SRRESNET if method == "srgan" else TINY_RRDB
    if method == "srgan":  # 8x8 LR patches: a 32 px input for SRGAN's critic
        overrides["model.discriminator_options"] = {"num_features": 4, "num_stages": 3, "hidden_features": 16}
    overrides.update(extra)
    return overrides


def two_tone_image(seed: int, size: int = 48) -> torch.Tensor:
    """(3, size, size) black and white: overlapping rectangles that flip the colour (edges bicubic blurs)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.zeros(3, size, size)
    for _ in range(5):
        top, left = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        height, width = torch.randint(6, 20, (2,), generator=generator).tolist()
        image[:, top : top + height, left : left + width] = 1 - image[:, top : top + height, left : left + width]
    return image


REPO = Path(__file__).resolve().parents[2]
KILL_SCRIPT = """
import time
from pathlib import Path
from srtk.presets import {resolver}
from srtk.train.engine import run_training

def progress(description, done, total, detail=""):
    if done == 3:  # the checkpoint of iteration 2 is on disk; hang here until killed
        Path({marker!r}).write_text("3")
        time.sleep(600)

run_training({resolver}({name!r}, overrides={overrides!r}), progress=progress)
"""


def train_until_killed(
    name: str, overrides: dict[str, Any], marker: Path, *, resolver: str = "resolve_train_config"
) -> None:
    """Run the preset `name` (resolved by srtk.presets.`resolver`) in a child process and SIGKILL it once the
    checkpoint of iteration 2 is on disk (checkpoint.every=2), as a crash would."""
    script = KILL_SCRIPT.format(resolver=resolver, name=name, overrides=overrides, marker=str(marker))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "training subprocess died before its checkpoint"
            assert time.monotonic() < deadline, "training subprocess too slow"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
