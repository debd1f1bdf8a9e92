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
    from srtk.presets import resolve_train_config
    from srtk.train.engine import Trainer

    overrides = {
        "data.train": [str(data)],
        "data.batch_size": batch,
        "data.lr_patch_size": PAPER_LR_PATCH,
        "data.num_workers": 0,
        "data.repeat": 64,
        "losses.allow_random_perceptual": True,
        "model.from_scratch": True,  # speed only: no PSNR model to start from
        "checkpoint.out_dir": str(out),
        **VARIANTS[name],
    }
    trainer = Trainer(resolve_train_config("spsr-g", overrides=overrides))
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
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per variant")
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
        print(
            f"spsr-g training, batch {args.batch} x {PAPER_LR_PATCH}x{PAPER_LR_PATCH} LR, {args.steps} timed "
            f"iterations, one process per variant",
            flush=True,
        )
        base: float | None = None
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
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"  {name:>14}: slower than {args.timeout} s (e.g. bf16 on a CPU without native bf16)", flush=True
                )
                continue
            if done.returncode != 0:
                last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
                print(f"  {name:>14}: failed: {last}", flush=True)
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            seconds = r["seconds_per_iteration"]
            base = base or seconds  # the first variant (eager by default) is the baseline
            print(
                f"  {name:>14}: {1 / seconds:8.3f} it/s  x{base / seconds:5.2f} vs {args.variants.split(',')[0]}"
                f"   peak {r['peak_mib']:8.0f} MiB   ({r['device']})",
                flush=True,
            )


if __name__ == "__main__":
    main()
