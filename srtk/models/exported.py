"""An SR model exported to ONNX (`srtk export`), run by onnxruntime behind the interface of every srtk model.

`load_onnx_model(path)` returns an nn.Module whose forward takes RGB, NCHW, [0, 1] LR (any device, float) and
returns the SR image on the same device, float32; `.scale`, `.architecture` and the receptive field come from the
metadata `srtk export` writes into the file (METADATA_KEYS), so tiling and `srtk upscale` treat it like the network.
"""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from srtk.errors import CheckpointError

INPUT_NAME, OUTPUT_NAME = "lr", "sr"
# Metadata keys srtk writes into an exported file (ONNX metadata_props: strings).
SCALE_KEY = "srtk_scale"
ARCHITECTURE_KEY = "srtk_architecture"
RECEPTIVE_FIELD_KEY = "srtk_receptive_field"  # LR pixels; "none" when unbounded
FP16_SAFE_KEY = "srtk_fp16_safe"
MEMORY_KEY = "srtk_bytes_per_lr_pixel"  # the PyTorch network's activation memory per LR pixel (`--tile auto`)
METADATA_KEYS = (SCALE_KEY, ARCHITECTURE_KEY, RECEPTIVE_FIELD_KEY, FP16_SAFE_KEY)
ONNX_DTYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime's execution providers for `device`, CPU last (always present)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


class OnnxModel(nn.Module):
    """An exported generator: forward(lr) runs the onnxruntime session (no autograd, no autocast)."""

    def __init__(self, path: Path, *, device: torch.device | None = None) -> None:
        super().__init__()
        import onnxruntime  # importing srtk loads no runtime: only loading an exported model does

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=onnx_providers(device or torch.device("cpu"))
            )
        except Exception as error:  # onnxruntime raises its own untyped errors for corrupt or foreign files
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"{path}: not a loadable ONNX model ({reason})") from None
        meta: dict[str, Any] = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in (SCALE_KEY, ARCHITECTURE_KEY) if key not in meta]
        if missing:
            raise CheckpointError(
                f"{path}: an ONNX file without srtk's metadata ({', '.join(missing)}); export it with srtk export"
            )
        self.path = Path(path)
        self.scale = int(meta[SCALE_KEY])
        self.architecture = str(meta[ARCHITECTURE_KEY])
        radius = meta.get(RECEPTIVE_FIELD_KEY, "none")
        self.receptive_field_lr: int | None = None if radius == "none" else int(radius)
        self.fp16_safe = meta.get(FP16_SAFE_KEY) == "true"
        # The graph hides its activations from forward hooks: the export measured them (None: exported without)
        self.bytes_per_lr_pixel: float | None = float(meta[MEMORY_KEY]) if MEMORY_KEY in meta else None
        (graph_input,) = self.session.get_inputs()
        self.input_dtype = ONNX_DTYPES.get(graph_input.type, torch.float32)

    @torch.no_grad()
    def forward(self, lr: Tensor) -> Tensor:
        x = lr.detach().to("cpu", self.input_dtype).contiguous().numpy()
        (sr,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return torch.from_numpy(sr).float().to(lr.device)


def load_onnx_model(path: str | Path) -> OnnxModel:
    """The SR model of an `srtk export` ONNX file, in eval mode, with `.scale` from its metadata."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file")
    return OnnxModel(path).eval()
