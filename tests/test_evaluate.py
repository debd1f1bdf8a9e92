from pathlib import Path

import pytest
import torch

from srtk.config import EvalConfig
from srtk.data.datasets import evaluation_pairs
from srtk.data.io import write_image
from srtk.errors import ConfigError
from srtk.evaluate import ImageScorer, run_evaluation
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.registry import build_model, load_model

TINY_EDSR = {"scale": 2, "num_features": 8, "num_blocks": 2}


@pytest.fixture()
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    return save_model(
        tmp_path / "tiny.safetensors",
        build_model("edsr", **TINY_EDSR),
        ModelCard(architecture="edsr", config=TINY_EDSR, scale=2),
    )


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for name, (height, width) in {"a.png": (36, 32), "b.png": (33, 40)}.items():  # b: odd height, modcropped
        write_image(tmp_path / "hr" / name, torch.rand(3, height, width, generator=generator))
    return tmp_path / "hr"


@pytest.mark.parametrize(
    "options",
    [{}, {"tile": 8, "tile_overlap": 4, "self_ensemble": True}],
    ids=["whole", "tiled-ensemble"],
)
def test_image_scorer_gives_exactly_what_run_evaluation_reports(
    tiny_model: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # LPIPS with a random trunk: never real weights
    cfg = EvalConfig(
        model=str(tiny_model),
        datasets=(str(folder),),
        scale=2,
        metrics=("psnr", "ssim", "lpips"),
        device="cpu",
        allow_random_lpips=True,
        **options,
    )
    torch.manual_seed(0)  # the random LPIPS trunk: the same in both
    reported = run_evaluation(cfg).datasets["hr"].images

    torch.manual_seed(0)
    score = ImageScorer(cfg, torch.device("cpu"))
    model = load_model(tiny_model).eval()
    scored = {pair.name: score(model, pair) for pair in evaluation_pairs(folder, 2)}  # type: ignore[union-attr]
    assert scored == reported  # exactly: one implementation
    assert list(scored["a.png"]) == ["psnr_y", "psnr_rgb", "ssim_y", "lpips"]
    assert 0 < scored["a.png"]["psnr_y"] < 60 and scored["a.png"]["lpips"] > 0


def test_image_scorer_checks_the_precision_before_any_image() -> None:
    cfg = EvalConfig(precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        ImageScorer(cfg, torch.device("cpu"))
