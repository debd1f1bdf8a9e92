import json

import pytest

from srtk.data.io import read_image
from srtk.demo import TEST_SAMPLES, run_demo


@pytest.mark.slow
def test_demo_trains_evaluates_upscales_and_draws(tmp_path):
    result = run_demo(tmp_path, iterations=6, device="cpu")
    assert result.model.exists() and result.model.with_suffix(".json").exists()
    names = {f"{name}.png" for name in TEST_SAMPLES}
    for evaluation in (result.bicubic, result.trained):
        assert set(next(iter(evaluation.datasets.values())).images) == names
    assert {p.name for p in result.upscaled.written} == names and not result.upscaled.failed
    hr = read_image(tmp_path / "test" / "brick.png")
    assert read_image(tmp_path / "sr" / "brick.png").shape == hr.shape  # 512 is a multiple of 4
    assert all(p.exists() for p in result.gradient_maps)
    compare = json.loads(result.result_file.read_text())
    assert compare["training"]["iterations"] == 6 and compare["training"]["status"] == "completed"
    # Bicubic on the test photographs under the protocol: known values (brick, x4).
    assert abs(compare["bicubic"]["datasets"]["test"]["images"]["brick.png"]["psnr_y"] - 29.1185) < 1e-3
