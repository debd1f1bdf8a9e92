"""Upscaling speed and memory, printed as ratios against a baseline measured in the same run.

1. Speed of rrdbnet and spsr (full size, random weights) at each LR size: plain eager fp32 NCHW PyTorch (the
   baseline), channels_last PyTorch (srtk.tiling.prepare_for_inference) and srtk's default CPU path
   (srtk.export.accelerated: the ONNX graph in onnxruntime, then upscale_tiled with its defaults, tile auto and
   precision auto); best of --repeats interleaved rounds, with the max abs difference to the baseline (bound 1e-4).
2. rrdbnet x4 on a SIZE x SIZE LR image, untiled vs tiled (--tile): time and peak memory, each in a fresh
   process (on CPU the growth of peak RSS over the RSS after loading the model, Linux only; on CUDA
   torch.cuda.max_memory_allocated).

Usage: python benchmarks/bench_upscale.py [--sizes 64,256] [--repeats 2] [--size 1024] [--tile 256]
       [--models rrdbnet,spsr] [--skip-speed] [--skip-memory]
An untiled 1024x1024 x4 rrdbnet needs tens of GB on CPU: on a laptop give a smaller --size.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from srtk.export import accelerated
from srtk.models.registry import build_model
from srtk.runtime import sr_image
from srtk.tiling import prepare_for_inference, upscale_tiled


def timed_rounds(variants: dict, repeats: int, device: torch.device) -> dict[str, tuple[float, torch.Tensor]]:
    """Best time of each variant over `repeats` rounds, variants interleaved within a round (after one warm-up
    each), so that load from other processes on a shared machine falls on every variant alike."""
    outputs = {label: fn() for label, fn in variants.items()}  # warm-up (and any lazy initialisation)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for label, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[label] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[label] = min(best[label], time.perf_counter() - start)
    return {label: (best[label], outputs[label]) for label in variants}


def speed(names: list[str], sizes: list[int], repeats: int, device: torch.device) -> None:
    for name in names:
        torch.manual_seed(0)
        eager = build_model(name).to(device).eval()
        channels_last = prepare_for_inference(copy.deepcopy(eager))
        with tempfile.TemporaryDirectory() as cache:  # what srtk upscale runs: a first run exports, later ones load
            setups = []
            for _ in range(2):
                start = time.perf_counter()
                default = accelerated(copy.deepcopy(eager), device, architecture=name, cache=Path(cache))
                setups.append(time.perf_counter() - start)
        print(
            f"{name}: srtk default runner {type(default).__name__}; set up in {setups[0]:.1f} s the first time "
            f"(export + check), {setups[1]:.1f} s from the cache"
        )
        for size in sizes:
            lr = torch.rand(1, 3, size, size, device=device)
            variants = {
                "eager fp32 NCHW": lambda x=lr, m=eager: sr_image(m(x)),
                "channels_last": lambda x=lr, m=channels_last: upscale_tiled(m, x, scale=4, tile=None),
                "srtk default": lambda x=lr, m=default: upscale_tiled(m, x, scale=4, tile="auto", precision="auto"),
            }
            with torch.inference_mode():
                results = timed_rounds(variants, repeats, device)
            base, reference = results["eager fp32 NCHW"]
            print(f"{name} LR {size}x{size}:")
            for label, (seconds, out) in results.items():
                difference = float((out.float() - reference).abs().max())
                print(
                    f"  {label:>16}: {seconds * 1000:9.1f} ms   x{base / seconds:5.2f} vs eager   "
                    f"max|diff| {difference:.1e}"
                )


MEMORY_RUN = """
import json, sys, time
import torch
from srtk.models.registry import build_model
from srtk.tiling import TileStats, prepare_for_inference, upscale_tiled
size, tile, device = int(sys.argv[1]), (None if sys.argv[2] == "none" else int(sys.argv[2])), torch.device(sys.argv[3])
torch.manual_seed(0)
# PyTorch (channels_last): the tiler's memory is what is compared; ORT's arena would blur it
model = prepare_for_inference(build_model("rrdbnet").to(device).eval())
lr = torch.rand(1, 3, size, size)  # host memory: tiles stream to the device
def high_water() -> int:  # VmHWM: peak RSS in bytes (Linux)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as refs:  # "5" resets VmHWM: earlier peaks (imports, init) drop out
    refs.write("5")
before = high_water()
stats = TileStats()
start = time.perf_counter()
sr = upscale_tiled(model, lr, scale=4, tile=tile, precision="auto", stats=stats)
if device.type == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
rss = high_water() - before
peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else rss
print(json.dumps({"seconds": seconds, "peak": peak, "tiles": stats.tiles, "overlap": stats.overlap}))
"""


def memory(size: int, tile: int, device: torch.device) -> None:
    runs = {}
    for label, tile_arg in (("untiled", "none"), (f"tile {tile}", str(tile))):
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_RUN, str(size), tile_arg, str(device)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
            print(f"  {label}: failed ({reason})")
            return
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    base = runs["untiled"]
    kind = "peak CUDA allocation" if device.type == "cuda" else "peak RSS growth"
    print(f"rrdbnet x4, LR {size}x{size}, untiled vs tiled ({kind}):")
    for label, run in runs.items():
        print(
            f"  {label:>10}: {run['seconds']:8.1f} s (x{run['seconds'] / base['seconds']:4.2f})   "
            f"{run['peak'] / 2**20:9.0f} MiB (x{run['peak'] / max(base['peak'], 1):4.2f})   "
            f"{run['tiles']} tile(s), overlap {run['overlap']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,256", help="LR sizes of the speed table")
    parser.add_argument("--models", default="rrdbnet,spsr")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="LR size of the tiled vs untiled run")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())  # shared machines: both sides of a ratio see it
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, load average {load}")
    if not args.skip_speed:
        speed(args.models.split(","), [int(s) for s in args.sizes.split(",")], args.repeats, device)
    if not args.skip_memory:
        memory(args.size, args.tile, device)


if __name__ == "__main__":
    main()
