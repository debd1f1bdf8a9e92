"""TrainConfig: the papers' preset numbers, preset < file < CLI precedence, unknown keys, the LR schedules."""

import math
from pathlib import Path

import pytest

from srtk.config import load_config_file, parse_override
from srtk.errors import ConfigError
from srtk.presets import preset_config, resolve_train_config
from srtk.train.optim import learning_rate_at


def test_spsr_g_preset_is_paper_000_sec_5_1() -> None:
    cfg = preset_config("spsr-g")
    losses = cfg.losses
    # eq. 10 weights: beta_I 0.01, gamma_I 0.005, beta_GM 0.01, gamma_GM 0.005, beta_GB 0.5, L_Per unweighted
    assert (losses.pixel, losses.adversarial, losses.grad_pixel, losses.grad_adversarial, losses.branch_pixel) == (
        0.01,
        0.005,
        0.01,
        0.005,
        0.5,
    )
    assert (losses.perceptual, losses.perceptual_kind, losses.adversarial_kind) == (1.0, "vgg", "ragan")
    assert (cfg.data.batch_size, cfg.data.lr_patch_size, cfg.data.scale) == (15, 32, 4)
    assert (cfg.optim.learning_rate, cfg.optim.discriminator_learning_rate) == (1e-4, 1e-4)
    assert cfg.optim.milestones == (50_000, 100_000, 200_000, 300_000) and cfg.optim.gamma == 0.5
    assert (cfg.optim.betas, cfg.optim.eps) == ((0.9, 0.999), 1e-8)
    assert (cfg.model.discriminator, cfg.model.gradient_discriminator) == ("vgg-128", "vgg-128")


def test_ugsr_preset_is_paper_002_sec_3_1() -> None:
    cfg = preset_config("ugsr")
    losses = cfg.losses
    assert (losses.adversarial, losses.perceptual, losses.pixel, losses.grad_pixel, losses.branch_pixel) == (
        0.005,
        0.001,
        0.01,
        0.01,
        0.5,
    )
    assert losses.perceptual_kind == "lpips" and losses.feature_matching == 1.0 and losses.consistency == 1.0
    assert cfg.model.discriminator == "unet-sn" and cfg.data.mixture_of_augmentations
    assert (cfg.data.batch_size, cfg.data.lr_patch_size) == (16, 32)
    assert cfg.optim.learning_rate == 1e-4 and cfg.optim.milestones == (50_000, 100_000, 200_000, 300_000)


def test_gpsr_preset_is_paper_003() -> None:
    cfg = preset_config("gpsr")
    # eq. 16-17: L1 + alpha 0.1 multi-scale + beta 0.001 SR-gradient; sec. 4.1: cosine 1e-4 -> 1e-7 over 1e6
    assert (cfg.losses.pixel, cfg.losses.multi_scale_gradient, cfg.losses.grad_pixel) == (1.0, 0.1, 0.001)
    assert cfg.losses.adversarial == 0 and cfg.losses.perceptual == 0
    assert (cfg.optim.schedule, cfg.optim.learning_rate, cfg.optim.min_learning_rate) == ("cosine", 1e-4, 1e-7)
    assert cfg.optim.iterations == 1_000_000
    assert (cfg.data.batch_size, cfg.data.lr_patch_size) == (8, 48)
    assert (cfg.model.generator, cfg.model.backbone, dict(cfg.model.generator_options)) == ("gpsr", None, {})


def test_psnr_preset_is_paper_002_pretraining() -> None:
    cfg = preset_config("psnr")
    assert (cfg.optim.learning_rate, cfg.optim.cosine_period, cfg.optim.min_learning_rate) == (2e-4, 500_000, 1e-7)
    assert cfg.losses.pixel == 1.0 and cfg.losses.adversarial == 0 and cfg.model.backbone == "rrdbnet"


