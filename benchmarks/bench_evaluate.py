"""Time the Urban100 bicubic x4 evaluation (the papers' protocol: PSNR/SSIM on Y) and print images/second.

Usage: python benchmarks/bench_evaluate.py [--data-root ../shared/datasets/benchmark] [--dataset urban100]
Prints the time of each stage per image, and the whole-run throughput, on the device srtk picks.
"""

import argparse
import time
from pathlib import Path

import torch

from srtk.config import EvalConfig
from srtk.data.datasets import evaluation_pairs, resolve_dataset
from srtk.data.io import quantize
from srtk.data.resize import imresize
from srtk.evaluate import run_evaluation
from srtk.metrics.psnr_ssim import psnr_y, ssim_y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/benchmark"
    )
    parser.add_argument("--dataset", default="urban100")
    parser.add_argument("--metrics", default="psnr,ssim")
    args = parser.parse_args()
    folder = resolve_dataset(args.dataset, args.data_root)

    # Stage breakdown on the first 10 images (read + LR, bicubic SR, PSNR, SSIM).
    stages = {"read+lr": 0.0, "bicubic": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    start = time.perf_counter()
    for item in evaluation_pairs(folder, 4):
        stages["read+lr"] += time.perf_counter() - start
        t = time.perf_counter()
        sr = quantize(imresize(item.lr.unsqueeze(0), 4))
        stages["bicubic"] += time.perf_counter() - t
        t = time.perf_counter()
        psnr_y(sr, item.hr.unsqueeze(0), crop=4)
        stages["psnr"] += time.perf_counter() - t
        t = time.perf_counter()
        ssim_y(sr, item.hr.unsqueeze(0), crop=4)
        stages["ssim"] += time.perf_counter() - t
        count += 1
        if count == 10:
            break
        start = time.perf_counter()
    total = sum(stages.values())
    print(f"stage breakdown over {count} images (threads: {torch.get_num_threads()}):")
    for name, seconds in stages.items():
        print(f"  {name:>8}: {seconds / count * 1000:7.1f} ms/image  ({seconds / total:5.1%})")

    cfg = EvalConfig(
        model="bicubic", datasets=(args.dataset,), data_root=args.data_root, metrics=tuple(args.metrics.split(","))
    )
    t = time.perf_counter()
    result = run_evaluation(cfg)
    seconds = time.perf_counter() - t
    images = sum(len(d.images) for d in result.datasets.values())
    mean = next(iter(result.datasets.values())).mean()
    print(
        f"full {args.dataset} bicubic x4 evaluation ({args.metrics}): {images} images in {seconds:.1f} s "
        f"= {images / seconds:.2f} images/s; mean " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items())
    )


if __name__ == "__main__":
    main()
