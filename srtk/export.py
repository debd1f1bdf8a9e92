"""`srtk export`: an SR generator written as an ONNX graph for deployment, checked against PyTorch.

The graph takes `lr` (N, 3, h, w) with dynamic batch, height and width and returns `sr` (N, 3, s*h, s*w), RGB,
[0, 1] (fp16 graphs take and return float16). Two-branch generators (SPSR, ugsr, GPSR) export their SR image only:
the gradient branch is convolutions, exported inside the graph, its HR map is a training output. srtk's metadata
(scale, architecture, receptive field) goes into the file, so `srtk upscale --model out.onnx` tiles it like the
network (srtk.models.exported).

Exporter: PyTorch's TorchScript-based `torch.onnx.export(..., dynamo=False)`: it needs only the `onnx` package and
works offline; the torch.export-based default needs `onnxscript`, which srtk does not depend on.
Every export is run by onnxruntime on a random input of another size than the traced one (dynamic shapes really
work) and compared with PyTorch fp32: the max abs difference must be below ONNX_BOUNDS[precision] (plus
STOCHASTIC_FACTOR x the run-to-run spread of a stochastic model: NLSN's random hashing).
"""

import copy
import hashlib
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import CheckpointError, SrtkError
from srtk.models.capabilities import fp16_safe, receptive_field
from srtk.models.exported import (
    ARCHITECTURE_KEY,
    FP16_SAFE_KEY,
    INPUT_NAME,
    MEMORY_KEY,
    OUTPUT_NAME,
    RECEPTIVE_FIELD_KEY,
    SCALE_KEY,
    load_onnx_model,
)
from srtk.models.gradient import GradientMap
from srtk.models.registry import PARAMETER_FREE, load_model_with_card
from srtk.paths import cache_folder
from srtk.runtime import sr_image
from srtk.tiling import activation_bytes_per_pixel, prepare_for_inference
from srtk.version import __version__

OPSET = 17  # onnxruntime >= 1.14 runs it; every op of srtk's generators is in it
ONNX_BOUNDS = {"fp32": 1e-4, "fp16": 2e-2}  # max |onnxruntime - PyTorch fp32| on a random [0, 1] input
TRACE_SIZE = (32, 32)  # LR size the graph is traced at (multiples of 8: every encoder/upsampler divides it)
CHECK_SIZE = (40, 56)  # LR size of the check: not the traced one, and not square
CHECK_SEED = 0
KEY_CHARS = 24  # hex characters of a cached export's key
STOCHASTIC_FACTOR = 2  # a stochastic model's bound grows by this many times its own run-to-run spread


class ExportError(SrtkError):
    """The model cannot be exported, or its export disagrees with PyTorch beyond the bound."""


@dataclass
class ExportResult:
    path: Path
    architecture: str
    scale: int
    precision: str
    max_abs_diff: float  # onnxruntime vs PyTorch fp32 on a random CHECK_SIZE input
    bound: float
    check_size: tuple[int, int]
    spread: float = 0.0  # max difference between two PyTorch runs (0 unless the model is stochastic)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