def test_file_overrides_preset_and_cli_overrides_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("optim:\n  learning_rate: 3.0e-4\n  milestones: [10, 20]\ndata:\n  batch_size: 4\n")
    file = load_config_file(yaml_file)
    cfg = resolve_train_config("spsr-g", file=file, overrides={"data.batch_size": 2})
    assert cfg.optim.learning_rate == 3e-4  # file beats preset
    assert cfg.optim.milestones == (10, 20)
    assert cfg.data.batch_size == 2  # CLI beats file
    assert cfg.losses.branch_pixel == 0.5  # untouched: preset

    toml_file = tmp_path / "run.toml"
    toml_file.write_text('method = "gpsr"\n[model.generator_options]\nuse_lrsam = false\nnum_features = 8\n')
    cfg = resolve_train_config("", file=load_config_file(toml_file))
    assert cfg.method == "gpsr"
    assert dict(cfg.model.generator_options) == {"use_lrsam": False, "num_features": 8}
    assert cfg.optim.schedule == "cosine"  # gpsr's preset underneath


def test_cli_values_are_parsed_and_typed() -> None:
    overrides = dict(
        parse_override(text)
        for text in (
            "optim.learning_rate=2e-4",
            "optim.milestones=[5, 7]",
            "model.generator_options.use_crfs=false",
            "data.train=a,b",
            "optim.grad_clip=none",
            "checkpoint.out_dir=/tmp/x",
            "optim.iterations=1e3",
        )
    )
    cfg = resolve_train_config("gpsr", overrides=overrides)
    assert (
        cfg.optim.learning_rate == 2e-4
        and cfg.optim.milestones == (5, 7)
        and cfg.model.generator_options["use_crfs"] is False
    )
    assert cfg.data.train == ("a", "b") and cfg.optim.grad_clip is None and cfg.checkpoint.out_dir == Path("/tmp/x")
    assert cfg.optim.iterations == 1000 and isinstance(cfg.optim.iterations, int)


@pytest.mark.parametrize(
    ("file", "overrides", "message"),
    [
        ({"optim": {"learnin_rate": 1.0}}, {}, "optim.learnin_rate"),
        ({"optimizer": {"learning_rate": 1.0}}, {}, "optimizer"),
        ({}, {"losses.pixl": 1.0}, "losses.pixl"),
        ({}, {"optim.iterations": "many"}, "optim.iterations"),
        ({}, {"model.crfs": "maybe"}, "model.crfs"),
        ({}, {"runtime.precision": "fp8"}, "precision"),
        ({"optim": 3}, {}, "optim is a section"),
    ],
)
def test_unknown_or_bad_options_raise(file: dict, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        resolve_train_config("psnr", file=file, overrides=overrides)


def test_unknown_method_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown method 'spsr'"):
        resolve_train_config("spsr")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\n")
    with pytest.raises(ConfigError, match="bad.toml: cannot parse"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("optim.learning_rate")


def test_resolved_config_round_trips_through_its_json() -> None:
    cfg = resolve_train_config("ugsr", overrides={"model.backbone_options": {"num_blocks": 4}, "data.train": ["x"]})
    again = resolve_train_config("", file=cfg.as_dict())
    assert again == cfg


def test_learning_rate_schedules() -> None:
    spsr = preset_config("spsr-g").optim
    rates = [learning_rate_at(1e-4, spsr, it) for it in (0, 49_999, 50_000, 100_000, 200_000, 300_000, 399_999)]
    assert rates == pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 6.25e-6, 6.25e-6])
    gpsr = preset_config("gpsr").optim
    assert learning_rate_at(1e-4, gpsr, 0) == pytest.approx(1e-4)
    assert learning_rate_at(1e-4, gpsr, 500_000) == pytest.approx((1e-4 + 1e-7) / 2)
    assert learning_rate_at(1e-4, gpsr, 999_999) == pytest.approx(1e-7, abs=1e-12)
    psnr = preset_config("psnr").optim  # restarts every 5e5 (paper 002 sec. 3.1)
    assert learning_rate_at(2e-4, psnr, 500_000) == pytest.approx(2e-4)
    assert learning_rate_at(2e-4, psnr, 250_000) == pytest.approx(
        1e-7 + (2e-4 - 1e-7) * (1 + math.cos(math.pi / 2)) / 2
    )
