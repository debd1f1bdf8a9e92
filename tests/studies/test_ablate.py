"""`srtk ablate`: the paper tables as data, every study's variants resolvable, errors before any training, and
tiny studies end to end: the table with paper and run columns, a SIGKILLed study restarted without redoing
finished work, an interrupted variant resumed from its checkpoint, and variants on two worker processes."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from srtk.cli import app
from srtk.config.ablate import AblateConfig
from srtk.errors import ConfigError
from srtk.models.registry import build_model
from srtk.presets import PRESETS
from srtk.studies.ablate import EVALUATION_FILE, plan_study, run_study
from srtk.studies.paper_tables import METRIC_KEYS, STUDIES
from srtk.train.methods import build_method
from tests.train import REPO, TINY_GPSR, TINY_RRDB, image_folder

TINY_EDSR = {"num_features": 8, "num_blocks": 4}  # 4 blocks: SPSR's branch taps 4 backbone features


def tiny_sets(study: str) -> list[str]:
    """--set items shrinking every training run of `study` to a CPU-sized one of 8x8 LR patches."""
    sets = {
        "data.lr_patch_size": 8,
        "data.batch_size": 2,
        "data.num_workers": 0,
        "checkpoint.tensorboard": False,
        "checkpoint.log_every": 1,
        "model.discriminator_options": {"num_features": 4},
        "model.gradient_discriminator_options": {"num_features": 4},
        "model.backbone_options": TINY_RRDB,
    }
    if study.startswith("gpsr"):
        sets["model.generator_options"] = TINY_GPSR
    if study == "spsr-backbones":
        sets["model.backbone_options"] = TINY_EDSR
    return [f"{key}={json.dumps(value)}" for key, value in sets.items()]


def as_overrides(sets: list[str]) -> dict:
    return {item.partition("=")[0]: json.loads(item.partition("=")[2]) for item in sets}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One intra-op thread here and in child processes: on shared cores a second one spins and slows tiny runs."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ablate")
    return {
        "train": image_folder(root / "train", 3, size=48),
        "test": image_folder(root / "test", 1, first_seed=20, size=32),
    }


def cli_args(study: str, out: Path, images: dict[str, Path], *extra: str) -> list[str]:
    args = ["ablate", "--study", study, "--out", str(out), "--data", str(images["train"])]
    args += ["--datasets", str(images["test"]), "--iterations", "2", "--allow-random-perceptual"]
    for item in tiny_sets(study):
        args += ["--set", item]
    return [*args, *extra]


def digest(folder: Path) -> dict[str, tuple[str, int]]:
    """{file: (sha256, mtime_ns)} of every file in `folder`."""
    return {
        path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


# ------------------------------------------------------------------------------------------------ the data


def test_paper_tables_are_complete_and_consistent() -> None:
    assert len(STUDIES) == 13
    for study in STUDIES.values():
        steps = {step.name for step in study.steps}
        names = [v.name for v in study.variants]
        assert len(set(names)) == len(names) and not steps & set(names), study.name
        for variant in study.variants:
            assert variant.method in PRESETS, (study.name, variant.name)
            for needed in (variant.init, variant.nse):
                assert needed is None or needed in steps or needed in names[: names.index(variant.name)]
            # every cell of the paper's table is there, and nothing else
            assert set(variant.paper) == set(study.datasets), (study.name, variant.name)
            for dataset, values in variant.paper.items():
                assert tuple(values) == study.metrics, (study.name, variant.name, dataset)
        assert all(metric in METRIC_KEYS for metric in study.metrics)


def test_transcribed_numbers_match_the_papers() -> None:
    spsr_g = {v.label: v.paper for v in STUDIES["spsr-g-components"].variants}
    assert spsr_g["SPSR-G"]["urban100"] == {"LPIPS": 0.1184, "PSNR": 24.799, "SSIM": 0.948}  # paper 000 Table 2
    assert spsr_g["ESRGAN [60]"]["set14"]["PSNR"] == 26.276
    table7 = {v.label: v.paper for v in STUDIES["spsr-backbones"].variants}
    assert table7["SRResNet-P"]["bsd100"] == {"LPIPS": 0.1749, "PSNR": 25.862, "SSIM": 0.678}  # Table 7
    assert table7["EDSR"]["set5"]["PSNR"] == 32.074
    pcl_f = next(v for v in STUDIES["pcl-fixed-embedding"].variants if v.needs_embedding)  # paper 004 Table V
    assert pcl_f.paper["urban100"] == {"PSNR": 26.09, "SSIM": 0.7866}
    gpsr = {v.name: v.paper["set5"]["PSNR"] for v in STUDIES["gpsr-modules"].variants}  # paper 003 Table 3
    assert gpsr["baseline"] == 32.46 and gpsr["lrsam-crfs-ggs"] == 32.74 and gpsr["lrsam-ggs"] == 32.70
    alpha = {v.label: v.paper["set14"]["PSNR"] for v in STUDIES["pcl-alpha"].variants}  # Table VII
    assert alpha == {"alpha = 0.01": 28.88, "alpha = 0.1": 28.89, "alpha = 0.25": 28.84, "alpha = 0.5": 28.77,
                     "alpha = 1": 28.4, "alpha = 5": 28.1}  # fmt: skip


@pytest.mark.parametrize("name", list(STUDIES))
def test_every_variant_resolves_to_what_it_ablates(name: str, images: dict[str, Path], tmp_path: Path) -> None:
    embedding = tmp_path / "e_d.safetensors"
    embedding.write_bytes(b"")  # only its existence is checked while planning
    cfg = AblateConfig(
        study=name,
        out_dir=tmp_path / "study",
        data=(str(images["train"]),),
        datasets=(str(images["test"]),),
        iterations=2,
        devices=("cpu",),
        overrides=as_overrides(tiny_sets(name)),
        embedding=embedding if name == "pcl-fixed-embedding" else None,
        allow_random_perceptual=True,
    )
    plan = plan_study(cfg)
    assert not (tmp_path / "study").exists()  # planning trains nothing
    for job in plan.jobs:
        assert job.out_dir == tmp_path / "study" / job.name
        variant = job.variant
        if variant is None:
            continue
        config = job.config.as_dict()
        for key, value in variant.overrides.items():  # each switch reached the resolved config
            *sections, leaf = key.split(".")
            node = config
            for section in sections:
                node = node[section]
            assert node[leaf] == value, (variant.name, key)
        assert config["optim"]["iterations"] == 2 and config["data"]["train"] == [str(images["train"])]
        if variant.init:
            assert config["model"]["init"] == str(tmp_path / "study" / variant.init / "final.safetensors")


def test_ugsr_without_its_gradient_branch_builds_and_trains_without_it(images: dict[str, Path], tmp_path: Path) -> None:
    """The switch `srtk ablate` added for paper 002 Table 2's "w/o GB": a smaller generator, no branch output."""
    full = build_model("ugsr", **TINY_RRDB)
    without = build_model("ugsr", **TINY_RRDB, use_gradient_branch=False)
    assert without.gradient_branch is None and without.outputs == frozenset({"sr"})
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in full.parameters())
    out = without(torch.rand(1, 3, 8, 8))
    assert out.sr.shape == (1, 3, 32, 32) and out.grad_branch is None and torch.isfinite(out.sr).all()
    cfg = AblateConfig(
        study="ugsr-components",
        out_dir=tmp_path / "study",
        data=(str(images["train"]),),
        datasets=(str(images["test"]),),
        devices=("cpu",),
        overrides={**as_overrides(tiny_sets("ugsr")), "model.generator_options": TINY_RRDB,
                   "model.discriminator_options": {"num_features": 4, "num_levels": 2}},
        allow_random_perceptual=True,
    )  # fmt: skip
    job = plan_study(cfg).job("wo-gb")
    method = build_method(job.config)  # the gradient losses on the SR image stay; the branch loss is gone
    assert method.generator.gradient_branch is None
    # a weighted branch loss on a generator without a branch is refused, never silently dropped
    with pytest.raises(ConfigError, match="branch_pixel"):
        build_method(replace(job.config, losses=replace(job.config.losses, branch_pixel=0.5)))


