"""Two CPU processes under torchrun (gloo) train exactly like one process with their two batches together."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srtk.presets import resolve_train_config
from srtk.train.engine import run_training
from tests.train import image_folder, tiny_overrides

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 3


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "hr", 3)
    val = image_folder(tmp_path / "val", 2, first_seed=50)
    common = {
        "optim.iterations": ITERATIONS,
        "optim.learning_rate": 1e-3,
        "data.val_dataset": str(val),
        "checkpoint.validate_every": ITERATIONS,
    }
    # One process, batch 2 ...
    single = run_training(
        resolve_train_config("psnr", overrides=tiny_overrides("psnr", data, tmp_path / "one", **common))
    )
    # ... against two ranks of batch 1: rank r takes every other index of the same permutation.
    ddp_out = tmp_path / "two"
    sets = [
        f"{key}={value}"
        for key, value in tiny_overrides("psnr", data, ddp_out, **common).items()
        if key not in ("data.train", "checkpoint.out_dir", "data.val_dataset")
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "srtk",
        "train",
        "--method",
        "psnr",
        "--data",
        str(data),
        "--out",
        str(ddp_out),
        "--val-dataset",
        str(val),
        "--device",
        "cpu",
        "--set",
        "data.batch_size=1",
        *[arg for item in sets if not item.startswith("data.batch_size") for arg in ("--set", item)],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = load_file(tmp_path / "one" / "final.safetensors"), load_file(ddp_out / "final.safetensors")
    assert one.keys() == two.keys()
    for key in one:  # averaged gradients: equal up to summation order (unaveraged ones differ by ~lr = 1e-3)
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=2e-6, msg=key)
    import json

    result = json.loads((ddp_out / "result.json").read_text())
    assert result["validation"]["images"] == 2  # one image per rank, summed across ranks
    assert result["validation"]["psnr_y"] == pytest.approx(single.validation["psnr_y"], abs=1e-3)