class _SRGraph(nn.Module):
    """What is exported: the generator's SR image only (a NamedTuple output keeps its `sr` field)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, lr: Tensor) -> Tensor:
        return sr_image(self.network(lr))


def check_output_path(out: Path) -> Path:
    out = Path(out).expanduser()
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: the output must be an .onnx file")
    if not out.parent.is_dir():
        raise ExportError(f"{out}: {out.parent} is not a folder")
    return out


def export_onnx(model: str | Path, out: Path, *, fp16: bool = False, opset: int = OPSET) -> ExportResult:
    """Export the SR model `model` (a checkpoint: srtk or official format) to `out` and check it."""
    out = check_output_path(out)  # before loading any weights
    if str(model) in PARAMETER_FREE:
        raise ExportError(f"{model}: a weight-free model has nothing to deploy; export a checkpoint")
    network, card = load_model_with_card(model)
    return export_network(network, out, architecture=card.architecture, fp16=fp16, opset=opset)


def export_network(
    network: nn.Module, out: Path, *, architecture: str, fp16: bool = False, opset: int = OPSET
) -> ExportResult:
    """Export an SR network (with `.scale`) to `out`, write srtk's metadata, and check it with onnxruntime."""
    import onnx

    out = check_output_path(out)
    precision = "fp16" if fp16 else "fp32"
    reference = network.float().eval()  # fp32 PyTorch: what the export is compared with
    scale = int(reference.scale)
    radius = receptive_field(reference)
    generator = torch.Generator().manual_seed(CHECK_SEED)
    check_input = torch.rand(1, 3, *CHECK_SIZE, generator=generator)
    with torch.no_grad():
        expected = sr_image(reference(check_input)).float()
        # NLSN hashes with fresh random rotations on every forward: two PyTorch runs already differ by this much
        spread = float((sr_image(reference(check_input)).float() - expected).abs().max())
    dtype = torch.float16 if fp16 else torch.float32
    trace_input = torch.rand(1, 3, *TRACE_SIZE, generator=generator, dtype=torch.float32)
    graph = _SRGraph(_exportable_copy(reference, trace_input)).to(dtype)
    trace_input = trace_input.to(dtype)
    partial = out.with_name(f".{out.name}.partial")  # a failed check leaves no file under the final name
    dynamic = {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_NAME: {0: "batch", 2: "sr_height", 3: "sr_width"},
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            with torch.no_grad():
                torch.onnx.export(
                    graph,
                    (trace_input,),
                    str(partial),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes=dynamic,
                    opset_version=opset,
                    do_constant_folding=True,
                )
        exported = onnx.load(str(partial))
        metadata = {
            SCALE_KEY: str(scale),
            ARCHITECTURE_KEY: architecture,
            RECEPTIVE_FIELD_KEY: "none" if radius is None else str(radius),
            FP16_SAFE_KEY: "true" if fp16_safe(reference) else "false",
            MEMORY_KEY: f"{activation_bytes_per_pixel(reference):.1f}",
        }
        for key, value in metadata.items():
            entry = exported.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(exported, str(partial))
        produced = load_onnx_model(partial)(check_input)
        if produced.shape != expected.shape:
            raise ExportError(
                f"{out}: the exported graph gives {tuple(produced.shape)}, PyTorch {tuple(expected.shape)}"
            )
        difference = float((produced - expected).abs().max())
        bound = ONNX_BOUNDS[precision] + STOCHASTIC_FACTOR * spread
        if not difference < bound:  # NaN fails too
            raise ExportError(f"{out}: onnxruntime differs from PyTorch by {difference:.3g} (bound {bound:g})")
        os.replace(partial, out)
    except ExportError:
        raise
    except Exception as error:  # the exporter and onnx raise many untyped errors: name the model and the first line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{out}: {architecture} could not be exported to ONNX ({reason})") from None
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(out, architecture, scale, precision, difference, bound, CHECK_SIZE, spread)


class _FixedChannelGradientMap(nn.Module):
    """GradientMap with its per-channel difference kernels built for a known channel count: the tracer records
    GradientMap's `expand(c, ...)` of a traced size as a kernel of unknown shape, which ONNX Conv refuses."""

    def __init__(self, original: GradientMap, channels: int) -> None:
        super().__init__()
        self.eps, self.extra_padding, self.channels = original.eps, original.extra_padding, channels
        self.register_buffer("kx", original.kx.repeat(channels, 1, 1, 1), persistent=False)
        self.register_buffer("ky", original.ky.repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, img: Tensor) -> Tensor:
        if self.extra_padding:
            img = F.pad(img, [self.extra_padding] * 4)
        gx = F.conv2d(img, self.kx.to(img.dtype), padding=(0, 1), groups=self.channels)
        gy = F.conv2d(img, self.ky.to(img.dtype), padding=(1, 0), groups=self.channels)
        return torch.sqrt(gx.square() + gy.square() + self.eps)


def _exportable_copy(network: nn.Module, example: Tensor) -> nn.Module:
    """A copy of `network` (the reference stays as it is) whose gradient maps have fixed channel counts."""
    copied = copy.deepcopy(network)
    channels: dict[str, int] = {}
    hooks = [
        module.register_forward_pre_hook(lambda _m, args, name=name: channels.__setitem__(name, args[0].shape[1]))
        for name, module in copied.named_modules()
        if isinstance(module, GradientMap)
    ]
    with torch.no_grad():
        copied(example)
    for hook in hooks:
        hook.remove()
    for name, count in channels.items():
        parent_name, _, child = name.rpartition(".")
        parent = copied.get_submodule(parent_name) if parent_name else copied
        setattr(parent, child, _FixedChannelGradientMap(getattr(parent, child), count))
    return copied


def onnx_cache_root() -> Path:
    """Where `accelerated` keeps its exports for later runs: $XDG_CACHE_HOME/srtk/onnx (default ~/.cache/srtk/onnx)."""
    return cache_folder("onnx")


def network_key(network: nn.Module, architecture: str) -> str:
    """A key of the graph an export of `network` gives: its weights, architecture and the exporting software."""
    digest = hashlib.sha256(f"{architecture} {__version__} torch {torch.__version__} opset {OPSET}".encode())
    for name, tensor in network.state_dict().items():
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:KEY_CHARS]


def accelerated(
    network: nn.Module, device: torch.device, *, architecture: str = "generator", cache: Path | None = None
) -> nn.Module:
    """The fastest runner of `network` that matches it within ONNX_BOUNDS['fp32'], for `srtk upscale`.

    On CPU: its ONNX graph in onnxruntime, exported and checked as `srtk export` does, once: the export is kept in
    `cache` (default onnx_cache_root()) under network_key, so later runs only load it (the cached warm-up;
    benchmarks/bench_upscale.py measures both against eager PyTorch). Elsewhere, or when the export fails or the
    model is not deterministic (NLSN), the network itself in channels_last (srtk.tiling.prepare_for_inference).
    """
    if device.type != "cpu" or not any(True for _ in network.parameters()):
        return prepare_for_inference(network)
    folder = cache if cache is not None else onnx_cache_root()
    cached = folder / f"{architecture}-{network_key(network, architecture)}.onnx"
    if cached.is_file():
        try:
            runner = load_onnx_model(cached)
        except CheckpointError:  # a damaged cache entry: export again
            cached.unlink(missing_ok=True)
        else:
            if runner.bytes_per_lr_pixel is None:  # exported before srtk recorded it
                runner.bytes_per_lr_pixel = activation_bytes_per_pixel(network)
            return runner
    try:
        folder.mkdir(parents=True, exist_ok=True)
        result = export_network(network, cached, architecture=architecture)
    except (ExportError, OSError):
        return prepare_for_inference(network)
    if result.spread:  # a stochastic model: its graph is fine, but not "the same output" as PyTorch
        cached.unlink(missing_ok=True)
        return prepare_for_inference(network)
    return load_onnx_model(cached)
