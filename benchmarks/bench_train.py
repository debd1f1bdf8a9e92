"""Training speed and peak memory of spsr-g at the paper's configuration (paper 000 sec. 5.1: full SPSR generator,
VGG-128 critics, 15 patches of 32x32 LR) on whatever device is present: eager vs channels_last vs bf16 autocast
vs torch.compile, each in its own process (so peak memory is its own), printed as ratios to eager.

On a CPU the batch defaults to 1 (a full-size step takes seconds there); pass --batch 15 on a GPU. VGG19 runs
with random weights (speed does not depend on them). Usage:
  python benchmarks/bench_train.py [--batch N] [--steps 3] [--variants eager,channels_last,bf16,compiled]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from srtk.data.io import write_image

PAPER_BATCH = 15  # paper 000 sec. 5.1
PAPER_LR_PATCH = 32
VARIANTS = {
    "eager": {},
    "channels_last": {"runtime.channels_last": True},
    "bf16": {"runtime.precision": "bf16"},
    "compiled": {"runtime.compile": True},
}


def run_variant(name: str, batch: int, steps: int, data: Path, out: Path) -> dict:
    from srtk.train.config import resolve_config
    from srtk.train.engine import Trainer

    overrides = {
        "data.train": [str(data)],
        "data.batch_size": batch,
        "data.lr_patch_size": PAPER_LR_PATCH,
        "data.num_workers": 0,
        "data.repeat": 64,
        "losses.allow_random_perceptual": True,
        "checkpoint.out_dir": str(out),
        **VARIANTS[name],
    }
    trainer = Trainer(resolve_config("spsr-g", overrides=overrides))
    device = trainer.device
    batches = [trainer.stream.next() for _ in range(steps + 1)]
    trainer.train_step(batches[0]["lr"], batches[0]["hr"])  # warm-up (and compilation)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for item in batches[1:]:
        trainer.train_step(item["lr"], item["hr"])
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB (process peak)
    seconds = (time.perf_counter() - start) / steps
    trainer.close()
    return {"variant": name, "device": str(device), "seconds_per_iteration": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--batch", type=int, default=PAPER_BATCH if cuda else 1)
    parser.add_argument("--steps", type=int, default=10 if cuda else 2)
    parser.add_argument(
        "--variants", default="eager,channels_last,bf16,compiled" if cuda else "eager,channels_last,bf16"
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child process: run one variant, print JSON
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(run_variant(args.variant, args.batch, args.steps, args.data, Path(out))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "hr"
        data.mkdir()
        generator = torch.Generator().manual_seed(0)
        for index in range(4):  # content does not change the speed: random structured images
            write_image(
                data / f"{index}.png",
                torch.rand(3, 48, 48, generator=generator).repeat_interleave(4, 1).repeat_interleave(4, 2),
            )
        results = []
        for name in args.variants.split(","):
            command = [
                sys.executable,
                __file__,
                "--variant",
                name,
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--data",
                str(data),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{name}: failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if not results:
        return
    base = next((r for r in results if r["variant"] == "eager"), results[0])
    print(
        f"spsr-g training, batch {args.batch} x {PAPER_LR_PATCH}x{PAPER_LR_PATCH} LR, device {base['device']}, "
        f"{args.steps} timed iterations"
    )
    for r in results:
        speed = 1 / r["seconds_per_iteration"]
        ratio = base["seconds_per_iteration"] / r["seconds_per_iteration"]
        print(f"  {r['variant']:>14}: {speed:8.3f} it/s  x{ratio:5.2f} vs eager   peak {r['peak_mib']:8.0f} MiB")


if __name__ == "__main__":
    main()