# ------------------------------------------------------------------------------------------------ errors


def test_errors_come_before_any_training(
    images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    out = tmp_path / "study"
    cases = {
        "unknown study 'nope'": cli_args("nope", out, images),
        "needs --embedding": cli_args("pcl-fixed-embedding", out, images),
        "has no psnr-init step": cli_args("gpsr-gg-loss", out, images, "--init", str(images["test"] / "000.png")),
        "step psnr-init: unknown option 'losses.nope'": cli_args("spsr-g-components", out, images, "--set",
                                                                 "losses.nope=1"),
        "checkpoint not found": cli_args("spsr-g-components", out, images, "--init", str(tmp_path / "none.pt")),
    }  # fmt: skip
    for expected, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and isinstance(result.exception, ConfigError), (expected, result.output)
        assert expected in str(result.exception), (expected, str(result.exception))
        assert not out.exists()
    listing = runner.invoke(app, ["ablate", "--list"])
    assert listing.exit_code == 0 and all(name in listing.output for name in STUDIES)
    assert "or --init CHECKPOINT" in listing.output
    # no ImageNet weights in the hub cache: the first variant with a VGG loss is named before the PSNR step trains
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    no_random = [a for a in cli_args("spsr-g-components", out, images) if a != "--allow-random-perceptual"]
    result = runner.invoke(app, [*no_random, "--metrics", "psnr"])
    assert "VGG19 (the perceptual loss of esrgan) weights not found" in str(result.exception)
    assert not out.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = runner.invoke(app, cli_args("gpsr-gg-loss", a_file, images))
    assert "is a file" in str(result.exception)


# ------------------------------------------------------------------------------------------------ end to end

KILL_POLL_SECONDS = 0.2


@pytest.mark.slow
def test_killed_study_restarts_without_redoing_finished_work(images: dict[str, Path], tmp_path: Path) -> None:
    """paper 000 Table 2 at toy size: SIGKILL once the first variant is evaluated, restart, finish the table."""
    out = tmp_path / "spsr-g"
    args = cli_args("spsr-g-components", out, images, "--device", "cpu")
    child = subprocess.Popen([sys.executable, "-m", "srtk", *args], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (out / "esrgan" / EVALUATION_FILE).exists():
            assert child.poll() is None, "srtk ablate exited before its first variant was evaluated"
            assert time.monotonic() < deadline, "srtk ablate too slow"
            time.sleep(KILL_POLL_SECONDS)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    finished = {name: digest(out / name) for name in ("psnr-init", "esrgan")}

    # the same study with other settings is refused: its runs would not belong to one table
    runner = CliRunner()
    other = runner.invoke(app, [*args, "--iterations", "3"])
    assert isinstance(other.exception, ConfigError) and "study.json" in str(other.exception)

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {name: digest(out / name) for name in finished} == finished  # finished work untouched
    ran = next(line for line in result.output.splitlines() if line.startswith("ran "))
    assert "esrgan" not in ran and "psnr-init" not in ran and "spsr-g" in ran

    table = json.loads((out / "table.json").read_text())
    assert [v["name"] for v in table["variants"]] == ["esrgan", "wo-gb", "wo-gl", "wo-agl", "wo-pgl", "spsr-g"]
    for variant in table["variants"]:
        run = variant["run"][str(images["test"])]
        assert set(run) == {"lpips", "psnr_y", "ssim_y"} and all(v == v for v in run.values())  # finite
        assert variant["iterations"] == 2
    assert table["variants"][-1]["paper"]["urban100"]["PSNR"] == 24.799
    wo_gb = json.loads((out / "wo-gb" / "config.json").read_text())["config"]
    assert wo_gb["model"]["generator"] == "backbone" and wo_gb["model"]["init"].endswith("psnr-init/final.safetensors")
    markdown = (out / "table.md").read_text()
    assert "paper 000 (SPSR journal) Table 2" in markdown and "random" in markdown
    assert "| SPSR-G w/o AGL | 0.1364 |" in markdown and "urban100 PSNR this run" in markdown
    header = (out / "table.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["variant", "set14 LPIPS paper", "set14 LPIPS this run"]


@pytest.mark.slow
def test_interrupted_variant_resumes_and_workers_share_devices(images: dict[str, Path], tmp_path: Path) -> None:
    """paper 003 Table 2 at toy size: SIGINT in the second variant's training stops the study with a checkpoint;
    the next call resumes it from iteration 2; a second folder runs the same study on two worker processes (cpu,cpu)."""
    overrides = {**as_overrides(tiny_sets("gpsr-gg-loss")), "checkpoint.every": 1}
    cfg = AblateConfig(
        study="gpsr-gg-loss",
        out_dir=tmp_path / "serial",
        data=(str(images["train"]),),
        datasets=(str(images["test"]),),
        iterations=3,
        metrics=("psnr",),
        devices=("cpu",),
        overrides=overrides,
    )

    def interrupt_second(description: str, done: int, total: int, detail: str = "") -> None:
        if description == "train" and done == 1 and (cfg.out_dir / "wo-grad").exists():
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the engine checkpoints and stops

    with pytest.raises(Exception, match="run the same srtk ablate command again"):
        run_study(cfg, progress=interrupt_second)
    first = digest(cfg.out_dir / "wo-sg")
    assert (cfg.out_dir / "wo-grad" / "last.state.pt").is_file()
    assert not (cfg.out_dir / "wo-grad" / EVALUATION_FILE).exists()
    result = run_study(cfg)
    assert result.ran == ("wo-grad", "gpsr")
    assert digest(cfg.out_dir / "wo-sg") == first
    events = [json.loads(line) for line in (cfg.out_dir / "wo-grad" / "log.jsonl").read_text().splitlines()]
    assert {"event": "resumed", "iteration": 2} in [{k: e.get(k) for k in ("event", "iteration")} for e in events]
    assert json.loads((cfg.out_dir / "wo-grad" / "result.json").read_text())["iterations"] == 3

    parallel = replace(cfg, out_dir=tmp_path / "parallel", devices=("cpu", "cpu"))
    result = run_study(parallel)
    assert sorted(result.ran) == ["gpsr", "wo-grad", "wo-sg"]
    assert sorted(p.name for p in (parallel.out_dir / "logs").iterdir()) == ["gpsr.log", "wo-grad.log", "wo-sg.log"]
    rows = {v["name"]: v["run"][str(images["test"])]["psnr_y"] for v in result.table["variants"]}
    assert set(rows) == {"wo-sg", "wo-grad", "gpsr"} and all(value > 0 for value in rows.values())
    # the workers train exactly what the serial run trained (same seeds, same configs)
    serial = {v["name"]: v["run"][str(images["test"])]["psnr_y"] for v in run_study(cfg).table["variants"]}
    assert rows["wo-sg"] == pytest.approx(serial["wo-sg"], abs=1e-6)
