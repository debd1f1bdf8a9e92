import json
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from srtk.cli import main
from srtk.data.io import read_image


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["srtk", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        iio.imwrite(folder / name, rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    return folder


def test_help_lists_the_subcommands(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0
    for command in ("evaluate", "upscale", "gradmap", "download", "datasets"):
        assert command in out


def test_upscale_batch_goes_on_past_a_corrupt_file(monkeypatch, capsys, images, tmp_path):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code, out, err = run_cli(
        monkeypatch, capsys, "upscale", str(images), "--out", str(tmp_path / "out"), "--scale", "2"
    )
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert read_image(tmp_path / "out" / "a.png").shape == (3, 48, 40)
    error_lines = [line for line in err.splitlines() if "broken.png" in line]
    assert len(error_lines) == 1 and "error:" in error_lines[0]


def test_upscale_tiled_matches_untiled_output(monkeypatch, capsys, images, tmp_path):
    run_cli(monkeypatch, capsys, "upscale", str(images / "a.png"), "-o", str(tmp_path / "whole"))
    run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(images / "a.png"),
        "-o",
        str(tmp_path / "tiled"),
        "--tile",
        "8",
        "--tile-overlap",
        "4",
    )
    whole, tiled = read_image(tmp_path / "whole" / "a.png"), read_image(tmp_path / "tiled" / "a.png")
    assert (whole - tiled).abs().max() <= 1 / 255


def test_evaluate_writes_the_documented_json(monkeypatch, capsys, images, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, _ = run_cli(
        monkeypatch,
        capsys,
        "evaluate",
        "--datasets",
        str(images),
        "--scale",
        "2",
        "--metrics",
        "psnr,ssim",
        "--out",
        str(out),
    )
    assert code == 0 and "psnr_y" in stdout
    result = json.loads(out.read_text())
    assert result["model"] == "bicubic" and result["scale"] == 2 and "protocol" in result
    dataset = result["datasets"]["imgs"]
    assert set(dataset["images"]) == {"a.png", "b.png"}
    assert set(dataset["mean"]) == {"psnr_y", "psnr_rgb", "ssim_y"}
    assert 5 < dataset["mean"]["psnr_y"] < 40
    assert result["config"]["metrics"] == ["psnr", "ssim"]


def test_evaluate_missing_dataset_is_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("SRTK_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--datasets", "manga109", "--data-root", str(tmp_path))
    assert code == 1
    assert err.strip().startswith("error: dataset 'manga109' not found") and "Manga109" in err


def test_evaluate_unknown_metric(monkeypatch, capsys, images):
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--datasets", str(images), "--metrics", "psnr,fid")
    assert code == 1 and "unknown metric(s) fid" in err


def test_gradmap_writes_a_normalised_map(monkeypatch, capsys, images, tmp_path):
    code, _, _ = run_cli(
        monkeypatch, capsys, "gradmap", str(images / "a.png"), "-o", str(tmp_path / "g.png"), "--mode", "luma"
    )
    grad = read_image(tmp_path / "g.png")
    assert code == 0 and grad.shape == (3, 24, 20)
    assert torch_equal_channels(grad) and float(grad.max()) == 1.0


def torch_equal_channels(img) -> bool:
    return bool((img[0] == img[1]).all() and (img[1] == img[2]).all())


def test_convert_then_upscale_and_info_with_the_converted_checkpoint(monkeypatch, capsys, images, tmp_path):
    import torch

    from tests.reference import official_state_dict

    torch.save(official_state_dict("edsr_baseline"), tmp_path / "edsr.pth")
    code, out, _ = run_cli(monkeypatch, capsys, "convert", str(tmp_path / "edsr.pth"), str(tmp_path / "e.safetensors"))
    assert code == 0 and "edsr x4" in out and "EDSR-PyTorch EDSR" in out
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(images / "a.png"),
        "--model",
        str(tmp_path / "e.safetensors"),
        "-o",
        str(tmp_path / "sr"),
    )
    assert code == 0 and read_image(tmp_path / "sr" / "a.png").shape == (3, 96, 80)  # the checkpoint's x4
    code, out, _ = run_cli(
        monkeypatch, capsys, "info", "--model", str(tmp_path / "e.safetensors"), "--lr-size", "32x16"
    )
    assert code == 0 and "1,517,571" in out and "32x16 -> 128x64" in out and "after blocks 4, 8, 12, 16" in out
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "evaluate",
        "--model",
        str(tmp_path / "e.safetensors"),
        "--datasets",
        str(images),
        "--scale",
        "2",
    )
    assert code == 1 and "upscales x4, but --scale is 2" in err


def test_convert_writes_an_official_critic_that_upscale_refuses(monkeypatch, capsys, images, tmp_path):
    import torch

    from tests.models.test_discriminators import _official_vgg

    official = _official_vgg("basicsr", in_channels=3, widths=[8, 16], final=4, hidden=12)
    torch.save(official, tmp_path / "critic.pth")
    code, out, _ = run_cli(
        monkeypatch, capsys, "convert", str(tmp_path / "critic.pth"), str(tmp_path / "d.safetensors")
    )
    assert code == 0 and "vgg-128" in out and "VGG-128 discriminator" in out
    assert (tmp_path / "d.safetensors").exists() and (tmp_path / "d.json").exists()
    model = str(tmp_path / "d.safetensors")
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(images / "a.png"), "--model", model, "-o", str(tmp_path))
    assert code == 1 and "vgg-128 is a discriminator, not an SR model" in err
