"""The training loop: resume after SIGKILL is bit-identical, non-finite steps are skipped and reported, repeated
failures stop with the last checkpoint intact, SIGTERM checkpoints and stops, outputs are complete."""

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srtk.config import EvalConfig
from srtk.data.datasets import PairedPatchDataset
from srtk.errors import ConfigError
from srtk.evaluate import run_evaluation
from srtk.models.registry import load_model
from srtk.presets import resolve_train_config
from srtk.train import methods
from srtk.train.data_stream import BatchStream, ShardedSampler
from srtk.train.engine import Trainer, TrainingDiverged, run_training
from srtk.train.run_folder import STATE_FILE
from srtk.train.state import load_training_state
from tests.train import image_folder, tiny_overrides, train_until_killed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("train") / "hr", 3)


def _read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(data: Path, tmp_path: Path) -> None:
    # ugsr draws from the RNG in its steps (MoA, CutMix consistency) and has two critics with their own Adam:
    # every part of the state must come back for the weights to match bit for bit.
    extra = {"optim.iterations": 6, "runtime.deterministic": True, "checkpoint.validate_every": 1000}
    killed_out, reference_out = tmp_path / "killed", tmp_path / "reference"
    overrides = tiny_overrides("ugsr", data, killed_out, **extra)
    train_until_killed("ugsr", overrides, tmp_path / "reached")
    assert load_training_state(killed_out / STATE_FILE)["run"]["iteration"] == 2
    assert not (killed_out / "final.safetensors").exists()

    resumed = run_training(resolve_train_config("ugsr", overrides={**overrides, "checkpoint.resume": True}))
    reference = run_training(
        resolve_train_config("ugsr", overrides=tiny_overrides("ugsr", data, reference_out, **extra))
    )
    assert resumed.iterations == reference.iterations == 6
    assert not torch.are_deterministic_algorithms_enabled()  # the engine restores the process-wide switch
    got, want = load_file(killed_out / "final.safetensors"), load_file(reference_out / "final.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    got_state = load_training_state(killed_out / STATE_FILE)
    want_state = load_training_state(reference_out / STATE_FILE)
    for name in ("image", "gradient"):  # critics and their optimizers too
        for key, value in want_state["networks"][name].items():
            assert torch.equal(got_state["networks"][name][key], value), (name, key)
        assert torch.equal(
            got_state["optimizers"][name]["state"][0]["exp_avg_sq"],
            want_state["optimizers"][name]["state"][0]["exp_avg_sq"],
        )
    assert any(event["event"] == "resumed" and event["iteration"] == 2 for event in _read_log(killed_out))


def test_resume_refuses_a_different_configuration(data: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides("psnr", data, tmp_path, **{"optim.iterations": 2})
    run_training(resolve_train_config("psnr", overrides=overrides))
    changed = {**overrides, "checkpoint.resume": True, "optim.learning_rate": 1.0, "optim.iterations": 3}
    with pytest.raises(Exception, match="optim.learning_rate"):
        run_training(resolve_train_config("psnr", overrides=changed))
    with pytest.raises(Exception, match="no run to resume"):
        run_training(
            resolve_train_config(
                "psnr",
                overrides={**overrides, "checkpoint.resume": True, "checkpoint.out_dir": str(tmp_path / "empty")},
            )
        )


def test_non_finite_step_is_skipped_without_touching_any_state(data: Path, tmp_path: Path) -> None:
    trainer = Trainer(resolve_train_config("esrgan", overrides=tiny_overrides("esrgan", data, tmp_path)))
    batch = trainer.stream.next()
    # Parameters, not buffers: the critic's BatchNorm statistics follow every forward (unused in training mode).
    before = {k: v.detach().clone() for k, v in trainer.method.named_parameters()}
    poisoned = batch["lr"].clone()
    poisoned[0, 0, 0, 0] = float("nan")
    report = trainer.train_step(poisoned, batch["hr"])
    assert report.skipped == "non-finite generator loss"
    after = dict(trainer.method.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not optimizer.state for optimizer in trainer.optimizers.values())  # Adam never stepped
    report = trainer.train_step(batch["lr"], batch["hr"])  # the next good batch trains as usual
    assert report.skipped is None and torch.isfinite(report.losses["g_total"])
    changed = dict(trainer.method.named_parameters())
    assert not torch.equal(before["generator.shallow_conv.weight"], changed["generator.shallow_conv.weight"])
    assert not torch.equal(
        before["discriminators.image.classifier.logit.weight"], changed["discriminators.image.classifier.logit.weight"]
    )


def test_critic_warmup_trains_only_the_critics_first(data: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides("esrgan", data, tmp_path, **{"optim.critic_warmup": 2})
    trainer = Trainer(resolve_train_config("esrgan", overrides=overrides))
    batch = trainer.stream.next()
    before = {k: v.detach().clone() for k, v in trainer.method.named_parameters()}
    report = trainer.train_step(batch["lr"], batch["hr"])
    after = dict(trainer.method.named_parameters())
    generator = [k for k in before if k.startswith("generator.")]
    critic = [k for k in before if k.startswith("discriminators.")]
    assert generator and critic
    assert all(torch.equal(before[k], after[k]) for k in generator)  # the generator waits
    assert not all(torch.equal(before[k], after[k]) for k in critic)  # the critic learns
    assert {"g_total", "d_total"} <= report.losses.keys() and not trainer.optimizers["generator"].state
    trainer.state.iteration = 2  # warm-up over: both step
    trainer.train_step(batch["lr"], batch["hr"])
    assert not all(torch.equal(before[k], v) for k, v in trainer.method.named_parameters() if k in generator)
    psnr = tiny_overrides("psnr", data, tmp_path / "psnr", **{"optim.critic_warmup": 1})
    with pytest.raises(ConfigError, match="trains no critic"):
        Trainer(resolve_train_config("psnr", overrides=psnr))
    with pytest.raises(ConfigError, match="critic_warmup must be"):
        resolve_train_config("esrgan", overrides={**overrides, "optim.critic_warmup": 4})


def test_repeated_failures_stop_with_the_last_checkpoint_intact(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = methods.SRMethod.generator_losses
    calls = {"count": 0}

    def failing_after_two(self: methods.SRMethod, lr: torch.Tensor, hr: torch.Tensor) -> methods.GeneratorStep:
        calls["count"] += 1
        step = original(self, lr, hr)
        if calls["count"] > 2:
            step.losses["total"] = step.losses["total"] * float("inf")
        return step

    monkeypatch.setattr(methods.SRMethod, "generator_losses", failing_after_two)
    overrides = tiny_overrides("psnr", data, tmp_path, **{"optim.iterations": 10, "runtime.max_bad_steps": 3})
    with pytest.raises(TrainingDiverged, match="iteration 5 after 3 consecutive skipped steps"):
        run_training(resolve_train_config("psnr", overrides=overrides))
    state = load_training_state(tmp_path / STATE_FILE)
    assert state["run"]["iteration"] == 4  # the periodic checkpoint (every 2) before the failures piled up
    assert [s["iteration"] for s in state["run"]["skipped"]] == [3, 4]
    skipped = [e for e in _read_log(tmp_path) if e["event"] == "skipped"]
    assert [e["iteration"] for e in skipped] == [3, 4, 5]
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "final.safetensors").exists()
    model = load_model(tmp_path / "last.safetensors")  # the last model checkpoint still loads
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_sigterm_checkpoints_and_stops(data: Path, tmp_path: Path) -> None:
    def progress(description: str, done: int, total: int, detail: str = "") -> None:
        if done == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only flags: the step in flight completes

    overrides = tiny_overrides("psnr", data, tmp_path, **{"optim.iterations": 50, "checkpoint.every": 100})
    result = run_training(resolve_train_config("psnr", overrides=overrides), progress=progress)
    assert result.status == "interrupted" and result.iterations == 2
    assert load_training_state(tmp_path / STATE_FILE)["run"]["iteration"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_outputs_log_validation_and_result(data: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides("psnr", data, tmp_path, **{"data.val_dataset": str(data), "data.val_max_images": 2})
    result = run_training(resolve_train_config("psnr", overrides=overrides))
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["status"] == "completed" and saved["iterations"] == 4 and saved["srtk_version"]
    assert saved["config"]["method"] == "psnr" and saved["config"]["data"]["lr_patch_size"] == 8
    assert json.loads((tmp_path / "config.json").read_text())["config"] == saved["config"]
    events = _read_log(tmp_path)
    validations = [e for e in events if e["event"] == "validation"]
    assert [e["iteration"] for e in validations] == [2, 4] and all(e["images"] == 2 for e in validations)
    assert [e["iteration"] for e in events if e["event"] == "train"] == [1, 2, 3, 4]
    best = max(validations, key=lambda e: e["psnr_y"])
    assert result.best == {"metric": "psnr_y", "value": best["psnr_y"], "iteration": best["iteration"]}
    card = json.loads((tmp_path / "best.json").read_text())
    assert card["metrics"]["psnr_y"] == best["psnr_y"] and card["method"] == "psnr"
    assert card["architecture"] == "rrdbnet" and card["config"]["num_features"] == 8
    final = load_model(tmp_path / "final.safetensors")
    assert final(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_validation_equals_srtk_evaluate_on_the_same_checkpoint(data: Path, tmp_path: Path) -> None:
    # One protocol: the numbers training logs for its final weights are the numbers `srtk evaluate` reports for
    # the saved checkpoint on the same images, tiled the same way.
    overrides = tiny_overrides("psnr", data, tmp_path, **{"data.val_dataset": str(data), "data.val_tile": 8})
    result = run_training(resolve_train_config("psnr", overrides=overrides))
    cfg = EvalConfig(
        model=str(tmp_path / "final.safetensors"),
        datasets=(str(data),),
        metrics=("psnr_y", "ssim_y"),
        device="cpu",
        tile=8,
    )
    evaluated = next(iter(run_evaluation(cfg).datasets.values()))
    assert len(evaluated.images) == result.validation["images"] == 3
    mean = evaluated.mean()
    assert mean["psnr_y"] == pytest.approx(result.validation["psnr_y"], abs=1e-9)
    assert mean["ssim_y"] == pytest.approx(result.validation["ssim_y"], abs=1e-9)


def test_bf16_channels_last_and_ema(data: Path, tmp_path: Path) -> None:
    extra = {"runtime.precision": "bf16", "runtime.channels_last": True, "optim.ema_decay": 0.5}
    trainer = Trainer(resolve_train_config("spsr-g", overrides=tiny_overrides("spsr-g", data, tmp_path, **extra)))
    assert trainer.ema is not None
    initial = {k: v.detach().clone() for k, v in trainer.method.generator.named_parameters()}
    batch = trainer.stream.next()
    report = trainer.train_step(batch["lr"], batch["hr"])
    assert report.skipped is None and all(torch.isfinite(v) for v in report.losses.values())
    ema = dict(trainer.ema.named_parameters())
    for name, now in trainer.method.generator.named_parameters():  # EMA after one step: halfway (decay 0.5)
        torch.testing.assert_close(ema[name], (initial[name] + now.detach()) / 2)
    assert trainer.inference_model() is trainer.ema


def test_fp16_needs_cuda(data: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides("psnr", data, tmp_path, **{"runtime.precision": "fp16"})
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        Trainer(resolve_train_config("psnr", overrides=overrides))


def test_batch_stream_resumes_mid_epoch_with_workers(data: Path) -> None:
    dataset = PairedPatchDataset([data], scale=4, lr_patch_size=8, repeat=2, seed=3)

    def stream(num_workers: int) -> BatchStream:
        sampler = ShardedSampler(len(dataset), seed=3, rank=0, world_size=1)
        return BatchStream(dataset, sampler, batch_size=2, num_workers=num_workers, pin_memory=False)

    reference = stream(0)
    batches = [reference.next() for _ in range(7)]  # 3 batches per epoch: crosses two epoch boundaries
    assert (reference.epoch, reference.batch) == (2, 1)
    resumed = stream(2)
    resumed.epoch, resumed.batch = 0, 2  # as restored from a checkpoint taken after two batches
    for expected in batches[2:]:
        got = resumed.next()
        assert torch.equal(got["lr"], expected["lr"]) and torch.equal(got["hr"], expected["hr"])
    assert not torch.equal(batches[0]["hr"], batches[3]["hr"])  # a new epoch: new order and new patches


def test_tensorboard_mirrors_the_log_when_installed(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = image_folder(tmp_path / "hr", 2)
    overrides = tiny_overrides("psnr", data, tmp_path / "run", **{"checkpoint.log_every": 2})
    run_training(resolve_train_config("psnr", overrides=overrides))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    losses = events.Scalars("loss/g_total")
    assert [e.step for e in losses] == [2, 4]
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train_records = [r for r in logged if r.get("event") == "train"]
    assert [round(e.value, 5) for e in losses] == [round(r["losses"]["g_total"], 5) for r in train_records]
    assert [e.step for e in events.Scalars("learning_rate/generator")] == [2, 4]
