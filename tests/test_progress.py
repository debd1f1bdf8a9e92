from pathlib import Path

import pytest

from srtk.config import EvalConfig
from srtk.evaluate import run_evaluation
from srtk.progress import TqdmProgress
from tests.train import image_folder


def test_tqdm_progress_draws_the_python_apis_bars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = image_folder(tmp_path / "hr", 2, size=32)
    progress = TqdmProgress()
    run_evaluation(EvalConfig(datasets=(str(folder),), device="cpu"), progress=progress)
    (bar,) = progress.bars.values()
    assert (bar.n, bar.total) == (2, 2)
    assert "2/2" in capsys.readouterr().err  # tqdm writes its text bar to stderr outside notebooks
