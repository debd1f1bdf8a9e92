"""Inference speed of the SPSR generator (full config) and RRDBNet on a 64x64 LR input:
eager vs channels_last vs torch.compile (and bf16 autocast on CUDA), printed as ratios to eager in the same run.

Usage: python benchmarks/bench_inference.py [--repeats 3] [--no-compile] [--size 64]
"""

import argparse
import time

import torch

from srtk.models.registry import build_model


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up (and compilation)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, LR {args.size}x{args.size}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in ("spsr", "rrdbnet"):
        model = build_model(name).to(device).eval()
        lr = torch.rand(1, 3, args.size, args.size, device=device)
        variants = {"eager": (model, lr)}
        cl_model = build_model(name).to(device).eval().to(memory_format=torch.channels_last)
        cl_model.load_state_dict(model.state_dict())
        variants["channels_last"] = (cl_model, lr.contiguous(memory_format=torch.channels_last))
        if not args.no_compile:
            variants["compiled"] = (torch.compile(model), lr)
        results = {}
        with torch.inference_mode():
            for label, (net, x) in variants.items():
                results[label] = timed(lambda net=net, x=x: net(x), args.repeats, device)
            if device.type == "cuda":
                cl_input = variants["channels_last"][1]

                def bf16_forward(net=cl_model, x=cl_input):
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        return net(x)

                results["bf16"] = timed(bf16_forward, args.repeats, device)
        base = results["eager"]
        print(f"{name}:")
        for label, seconds in results.items():
            print(f"  {label:>14}: {seconds * 1000:9.1f} ms   x{base / seconds:5.2f} vs eager")


if __name__ == "__main__":
    main()
