"""Every method trains on real photographs (../shared/datasets/train) with finite losses that fall."""

import json
from pathlib import Path

import pytest

from srtk.presets import resolve_train_config
from srtk.train.engine import run_training
from tests.conftest import shared_path
from tests.train import tiny_overrides

ITERATIONS = 16
NUM_IMAGES = 3  # LR images are made per image: a few keep the test short


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = shared_path("datasets", "train", "BSD68")
    folder = tmp_path_factory.mktemp("bsd68")
    for path in sorted(source.glob("*.png"))[:NUM_IMAGES]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("method", ["psnr", "srgan", "esrgan", "spsr-g", "ugsr", "gpsr"])
def test_method_trains_on_real_photographs(method: str, photos: Path, tmp_path: Path) -> None:
    extra = {
        "optim.iterations": ITERATIONS,
        "checkpoint.every": ITERATIONS,
        "checkpoint.log_every": ITERATIONS // 2,
        "data.repeat": 8,
    }
    result = run_training(resolve_train_config(method, overrides=tiny_overrides(method, photos, tmp_path, **extra)))
    assert result.status == "completed" and result.iterations == ITERATIONS and not result.skipped_steps
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    windows = [r["losses"] for r in records if r.get("event") == "train"]
    assert len(windows) == 2
    for window in windows:
        assert all(value == value and abs(value) < 1e6 for value in window.values()), window  # finite
    if method in ("psnr", "gpsr"):  # pure pixel objectives: the second half of the run fits better
        assert windows[1]["g_total"] < windows[0]["g_total"], windows
