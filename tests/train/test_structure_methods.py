"""The structure and contrastive methods end to end: `srtk pretrain-nse` trains an NSE, spsr-p/j/r/vgg/resnet
train with its structure loss, pcl trains on any backbone; each trains on real photographs with finite, falling
losses and resumes after SIGKILL to identical weights."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from srtk.config.resolve import resolve
from srtk.errors import ConfigError, SrtkError
from srtk.models.checkpoint import read_card
from srtk.presets import resolve_pretext_config, resolve_train_config
from srtk.train.engine import run_training
from srtk.train.methods import build_method
from tests.conftest import shared_path
from tests.train import REPO, image_folder, tiny_overrides, train_until_killed

TINY_EDSR = {"num_features": 8, "num_blocks": 2}
TINY_RCAN = {"num_features": 8, "num_groups": 1, "blocks_per_group": 1, "reduction": 4}
TINY_EMBEDDING = {"num_features": 4, "hidden_features": 8}


def pretext_overrides(task: str, data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    """A CPU-sized pretext run: 80 px patches, 4 patches a batch."""
    return {
        "data.train": [str(data)],
        "data.lr_patch_size": 20,  # x4: 80 px HR patches (20x20 features: h needs 17 columns)
        "data.batch_size": 4,
        "data.num_workers": 0,
        "data.repeat": 4,
        "optim.iterations": 4,
        "checkpoint.out_dir": str(out),
        "checkpoint.every": 2,
        "checkpoint.log_every": 1,
        "checkpoint.tensorboard": False,
        "runtime.device": "cpu",
        "pretext.targets_per_image": 8,
        "pretext.extractor_options": {"num_features": 8, "out_features": 8},
        "pretext.head_options": {"hidden_features": 16},
        **extra,
    }


def structure_overrides(method: str, data: Path, out: Path, nse: Path | None = None, **extra: Any) -> dict[str, Any]:
    overrides = tiny_overrides(method, data, out, **extra)
    # ImageNet extractors have stride 16: a 32 px patch gives 2x2 features, one stride-2 stage of D_SF.
    stages = 1 if method in ("spsr-vgg", "spsr-resnet") else 3
    overrides["structure.discriminator_options"] = {"num_features": 4, "num_stages": stages}
    if nse is not None:
        overrides["structure.nse"] = str(nse)
    return overrides


def pcl_overrides(data: Path, out: Path, backbone_options: dict = TINY_EDSR, **extra: Any) -> dict[str, Any]:
    overrides = tiny_overrides("pcl", data, out, **extra)
    overrides["model.backbone_options"] = backbone_options
    overrides["contrastive.embedding_options"] = TINY_EMBEDDING
    return overrides


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("structure") / "hr", 3, size=96)


@pytest.fixture(scope="module")
def nse(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny NSE per pretext task, trained by `srtk pretrain-nse`'s engine."""
    made = {}
    for task in ("contrastive", "jigsaw"):
        out = tmp_path_factory.mktemp(f"nse-{task}")
        result = run_training(resolve_pretext_config(task, overrides=pretext_overrides(task, data, out)))
        assert result.status == "completed" and result.model is not None
        made[task] = result.model
    return made


def _windows(out: Path) -> list[dict[str, float]]:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["losses"] for r in records if r.get("event") == "train"]


# ------------------------------------------------------------------------------------------ the presets


