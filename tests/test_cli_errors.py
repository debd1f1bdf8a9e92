"""Every subcommand against the mistakes users make: exactly one `error:` line on stderr (no traceback, no
wrapping), a non-zero exit status (2 for a malformed command line, 1 for anything else), no file written or
changed, and for checks of paths and names no work started before the error (the commands' core functions are
replaced by tripwires). Argument errors are reported before torch is even imported."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from srtk.cli import main
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.registry import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The inputs the mistakes are made with (built once): images, checkpoints good and bad, folders."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    image = root / "photo.png"
    iio.imwrite(image, rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    broken = root / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    text_pth = root / "notes.pth"
    text_pth.write_text("not a checkpoint\n")
    unsafe = root / "unsafe.pth"
    torch.save({"weights": torch.zeros(1), "hook": Path("x")}, unsafe)  # a pickled object besides tensors
    tiny = build_model("edsr-baseline", scale=2, num_blocks=2, num_features=8)
    x2 = save_model(
        root / "x2.safetensors",
        tiny,
        ModelCard(architecture="edsr-baseline", config={"scale": 2, "num_blocks": 2, "num_features": 8}, scale=2),
    )
    short = root / "bench" / "Set5"  # 3 of Set5's 5 images
    short.mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        iio.imwrite(short / name, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    train = root / "train"
    train.mkdir()
    for index in range(2):
        iio.imwrite(train / f"{index}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    bad_train = root / "bad_train"
    bad_train.mkdir()
    iio.imwrite(bad_train / "ok.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (bad_train / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    finished = root / "finished_run"
    finished.mkdir()
    for name in ("config.json", "result.json", "final.safetensors", "log.jsonl"):
        (finished / name).write_text("{}")
    a_file = root / "a_file.txt"
    a_file.write_text("a file, not a folder")
    existing_dir = root / "existing_dir"
    existing_dir.mkdir()
    return {
        "image": image,
        "broken": broken,
        "text_pth": text_pth,
        "unsafe": unsafe,
        "x2": x2,
        "bench": root / "bench",
        "train": train,
        "bad_train": bad_train,
        "finished": finished,
        "file": a_file,
        "dir": existing_dir,
        "root": root,
    }


# (id, argv with {placeholders} from `files` and {out} a fresh path, expected exit, text the error must contain,
#  whether the error must come before any work). {out} never exists beforehand: a check that it stays absent
#  proves nothing partial was left.
CASES: list[tuple[str, str, int, str, bool]] = [
    # malformed command lines: exit 2
    ("no-such-command", "upscal {image}", 2, "No such command", True),
    ("unknown-option", "evaluate --bogus", 2, "No such option", True),
    ("non-numeric", "evaluate --scale abc", 2, "--scale", True),
    ("missing-argument", "gradmap", 2, "Missing argument", True),
    ("switch-with-value", "train --resume true", 2, "unexpected extra argument", True),
    # evaluate
    ("evaluate-scale-0", "evaluate --scale 0 --data-root {bench} --datasets set5", 1, "scale must be", True),
    ("evaluate-unknown-model", "evaluate --model bicubc --data-root {bench}", 1, "did you mean 'bicubic'", True),
    ("evaluate-method-as-model", "evaluate --model spsr-r --data-root {bench}", 1, "srtk train --method spsr-r", True),
    ("evaluate-architecture", "evaluate --model rrdbnet --data-root {bench}", 1, "bundled model", True),
    ("evaluate-missing-ckpt", "evaluate --model {root}/gone.safetensors --data-root {bench}", 1, "no such", True),
    ("evaluate-text-pth", "evaluate --model {text_pth} --data-root {bench}", 1, "not a PyTorch checkpoint", True),
    ("evaluate-unsafe-pth", "evaluate --model {unsafe} --data-root {bench}", 1, "never runs code", True),
    ("evaluate-unknown-dataset", "evaluate --datasets set6 --data-root {bench}", 1, "set6", True),
    ("evaluate-missing-root", "evaluate --data-root {root}/nowhere", 1, "no such folder", True),
    ("evaluate-out-is-folder", "evaluate --data-root {bench} --datasets set5 --out {dir}", 1, "is a folder", True),
    ("evaluate-out-under-file", "evaluate --data-root {bench} --datasets set5 --out {file}/r.json", 1, "a file", True),
    ("evaluate-out-suffix", "evaluate --data-root {bench} --datasets set5 --out {out}.txt", 1, ".json", True),
    ("evaluate-metric", "evaluate --metrics psnr,sharpness --data-root {bench}", 1, "sharpness", True),
    ("evaluate-tile-0", "evaluate --tile 0 --data-root {bench} --datasets set5", 1, "tile", True),
    ("evaluate-tile-negative", "evaluate --tile -4 --data-root {bench} --datasets set5", 1, "tile", True),
    ("evaluate-precision", "evaluate --precision fp8 --data-root {bench} --datasets set5", 1, "fp8", True),
    ("evaluate-unknown-set-key", "evaluate --set tiles=3 --data-root {bench}", 1, "tiles", True),
    ("evaluate-missing-config", "evaluate --config {root}/none.yaml", 1, "none.yaml", True),
    ("evaluate-wrong-scale", "evaluate --model {x2} --scale 4 --data-root {bench} --datasets set5", 1, "x2", False),
    # upscale
    ("upscale-scale-0", "upscale {image} -o {out} --scale 0", 1, "scale", True),
    ("upscale-out-is-file", "upscale {image} -o {file}", 1, "is a file", True),
    ("upscale-suffix", "upscale {image} -o {out} --suffix .xyz", 1, ".xyz", True),
    ("upscale-tile", "upscale {image} -o {out} --tile big", 1, "tile", True),
    ("upscale-precision", "upscale {image} -o {out} --precision fp64", 1, "fp64", True),
    ("upscale-unknown-model", "upscale {image} -o {out} --model spsr-q", 1, "spsr-q", True),
    ("upscale-missing-input", "upscale {root}/gone.png -o {out}", 1, "gone.png", False),
    ("upscale-broken-input", "upscale {broken} -o {out}", 1, "broken.png", False),
    # gradmap
    ("gradmap-missing", "gradmap {root}/gone.png -o {out}.png", 1, "no such file", True),
    ("gradmap-out-folder", "gradmap {image} -o {dir}", 1, "is a folder", True),
    ("gradmap-no-extension", "gradmap {image} -o {out}", 1, "no extension", True),
    ("gradmap-onto-input", "gradmap {image} -o {image}", 1, "never overwrites an input", True),
    ("gradmap-mode", "gradmap {image} -o {out}.png --mode hue", 2, "hue", True),
    ("gradmap-gamma", "gradmap {image} -o {out}.png --gamma -1", 1, "gamma", True),
    ("gradmap-broken", "gradmap {broken} -o {out}.png", 1, "broken.png", False),
    # convert
    ("convert-missing", "convert {root}/gone.pth {out}.safetensors", 1, "no such file", True),
    ("convert-text", "convert {text_pth} {out}.safetensors", 1, "not a PyTorch checkpoint", False),
    ("convert-unsafe", "convert {unsafe} {out}.safetensors", 1, "never runs code", False),
    ("convert-target-suffix", "convert {unsafe} {out}.pth", 1, ".safetensors", True),
    ("convert-target-under-file", "convert {unsafe} {file}/x.safetensors", 1, "a file", True),
    # export
    ("export-missing", "export {root}/gone.pth --onnx {out}.onnx", 1, "no such checkpoint file", True),
    ("export-suffix", "export {x2} --onnx {out}.txt", 1, "must be an .onnx file", True),
    ("export-under-file", "export {x2} --onnx {file}/x.onnx", 1, "is not a folder", True),
    ("export-weightless", "export bicubic --onnx {out}.onnx", 1, "nothing to deploy", True),
    ("export-text", "export {text_pth} --onnx {out}.onnx", 1, "not a PyTorch checkpoint", False),
    # info
    ("info-unknown", "info --model rrdbnett", 1, "did you mean 'rrdbnet'", True),
    ("info-size", "info --model rrdbnet --lr-size 0x5", 1, "positive", True),
    ("info-size-text", "info --model rrdbnet --lr-size big", 1, "WIDTHxHEIGHT", True),
    ("info-scale", "info --model rrdbnet --scale 3", 1, "scale", True),
    # download, datasets
    ("download-unknown", "download div3k --root {out}", 1, "div3k", True),
    ("download-no-sum", "download div2k --root {out}", 1, "--sha256", True),
    ("download-bad-sum", "download div2k --root {out} --sha256 abc", 1, "SHA-256", True),
    ("download-root-file", "download div2k --root {file} --sha256 " + "0" * 64, 1, "is a file", True),
    ("models-unknown-option", "models --all", 2, "No such option", True),
    ("datasets-missing-root", "datasets --data-root {root}/nowhere", 1, "no such folder", True),
    # demo
    ("demo-iterations", "demo --iterations 0 --out {out}", 1, "iterations", True),
    ("demo-out-file", "demo --out {file}", 1, "is a file", True),
    # train
    ("train-unknown-method", "train --method spsr-q -o {out}", 1, "spsr-q", True),
    ("train-resume-nothing", "train -o {out} --resume", 1, "no run to resume", True),
    ("train-finished-run", "train -o {finished} --data {train}", 1, "--overwrite", True),
    ("train-resume-and-overwrite", "train -o {out} --resume --overwrite", 1, "choose one", True),
    ("train-iterations", "train --iterations 0 -o {out} --data {train}", 1, "iterations", True),
    (
        "train-negative-blocks",
        "train -o {out} --data {train} --set model.backbone_options.num_blocks=-3",
        1,
        "-3",
        False,
    ),
    ("train-unknown-key", "train -o {out} --set optim.learnig_rate=1", 1, "learnig_rate", True),
    ("train-missing-data", "train -o {out} --data {root}/nowhere", 1, "nowhere", False),
    ("train-corrupt-data", "train -o {out} --data {bad_train} --set data.lr_patch_size=8", 1, "corrupt.png", False),
    ("train-data-root", "train -o {out} --data-root {root}/nowhere", 1, "no such folder", True),
    ("train-out-is-file", "train -o {file}", 1, "is a file", True),
    # compare
    (
        "compare-missing-model",
        "compare --models bicubic,{root}/gone.safetensors --data-root {bench} --out {out}",
        1,
        "gone",
        True,
    ),
    ("compare-twice", "compare --models bicubic,bicubic --data-root {bench} --out {out}", 1, "twice", True),
    ("compare-out-file", "compare --models bicubic --data-root {bench} --out {file}", 1, "not a folder", True),
    ("compare-dataset", "compare --models bicubic --datasets set6 --data-root {bench} --out {out}", 1, "set6", True),
    ("compare-metric", "compare --models bicubic --metrics sharp --data-root {bench} --out {out}", 1, "sharp", True),
    # ablate
    ("ablate-unknown-study", "ablate --study spsr-x --out {out}", 1, "unknown study", True),
    ("ablate-out-is-file", "ablate --study gpsr-gg-loss --out {file}", 1, "is a file", True),
    ("ablate-needs-embedding", "ablate --study pcl-fixed-embedding --out {out}", 1, "--embedding", True),
    ("ablate-iterations", "ablate --study gpsr-gg-loss --out {out} --iterations 0", 1, "iterations", True),
    ("ablate-missing-benchmark", "ablate --study gpsr-gg-loss --out {out} --data-root {dir}", 1, "set5", True),
    # pretrain-nse
    ("nse-task", "pretrain-nse --task colour -o {out}", 1, "contrastive", True),
    ("nse-patch", "pretrain-nse --patch-size 30 -o {out}", 1, "multiple of 4", True),
    ("nse-evaluate-missing", "pretrain-nse --evaluate {root}/gone.safetensors -o {out}", 1, "no such file", True),
    ("nse-evaluate-wrong-kind", "pretrain-nse --evaluate {x2} --data {train} -o {out}", 1, "x2.safetensors", False),
]

# Where each command's work starts (a model loaded, an image read, a network built): replaced by a tripwire for
# the cases that must fail before work.
WORK: dict[str, tuple[str, str]] = {
    "evaluate": ("srtk.evaluate", "load_model"),
    "upscale": ("srtk.infer", "read_source_image"),
    "gradmap": ("srtk.gradmap", "render_gradient_map"),
    "convert": ("srtk.models.registry", "convert_official_to_srtk"),
    "export": ("srtk.export", "export_network"),
    "info": ("srtk.models.summary", "count_flops"),
    "download": ("urllib.request", "urlopen"),
    "demo": ("srtk.demo", "run_demo"),
    "models": ("srtk.models.bundled", "bundled_cards"),
    "train": ("srtk.train.engine", "build_method"),
    "pretrain-nse": ("srtk.train.engine", "PretextMethod"),
    "ablate": ("srtk.studies.ablate", "run_training"),
    "compare": ("srtk.studies.compare", "super_resolve"),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal width must not wrap an error
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "status", "expected", "before_work"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_mistake_is_one_error_line_and_changes_nothing(
    argv: str,
    status: int,
    expected: str,
    before_work: bool,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    words = [word.format(out=out, **files) for word in argv.split()]
    command = words[0]
    if before_work and command in WORK:
        module, name = WORK[command]

        def tripwire(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"{module}.{name} ran before the error")

        monkeypatch.setattr(importlib.import_module(module), name, tripwire)
    monkeypatch.chdir(tmp_path)  # a default output in the current folder would show up below
    inputs = _snapshot(files["root"])
    code, _, err = _run(monkeypatch, capsys, words)
    lines = err.strip().splitlines()
    assert code == status, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err and "\x1b[" not in err
    assert _snapshot(files["root"]) == inputs  # no input overwritten or added to
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing partial: not even an output folder


def test_every_command_has_mistakes_in_the_table() -> None:
    from srtk.cli import app

    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    tried = {case[1].split()[0] for case in CASES}
    assert commands - tried == set(), "commands without a bad invocation in CASES"


def _subprocess(*args: str) -> subprocess.CompletedProcess:
    # sys.modules is read at exit: torch must not have been imported to report an argument error.
    probe = "import atexit, sys; atexit.register(lambda: print('torch' in sys.modules)); from srtk.cli import main; "
    env = {**os.environ, "COLUMNS": "40"}
    return subprocess.run(
        [sys.executable, "-c", probe + f"main({list(args)!r})"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--scale", "abc"],
        ["train", "--method", "spsr-q"],
        ["train", "--bogus"],
        ["upscale", "x.png"],
        ["gradmap", "x.png", "-o", "y.png", "--mode", "hue"],
        ["pretrain-nse", "--task", "colour"],
        ["nope"],
    ],
)
def test_argument_errors_come_before_torch_is_imported(argv: list[str]) -> None:
    done = _subprocess(*argv)
    assert done.returncode in (1, 2), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False", "torch was imported before the argument error"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr  # 40 columns, a pipe: still one line


def test_version_and_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from srtk.version import __version__

    code, out, _ = _run(monkeypatch, capsys, ["--version"])
    assert code == 0 and out.strip() == f"srtk {__version__}"
    code, out, _ = _run(monkeypatch, capsys, ["train", "--help"])
    assert code == 0 and "<bool>" not in out and "--data-root" in out and "--show-config" in out


def test_show_config_lists_every_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(monkeypatch, capsys, ["train", "--method", "pcl", "--backbone", "rcan", "--show-config"])
    config = json.loads(out)
    assert code == 0 and config["method"] == "pcl" and config["model"]["backbone"] == "rcan"
    assert config["losses"]["contrastive"] == 0.1  # paper 004 eq. 12: alpha = 0.1


def test_a_checkpoint_scale_is_the_default(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # An x2 checkpoint evaluated without --scale is evaluated at x2; the result JSON goes to a default file.
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(
        monkeypatch,
        capsys,
        ["evaluate", "--model", str(files["x2"]), "--data-root", str(files["bench"]), "--datasets", "set5"],
    )
    assert code == 0, err
    written = tmp_path / "evaluate-x2-x2.json"
    result = json.loads(written.read_text())
    assert result["scale"] == 2 and str(written.name) in out
    # The short benchmark (3 of Set5's 5 images) is a loud warning and a field of the result.
    assert result["datasets"]["Set5"]["incomplete"] == {"scored": 3, "expected": 5}
    assert "warning:" in err and "3 of Set5's 5 images" in err
    _run(
        monkeypatch,
        capsys,
        ["evaluate", "--model", str(files["x2"]), "--data-root", str(files["bench"]), "--datasets", "set5"],
    )
    assert (tmp_path / "evaluate-x2-x2-2.json").exists()  # a default name never replaces an earlier result


def test_info_describes_critics_and_shallow_trained_models(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = _run(monkeypatch, capsys, ["info", "--model", "vgg-128"])
    assert code == 0, err
    assert "128x128, 3 channels" in out
    code, out, err = _run(monkeypatch, capsys, ["info", "--model", str(files["x2"]), "--lr-size", "16x16"])
    assert code == 0, err
    assert "none by default (2 blocks" in out


def test_an_image_that_breaks_mid_run_is_one_line_naming_it(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Its header is whole, so the scan before the run passes; the decoder fails in a loader worker.
    data = tmp_path / "data"
    data.mkdir()
    iio.imwrite(data / "whole.png", np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    payload = (data / "whole.png").read_bytes()
    (data / "cut.png").write_bytes(payload[: len(payload) // 2])
    tiny = {
        "data.lr_patch_size": 8,
        "data.batch_size": 2,
        "data.num_workers": 1,
        "model.backbone_options.num_blocks": 1,
    }
    settings = [word for key, value in tiny.items() for word in ("--set", f"{key}={value}")]
    code, _, err = _run(
        monkeypatch, capsys, ["train", "-o", str(tmp_path / "run"), "--data", str(data), "--device", "cpu", *settings]
    )
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "cut.png" in lines[0] and "Traceback" not in err and "worker" not in lines[0]
