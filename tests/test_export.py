"""srtk export: every registry generator round-trips through ONNX within the bound; the export upscales a file."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import srtk.export
from srtk.cli import main
from srtk.data.io import read_image, write_image
from srtk.errors import CheckpointError
from srtk.export import ONNX_BOUNDS, ExportError, accelerated, export_network, export_onnx, network_key
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.exported import OnnxModel, load_onnx_model
from srtk.models.registry import MODELS, PARAMETER_FREE, build_model, load_model
from srtk.tiling import TILED_BOUND, activation_bytes_per_pixel, default_overlap, upscale_tiled

# Tiny configs of every generator (few blocks and features; the graphs have the full structure).
TINY: dict[str, dict] = {
    "rrdbnet": {"num_features": 8, "num_blocks": 1, "growth_channels": 4},
    "srresnet": {"num_features": 8, "num_blocks": 1},
    "srresnet-bn": {"num_features": 8, "num_blocks": 1},
    "edsr": {"num_features": 8, "num_blocks": 1},
    "edsr-baseline": {"num_features": 8, "num_blocks": 1},
    "edsr-large": {"num_features": 8, "num_blocks": 1},
    "rcan": {"num_features": 8, "num_groups": 1, "blocks_per_group": 1, "reduction": 4},
    "han": {"num_features": 8, "num_groups": 1, "blocks_per_group": 1, "reduction": 4},
    "nlsn": {"num_features": 8, "num_blocks": 2, "attention_interval": 1, "chunk_size": 16, "num_hashes": 1},
    "spsr": {"num_features": 8, "num_blocks": 1, "growth_channels": 4, "num_taps": 1},
    "spsr-around": {
        "backbone": "edsr",
        "backbone_options": {"num_features": 8, "num_blocks": 4},
        "num_taps": 4,
        "growth_channels": 4,
    },
    "ugsr": {"num_features": 8, "num_blocks": 1, "growth_channels": 4, "num_gradient_blocks": 1},
    "gpsr": {"num_features": 4, "num_modules": 1, "num_residual_blocks": 1},
    "gpsr-x8": {"num_features": 4, "num_modules": 1, "num_residual_blocks": 1},
}
SLOW = {"spsr-around", "gpsr-x8"}  # 10-20 s each on a shared laptop core


def test_every_generator_has_a_tiny_export_config() -> None:
    assert set(TINY) == set(MODELS) - PARAMETER_FREE


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TINY])
def test_onnx_round_trip_of_every_generator(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = build_model(name, **TINY[name])
    result = export_network(network, tmp_path / f"{name}.onnx", architecture=name)
    assert result.max_abs_diff < result.bound
    if name != "nlsn":  # NLSN's hash draws fresh rotations per forward: its bound widens by its own spread
        assert result.spread == 0 and result.bound == ONNX_BOUNDS["fp32"]
    exported = load_onnx_model(result.path)
    assert exported.scale == network.scale and exported.architecture == name


def test_fp16_export_is_within_its_bound(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = export_network(
        build_model("rrdbnet", **TINY["rrdbnet"]), tmp_path / "half.onnx", architecture="rrdbnet", fp16=True
    )
    assert result.precision == "fp16" and result.max_abs_diff < ONNX_BOUNDS["fp16"]
    assert load_onnx_model(result.path).input_dtype == torch.float16


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    config = {**TINY["rrdbnet"], "scale": 2}
    return save_model(
        tmp_path / "tiny.safetensors", build_model("rrdbnet", **config), ModelCard("rrdbnet", config, scale=2)
    )


def test_exported_model_loads_like_a_checkpoint_and_tiles_with_its_receptive_field(checkpoint, tmp_path) -> None:
    result = export_onnx(checkpoint, tmp_path / "tiny.onnx")
    exported, original = load_model(result.path), load_model(checkpoint)
    assert exported.scale == 2 and default_overlap(exported) == default_overlap(original) == 19
    # the export recorded the network's activation memory, which `--tile auto` plans with
    network = getattr(original, "network", original)
    assert exported.bytes_per_lr_pixel == pytest.approx(activation_bytes_per_pixel(network), abs=0.1)
    lr = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        expected = original(lr)
    tiled = upscale_tiled(exported, lr, scale=2, tile=24)  # dynamic sizes: every tile has another shape
    assert (tiled - expected).abs().max() < ONNX_BOUNDS["fp32"] + TILED_BOUND


def test_cli_exports_and_upscales_a_file_with_the_export(checkpoint, tmp_path, monkeypatch, capsys) -> None:
    def cli(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["srtk", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        return int(exit_info.value.code or 0), captured.out + captured.err

    onnx_path = tmp_path / "deploy.onnx"
    code, out = cli("export", str(checkpoint), "--onnx", str(onnx_path))
    assert code == 0 and "max abs difference" in out and onnx_path.is_file()
    image = tmp_path / "in" / "photo.png"
    write_image(image, torch.rand(3, 20, 28, generator=torch.Generator().manual_seed(0)))
    code, out = cli("upscale", str(image), "--model", str(onnx_path), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert code == 0, out
    produced = read_image(tmp_path / "out" / "photo.png")
    with torch.no_grad():
        expected = load_model(checkpoint)(read_image(image).unsqueeze(0))[0].clamp(0, 1)
    assert produced.shape == (3, 40, 56)
    assert float((produced - expected).abs().max()) <= 0.5 / 255 + 1e-4  # 8-bit rounding of the same SR


def test_export_refuses_bad_outputs_and_weightless_models(checkpoint, tmp_path) -> None:
    with pytest.raises(ExportError, match="must be an .onnx file"):
        export_onnx(checkpoint, tmp_path / "model.txt")
    with pytest.raises(ExportError, match="missing is not a folder"):
        export_onnx(checkpoint, tmp_path / "missing" / "model.onnx")
    with pytest.raises(ExportError, match="nothing to deploy"):
        export_onnx("bicubic", tmp_path / "bicubic.onnx")


def test_foreign_onnx_files_are_named_in_one_line(tmp_path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="garbage.onnx: not a loadable ONNX model"):
        load_onnx_model(garbage)


def test_accelerated_runner_is_onnxruntime_on_cpu_matches_pytorch_and_is_cached(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    network = build_model("rrdbnet", **TINY["rrdbnet"]).eval()
    runner = accelerated(network, torch.device("cpu"), architecture="rrdbnet", cache=tmp_path)
    assert isinstance(runner, OnnxModel) and default_overlap(runner) == 19
    lr = torch.rand(1, 3, 30, 22)
    with torch.no_grad():
        assert float((runner(lr) - network(lr)).abs().max()) < ONNX_BOUNDS["fp32"]
    (cached,) = tmp_path.iterdir()
    assert cached.name == f"rrdbnet-{network_key(network, 'rrdbnet')}.onnx"

    def no_export(*args, **kwargs):
        raise AssertionError("a cached export must not be exported again")

    monkeypatch.setattr(srtk.export, "export_network", no_export)
    again = accelerated(network, torch.device("cpu"), architecture="rrdbnet", cache=tmp_path)
    assert isinstance(again, OnnxModel) and again.path == cached
    with torch.no_grad():
        network.out_conv.bias.add_(1.0)  # other weights, another key: never the stale graph
    assert network_key(network, "rrdbnet") not in cached.name


def test_accelerated_runner_falls_back_to_channels_last_pytorch_for_a_stochastic_model(tmp_path) -> None:
    torch.manual_seed(0)
    runner = accelerated(build_model("nlsn", **TINY["nlsn"]), torch.device("cpu"), cache=tmp_path)
    assert not isinstance(runner, OnnxModel) and not any(tmp_path.iterdir())
    convs = [m for m in runner.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