def test_presets_carry_the_papers_numbers() -> None:
    spsr_p = resolve_train_config("spsr-p")
    losses = spsr_p.losses
    assert (losses.structure_pixel, losses.structure_adversarial) == (1e-7, 0.1)  # paper 000 sec. 5.1
    assert (losses.pixel, losses.perceptual, losses.branch_pixel) == (0.01, 1.0, 0.5)
    assert losses.adversarial == losses.grad_pixel == losses.grad_adversarial == 0  # removed (sec. 4.3)
    assert spsr_p.structure.nse_task == "contrastive" and resolve_train_config("spsr-j").structure.nse_task == "jigsaw"
    assert resolve_train_config("spsr-r").structure.random_nse
    assert resolve_train_config("spsr-vgg").structure.extractor == "vgg19"
    assert resolve_train_config("spsr-resnet").structure.extractor == "resnet18"
    pcl = resolve_train_config("pcl", flags={"model.backbone": "rcan"})
    assert pcl.model.backbone == "rcan" and (pcl.losses.pixel, pcl.losses.contrastive) == (1.0, 0.1)
    assert (pcl.data.lr_patch_size, pcl.data.batch_size) == (48, 16)  # paper 004 sec. III-E
    assert (pcl.contrastive.num_positives, pcl.contrastive.num_negatives, pcl.contrastive.num_layers) == (4, 4, 4)
    contrastive, jigsaw = resolve_pretext_config("contrastive"), resolve_pretext_config("jigsaw")
    assert contrastive.data.lr_patch_size * contrastive.data.scale == 420 and contrastive.data.batch_size == 48
    assert (contrastive.optim.learning_rate, contrastive.optim.step_epochs, contrastive.optim.gamma) == (1e-3, 20, 0.2)
    assert (jigsaw.optim.learning_rate, jigsaw.optim.step_epochs) == (1e-4, 30)
    assert contrastive.pretext.temperature == 64


def test_epoch_steps_become_milestones() -> None:
    from srtk.train.optim import learning_rate_at, with_epoch_steps

    optim = with_epoch_steps(resolve_pretext_config("contrastive").optim, batches_per_epoch=16)  # DIV2K / 48
    assert optim.milestones[:3] == (320, 640, 960)
    assert learning_rate_at(1e-3, optim, 319) == 1e-3
    assert learning_rate_at(1e-3, optim, 320) == pytest.approx(2e-4)


# --------------------------------------------------------------------------------------- loss wiring


