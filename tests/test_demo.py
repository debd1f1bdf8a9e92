import json
from pathlib import Path

import pytest
import torch

import srtk.models.bundled
from srtk.data.io import read_image
from srtk.demo import BICUBIC, TEST_SAMPLES, TRAINED_LABEL, DemoRow, demo_rows, run_demo, showcase_models
from srtk.models.checkpoint import ModelCard, read_card, save_model
from srtk.models.registry import build_model
from srtk.presets import PERCEPTUAL, PSNR_ORIENTED
from tests.test_cli import run_cli

NAMES = {f"{name}.png" for name in TEST_SAMPLES}


@pytest.fixture()
def bundled(tmp_path, monkeypatch):
    """Two tiny stand-ins for the bundled models (random weights: the demo's plumbing, not their quality)."""
    folder = tmp_path / "bundled"
    config = {"scale": 4, "num_features": 8, "num_blocks": 2}
    for name, method in (("psnr-edsr", "psnr"), ("spsr-p", "spsr-p")):
        card = ModelCard(architecture="edsr", config=config, scale=4, method=method, source="test stand-in")
        save_model(folder / f"{name}.safetensors", build_model("edsr", **config), card, dtype=torch.float16)
    monkeypatch.setattr(srtk.models.bundled, "bundled_folder", lambda: folder)
    return folder


@pytest.mark.slow
def test_demo_trains_compares_upscales_and_draws(tmp_path, bundled, monkeypatch, capsys):
    out = tmp_path / "demo"
    code, screen, _ = run_cli(monkeypatch, capsys, "demo", "--out", str(out), "--iterations", "4", "--device", "cpu")
    assert code == 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["training"]["iterations"] == 4
    model = Path(summary["training"]["model"])
    assert model.exists() and read_card(model).method == "psnr"

    # The comparison: bicubic, the model trained now and every bundled model, with its report and tables.
    table = json.loads((out / "compare" / "table.json").read_text())
    labels = {BICUBIC, TRAINED_LABEL, "psnr-edsr", "spsr-p"}
    assert {m["label"] for m in table["models"]} == labels
    assert {row["model"] for row in table["tables"]["test"]} == labels
    assert (out / "compare" / "report" / "index.html").exists() and (out / "compare" / "table.md").exists()
    images = table["datasets"]["test"]["images"]
    assert set(images[TRAINED_LABEL]) == NAMES
    # Bicubic on the test photographs under the protocol: the known value (brick, x4).
    assert abs(images[BICUBIC]["brick.png"]["psnr_y"] - 29.1185) < 1e-3

    # The final screen's rows: bundled PSNR-oriented, bundled perceptual, trained now, bicubic; gains over bicubic.
    rows = summary["models"]
    assert [(r["model"], r["kind"]) for r in rows] == [
        ("psnr-edsr", PSNR_ORIENTED),
        ("spsr-p", PERCEPTUAL),
        (TRAINED_LABEL, PSNR_ORIENTED),
        (BICUBIC, "interpolation"),
    ]
    means = {row["model"]: row["metrics"]["psnr_y"] for row in rows}
    for row in rows:
        assert row["psnr_y_gain_db"] == pytest.approx(means[row["model"]] - means[BICUBIC], abs=1e-9)
    for label in ("psnr-edsr", "spsr-p", TRAINED_LABEL, BICUBIC):
        assert label in screen
    assert "srtk upscale photo.png --model spsr-p -o out/" in screen and "srtk models" in screen
    assert str(out / "compare" / "report" / "index.html") in screen

    # Upscaled with bicubic, the PSNR-oriented and the perceptual bundled model; gradient maps of one photograph.
    hr = read_image(out / "test" / "brick.png")
    for label in (BICUBIC, "psnr-edsr", "spsr-p"):
        assert {p.name for p in (out / "sr" / label).iterdir()} == NAMES
        assert read_image(out / "sr" / label / "brick.png").shape == hr.shape  # 512 is a multiple of 4
        assert (out / "gradmap" / f"brick_{label}.png").exists()
    assert (out / "gradmap" / "brick_hr.png").exists()

    # Run again into the same folder: the run is replaced, the bundled models' SR images come from the cache.
    again = run_demo(out, iterations=2, device="cpu")
    assert again.comparison.sr_cached["psnr-edsr"] == len(NAMES) and again.comparison.sr_computed["psnr-edsr"] == 0
    assert json.loads((out / "demo.json").read_text())["training"]["iterations"] == 2


def _row(label: str, origin: str, kind: str, psnr: float, niqe: float) -> DemoRow:
    return DemoRow(label, origin, kind, {"psnr_y": psnr, "ssim_y": 0.8, "niqe": niqe}, psnr - 28.0)


def test_rows_put_bundled_models_first_and_bicubic_last():
    cards = {
        BICUBIC: None,
        TRAINED_LABEL: ModelCard("edsr", {}, 4, method="psnr"),
        "gpsr": ModelCard("gpsr", {}, 4, method="gpsr"),
        "psnr-edsr": ModelCard("edsr", {}, 4, method="psnr"),
        "esrgan": ModelCard("rrdbnet", {}, 4, method="esrgan"),
        "ugsr": ModelCard("ugsr", {}, 4, method="ugsr"),
        "converted": ModelCard("rrdbnet", {}, 4),
    }
    means = {
        BICUBIC: {"psnr_y": 28.0, "niqe": 7.0},
        TRAINED_LABEL: {"psnr_y": 28.5, "niqe": 7.5},
        "gpsr": {"psnr_y": 28.9, "niqe": 6.9},
        "psnr-edsr": {"psnr_y": 29.2, "niqe": 7.2},
        "esrgan": {"psnr_y": 27.0, "niqe": 4.0},
        "ugsr": {"psnr_y": 27.5, "niqe": 3.5},
        "converted": {"psnr_y": 26.0, "niqe": 5.0},
    }
    rows = demo_rows(means, cards)
    assert [row.label for row in rows] == ["psnr-edsr", "gpsr", "ugsr", "esrgan", "converted", TRAINED_LABEL, BICUBIC]
    assert [row.kind for row in rows[2:5]] == [PERCEPTUAL, PERCEPTUAL, "-"]
    assert rows[0].psnr_gain == pytest.approx(1.2) and rows[-1].psnr_gain == 0


def test_showcase_models_fall_back_to_the_model_trained_now_and_the_best_perceptual_one():
    trained = Path("run/final.safetensors")
    baseline = [_row(TRAINED_LABEL, "trained now", PSNR_ORIENTED, 28.5, 7), _row(BICUBIC, "baseline", "-", 28, 7)]
    assert showcase_models(baseline, trained) == {BICUBIC: BICUBIC, TRAINED_LABEL: str(trained)}
    some = [
        _row("psnr-rrdb", "bundled", PSNR_ORIENTED, 29, 7),
        _row("ugsr", "bundled", PERCEPTUAL, 27, 3),
        _row("esrgan", "bundled", PERCEPTUAL, 27, 4),
        *baseline,
    ]
    assert showcase_models(some, trained) == {BICUBIC: BICUBIC, "psnr-rrdb": "psnr-rrdb", "ugsr": "ugsr"}
    every = [_row("psnr-edsr", "bundled", PSNR_ORIENTED, 29.5, 7), _row("spsr-p", "bundled", PERCEPTUAL, 27, 5), *some]
    assert showcase_models(every, trained) == {BICUBIC: BICUBIC, "psnr-edsr": "psnr-edsr", "spsr-p": "spsr-p"}
