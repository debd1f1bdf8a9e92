"""`srtk train`: options become a config (preset < --config < flags/--set), one core call, one-line errors."""

import json
from pathlib import Path

from typer.testing import CliRunner

from srtk.cli import app
from tests.train import image_folder

runner = CliRunner()


def test_train_command_runs_and_resumes(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "hr", 2)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data:\n  lr_patch_size: 8\n  batch_size: 2\n  num_workers: 0\n"
        "model:\n  backbone_options: {num_features: 8, num_blocks: 2, growth_channels: 4}\n"
        "checkpoint:\n  every: 2\n  log_every: 1\n"
    )
    out = tmp_path / "run"
    args = ["train", "--method", "psnr", "--config", str(config), "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, [*args, "--iterations", "2", "--device", "cpu", "--set", "optim.learning_rate=5e-4"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["iterations"] == 2 and saved["config"]["optim"]["learning_rate"] == 5e-4
    assert saved["config"]["data"]["batch_size"] == 2  # from the file
    assert saved["config"]["optim"]["schedule"] == "cosine"  # from the psnr preset
    # `--out DIR --resume` alone continues with the saved configuration.
    result = runner.invoke(app, ["train", "--out", str(out), "--resume", "--iterations", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "result.json").read_text())["iterations"] == 3


def test_train_command_rejects_unknown_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--set", "optim.learnin_rate=1", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown option 'optim.learnin_rate'" in str(result.exception) + result.output


def test_train_help_documents_every_method_and_its_defaults() -> None:
    from typer.testing import CliRunner

    from srtk.cli import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for line in (
        "spsr-g: spsr-around over rrdbnet; 15 x 32px",
        "grad_adversarial 0.005, branch_pixel 0.5",
        "gpsr: gpsr; 8 x 48px",
        "cosine lr 0.0001 -> 1e-07",
        "ugsr: ugsr; 16 x 32px",
        "srgan: srresnet",
        "esrgan: rrdbnet",
    ):
        assert line in result.output