def test_structure_weights_reach_the_total(data: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    overrides = structure_overrides("spsr-p", data, tmp_path, nse["contrastive"])
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    totals = {}
    for beta in (0.5, 1.0):  # large enough to stand out of float32 rounding of the total
        torch.manual_seed(0)
        method = build_method(resolve_train_config("spsr-p", overrides={**overrides, "losses.structure_pixel": beta}))
        torch.manual_seed(1)
        terms = {k: v.detach() for k, v in method.generator_losses(lr, hr).losses.items()}
        weights = {name: getattr(method.weights, name) for name in terms if name != "total"}
        assert set(weights) == {"pixel", "perceptual", "branch_pixel", "structure_pixel", "structure_adversarial"}
        assert float(terms["total"]) == pytest.approx(sum(w * float(terms[n]) for n, w in weights.items()), rel=1e-6)
        totals[beta] = (float(terms["total"]), float(terms["structure_pixel"]))
    (total1, pixel1), (total2, pixel2) = totals[0.5], totals[1.0]
    assert pixel1 == pytest.approx(pixel2) and pixel1 > 0
    assert total2 - total1 == pytest.approx(0.5 * pixel1, rel=1e-4)  # beta_SF scales exactly its own term


def test_structure_critic_is_sized_by_the_extractor(data: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    method = build_method(
        resolve_train_config("spsr-p", overrides=structure_overrides("spsr-p", data, tmp_path, nse["contrastive"]))
    )
    critic = method.discriminators["structure"]
    features = method.structure_features(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, 8, 8, 8)  # the tiny NSE: 8 channels at 1/4 of the 32 px HR patch
    assert critic(features).shape == (2, 1)
    assert not any(p.requires_grad for p in method.frozen.parameters())
    method.train()
    assert not method.frozen["structure_extractor"].training


def test_spsr_p_needs_an_nse_and_says_how_to_make_one(data: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretrain-nse"):
        build_method(resolve_train_config("spsr-p", overrides=structure_overrides("spsr-p", data, tmp_path)))
    wrong = structure_overrides("spsr-p", data, tmp_path, nse["jigsaw"])
    with pytest.raises(SrtkError, match="pre-trained by jigsaw"):
        build_method(resolve_train_config("spsr-p", overrides=wrong))


def test_vgg_terms_need_imagenet_weights_unless_switched_off(
    data: Path, nse: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    overrides = structure_overrides("spsr-p", data, tmp_path, nse["contrastive"])
    overrides["losses.allow_random_perceptual"] = False
    with pytest.raises(SrtkError, match="hub"):
        build_method(resolve_train_config("spsr-p", overrides=overrides))
    method = build_method(resolve_train_config("spsr-p", overrides={**overrides, "losses.perceptual": 0}))
    assert "perceptual" not in method.active_terms() and method.active_terms()["structure_pixel"] == 1e-7


# ------------------------------------------------------------------------------- training end to end


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = shared_path("datasets", "train", "BSD68")
    folder = tmp_path_factory.mktemp("bsd68")
    for path in sorted(source.glob("*.png"))[:3]:
        (folder / path.name).symlink_to(path)
    return folder


ITERATIONS = 16


@pytest.mark.slow
@pytest.mark.parametrize("task", ["contrastive", "jigsaw"])
def test_pretext_trains_on_real_photographs(task: str, photos: Path, tmp_path: Path) -> None:
    extra = {
        "optim.iterations": ITERATIONS,
        "optim.learning_rate": 1e-3,
        "checkpoint.every": ITERATIONS,
        "checkpoint.log_every": ITERATIONS // 2,
        "data.repeat": 16,
    }
    result = run_training(resolve_pretext_config(task, overrides=pretext_overrides(task, photos, tmp_path, **extra)))
    assert result.status == "completed" and not result.skipped_steps
    first, second = _windows(tmp_path)
    assert all(v == v and abs(v) < 1e6 for v in (*first.values(), *second.values()))
    assert second["g_total"] < first["g_total"], (first, second)
    card = read_card(result.model)
    assert card.architecture == "nse-pretext" and card.config["task"] == task and card.scale == 1


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spsr-p", "spsr-j", "spsr-r", "spsr-vgg", "spsr-resnet", "pcl"])
def test_method_trains_on_real_photographs(method: str, photos: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    extra = {
        "optim.iterations": ITERATIONS,
        "checkpoint.every": ITERATIONS,
        "checkpoint.log_every": ITERATIONS // 2,
        "data.repeat": 8,
    }
    if method == "pcl":
        overrides = pcl_overrides(photos, tmp_path, **extra)
    else:
        task = {"spsr-p": "contrastive", "spsr-j": "jigsaw"}.get(method)
        overrides = structure_overrides(method, photos, tmp_path, nse[task] if task else None, **extra)
    result = run_training(resolve_train_config(method, overrides=overrides))
    assert result.status == "completed" and not result.skipped_steps
    first, second = _windows(tmp_path)
    for window in (first, second):
        assert all(v == v and abs(v) < 1e6 for v in window.values()), window
    # The image-space L1 both objectives carry fits better in the second half of the run.
    assert second["g_pixel"] < first["g_pixel"], (first, second)
    expected = {"pcl": {"d_embedding", "g_contrastive"}}.get(method, {"d_structure", "g_structure_pixel"})
    assert expected <= set(first)
    card = read_card(result.model)
    assert card.method == method and card.losses == build_method(result_config(result)).active_terms()


def result_config(result: Any) -> Any:
    from srtk.config.train import TrainConfig

    config = dict(result.config)
    config.pop("method")
    return resolve(TrainConfig(), file=config)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pcl", "spsr-p", "nse-contrastive"])
def test_resume_after_sigkill_is_bit_identical(method: str, data: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    extra = {"optim.iterations": 6, "runtime.deterministic": True, "checkpoint.validate_every": 1000}
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    def overrides(out: Path) -> dict[str, Any]:
        if method == "pcl":
            return pcl_overrides(data, out, **extra)
        if method == "spsr-p":
            return structure_overrides("spsr-p", data, out, nse["contrastive"], **extra)
        return pretext_overrides("contrastive", data, out, **extra)

    pretext = method.startswith("nse")
    resolver, name = ("resolve_pretext_config", "contrastive") if pretext else ("resolve_train_config", method)
    resolve_config = resolve_pretext_config if pretext else resolve_train_config
    train_until_killed(name, overrides(killed), tmp_path / "reached", resolver=resolver)
    assert not (killed / "final.safetensors").exists()
    resumed = run_training(resolve_config(name, overrides={**overrides(killed), "checkpoint.resume": True}))
    uninterrupted = run_training(resolve_config(name, overrides=overrides(reference)))
    assert resumed.iterations == uninterrupted.iterations == 6
    got, want = load_file(killed / "final.safetensors"), load_file(reference / "final.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    critic = {"pcl": "embedding", "spsr-p": "structure"}.get(method)
    if critic:
        got_state = torch.load(killed / "last.state.pt", weights_only=False)["networks"][critic]
        want_state = torch.load(reference / "last.state.pt", weights_only=False)["networks"][critic]
        for key, value in want_state.items():
            assert torch.equal(got_state[key], value), (critic, key)


# --------------------------------------------------------------------------------------------- the CLI


def _srtk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srtk", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def _set(overrides: dict[str, Any]) -> list[str]:
    return [item for key, value in overrides.items() for item in ("--set", f"{key}={json.dumps(value)}")]


@pytest.mark.slow
def test_cli_pcl_rcan_and_spsr_p_run_as_typed(data: Path, nse: dict[str, Path], tmp_path: Path) -> None:
    tiny = pcl_overrides(data, tmp_path / "pcl", TINY_RCAN, **{"optim.iterations": 2})
    done = _srtk("train", "--method", "pcl", "--backbone", "rcan", *_set(tiny))
    assert done.returncode == 0, done.stderr
    assert read_card(tmp_path / "pcl" / "final.safetensors").architecture == "rcan"
    tiny = structure_overrides("spsr-p", data, tmp_path / "p", **{"optim.iterations": 2})
    done = _srtk("train", "--method", "spsr-p", "--nse", str(nse["contrastive"]), *_set(tiny))
    assert done.returncode == 0, done.stderr
    missing = _srtk("train", "--method", "spsr-p", *_set({**tiny, "checkpoint.out_dir": str(tmp_path / "p-none")}))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error:") and "pretrain-nse" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_pretrain_nse_trains_and_evaluates(data: Path, tmp_path: Path) -> None:
    tiny = pretext_overrides("contrastive", data, tmp_path / "unused")
    tiny.pop("checkpoint.out_dir")
    tiny.pop("data.train")
    done = _srtk(
        "pretrain-nse", "--task", "contrastive", "--data", str(data), "--out", str(tmp_path / "nse"), *_set(tiny)
    )
    assert done.returncode == 0, done.stderr
    model = tmp_path / "nse" / "final.safetensors"
    test = image_folder(tmp_path / "test", 2, first_seed=50, size=200)
    done = _srtk(
        "pretrain-nse",
        "--evaluate",
        str(model),
        "--data",
        str(data),
        "--test",
        str(test),
        "--out",
        str(tmp_path / "eval"),
        "--repeats",
        "2",
        *_set({k: v for k, v in tiny.items() if not k.startswith("pretext.")}),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    for task, patches in (("contrastive", 2), ("jigsaw", 2 * 2 * 2)):  # 200 px images: one 200 px, four 84 px cuts
        assert 0 <= report[task]["top1"] <= 1 and report[task]["patches"] == patches
    assert report["jigsaw"]["chance"] == pytest.approx(1 / 24)
    assert report["contrastive"]["chance"] < 1 / 500  # a 200 px patch: about 2,000 negatives (50 x 50 features)
    bad = _srtk("pretrain-nse", "--task", "colour", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "contrastive" in bad.stderr
    bad = _srtk("pretrain-nse", "--patch-size", "30", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "multiple of 4" in bad.stderr
