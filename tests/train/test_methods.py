"""Every method trains a few steps with finite losses on a tiny config, updating every network it builds; the
component switches really change what is built; initialisation from a PSNR checkpoint; missing VGG weights."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srtk.errors import ConfigError, SrtkError, SrtkWarning
from srtk.losses.perceptual import LPIPSLoss, VGGPerceptualLoss
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.discriminators import SRGANDiscriminator, UNetDiscriminator, VGGDiscriminator
from srtk.models.gpsr import GPSR, LRSAM
from srtk.models.registry import build_model
from srtk.models.rrdbnet import RRDBNet
from srtk.models.spsr import SPSR
from srtk.models.srresnet import SRResNet
from srtk.models.ugsr import UGSR
from srtk.presets import preset_config, resolve_train_config
from srtk.train.engine import Trainer
from srtk.train.methods import SRMethod, build_method, mixture_of_augmentations, scaled_kaiming_init
from tests.train import TINY_RRDB, image_folder, tiny_overrides

# method -> (generator class, critics built, generator loss terms)
EXPECTED = {
    "psnr": (RRDBNet, {}, {"pixel"}),
    "srgan": (SRResNet, {"image": SRGANDiscriminator}, {"perceptual", "adversarial"}),
    "esrgan": (RRDBNet, {"image": VGGDiscriminator}, {"pixel", "perceptual", "adversarial"}),
    "spsr-g": (
        SPSR,
        {"image": VGGDiscriminator, "gradient": VGGDiscriminator},
        {"pixel", "perceptual", "adversarial", "grad_pixel", "grad_adversarial", "branch_pixel"},
    ),
    "ugsr": (
        UGSR,
        {"image": UNetDiscriminator, "gradient": VGGDiscriminator},
        {"pixel", "perceptual", "adversarial", "feature_matching", "grad_pixel", "grad_adversarial", "branch_pixel"},
    ),
    "gpsr": (GPSR, {}, {"pixel", "grad_pixel", "multi_scale_gradient"}),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("methods") / "hr", 2)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(EXPECTED))
def test_method_trains_with_finite_losses(method: str, data: Path, tmp_path: Path) -> None:
    trainer = Trainer(resolve_train_config(method, overrides=tiny_overrides(method, data, tmp_path)))
    generator_class, critics, terms = EXPECTED[method]
    if generator_class is not None:
        assert isinstance(trainer.method.generator, generator_class)
    assert {name: type(critic) for name, critic in trainer.method.discriminators.items()} == critics
    assert set(trainer.optimizers) == {"generator", *critics}
    before = {k: v.detach().clone() for k, v in trainer.method.named_parameters()}
    for _ in range(2):
        batch = trainer.stream.next()
        report = trainer.train_step(batch["lr"], batch["hr"])
        assert report.skipped is None
        assert {k[2:] for k in report.losses if k.startswith("g_")} == terms | {"total"}
        assert all(torch.isfinite(v) for v in report.losses.values()), report.losses
        if critics:
            assert torch.isfinite(report.losses["d_total"]) and {f"d_{name}" for name in critics} <= set(report.losses)
    after = dict(trainer.method.named_parameters())
    for prefix in ("generator", *(f"discriminators.{name}" for name in critics)):
        moved = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert moved, f"{prefix} did not train"
    assert not trainer.validation  # no validation set configured here


def _method(method: str, data: Path, tmp_path: Path, **extra: object) -> SRMethod:
    return build_method(resolve_train_config(method, overrides=tiny_overrides(method, data, tmp_path, **extra)))


def test_spsr_switches_change_what_is_built(data: Path, tmp_path: Path) -> None:
    # SPSR without its branch (Table 2 "w/o GB"): the backbone itself; the branch's loss must go with it.
    plain = _method("spsr-g", data, tmp_path, **{"model.generator": "backbone", "losses.branch_pixel": 0})
    assert type(plain.generator) is RRDBNet and plain.architecture == "rrdbnet"
    assert plain.branch_pixel is None and plain.grad_pixel is not None
    no_gradient_loss = _method("spsr-g", data, tmp_path, **{"losses.grad_pixel": 0, "losses.grad_adversarial": 0})
    assert no_gradient_loss.grad_pixel is None and set(no_gradient_loss.discriminators) == {"image"}
    assert isinstance(no_gradient_loss.generator, SPSR)
    no_adversarial_gradient = _method("spsr-g", data, tmp_path, **{"losses.grad_adversarial": 0})
    assert set(no_adversarial_gradient.discriminators) == {"image"} and no_adversarial_gradient.grad_pixel is not None
    no_pixel_gradient = _method("spsr-g", data, tmp_path, **{"losses.grad_pixel": 0})
    assert no_pixel_gradient.grad_pixel is None and set(no_pixel_gradient.discriminators) == {"image", "gradient"}
    unet = _method(
        "spsr-g",
        data,
        tmp_path,
        **{"model.discriminator": "unet-sn", "model.discriminator_options": {"num_features": 4, "num_levels": 2}},
    )
    assert isinstance(unet.discriminators["image"], UNetDiscriminator) and unet.unet_loss is not None
    assert isinstance(unet.perceptual, VGGPerceptualLoss)
    lpips = _method("spsr-g", data, tmp_path, **{"losses.perceptual_kind": "lpips"})
    assert isinstance(lpips.perceptual, LPIPSLoss)
    with pytest.raises(ConfigError, match="feature_matching needs the U-Net"):
        _method("spsr-g", data, tmp_path, **{"losses.feature_matching": 1.0})
    with pytest.raises(ConfigError, match="--backbone edsr does not apply"):
        _method("ugsr", data, tmp_path, **{"model.backbone": "edsr"})
    # SPSR is model-agnostic (paper 000 Table 7): its gradient branch taps an EDSR backbone.
    edsr_options = {"model.backbone": "edsr", "model.backbone_options": {"num_features": 8, "num_blocks": 4}}
    spsr_edsr = _method("spsr-g", data, tmp_path, **edsr_options)
    assert spsr_edsr.architecture == "spsr-around" and isinstance(spsr_edsr.generator, SPSR)
    assert type(spsr_edsr.generator.backbone).__name__ == "EDSR"
    lr = torch.rand(2, 3, 8, 8)
    step = spsr_edsr.generator_losses(lr, torch.rand(2, 3, 8 * spsr_edsr.scale, 8 * spsr_edsr.scale))
    assert "branch_pixel" in step.losses and torch.isfinite(step.losses["total"])


def test_gpsr_switches_change_what_is_built(data: Path, tmp_path: Path) -> None:
    full = _method("gpsr", data, tmp_path)
    assert any(isinstance(m, LRSAM) for m in full.generator.modules())
    assert all(block.gate is not None for decoder in full.generator.decoders for block in decoder.blocks)
    assert len(full.generator.gradient_modules) == 2 and full.multi_scale is not None  # x4: N = 2
    no_lrsam = _method("gpsr", data, tmp_path, **{"model.generator_options.use_lrsam": False})
    assert not any(isinstance(m, LRSAM) for m in no_lrsam.generator.modules())
    no_crfs = _method("gpsr", data, tmp_path, **{"model.generator_options.use_crfs": False})
    assert all(block.gate is None for decoder in no_crfs.generator.decoders for block in decoder.blocks)
    no_ggs = _method(
        "gpsr",
        data,
        tmp_path,
        **{"model.generator_options.use_gradient_branch": False, "losses.multi_scale_gradient": 0},
    )
    assert len(no_ggs.generator.gradient_modules) == 0 and no_ggs.multi_scale is None
    assert no_ggs.architecture_config["use_gradient_branch"] is False
    sizes = [sum(p.numel() for p in m.generator.parameters()) for m in (full, no_lrsam, no_crfs, no_ggs)]
    assert len(set(sizes)) == 4 and sizes[0] == max(sizes)


def test_spsr_initialises_its_sr_branch_from_a_psnr_checkpoint(data: Path, tmp_path: Path) -> None:
    psnr = build_model("rrdbnet", scale=4, **TINY_RRDB)
    path = save_model(tmp_path / "psnr.safetensors", psnr, ModelCard("rrdbnet", {"scale": 4, **TINY_RRDB}, 4, "psnr"))
    method = _method("spsr-g", data, tmp_path)
    report = method.initialize_from(path)
    source = psnr.state_dict()
    spsr_state = method.generator.state_dict()
    shared = [k for k in source if k != "out_conv.weight" and k != "out_conv.bias"]
    assert len(report.copied) == len(shared)  # everything but the RGB layer, which SPSR turns into a feature layer
    assert report.shape_mismatch == ["backbone.out_conv.weight", "backbone.out_conv.bias"]  # the whole layer
    assert all(key.startswith(("gradient_branch.", "fusion.")) for key in report.not_in_source)
    assert len(report.copied) + len(report.shape_mismatch) + len(report.not_in_source) == len(spsr_state)
    for key in shared:
        assert torch.equal(spsr_state[f"backbone.{key}"], source[key])


def test_ugsr_refuses_an_rrdbnet_init_and_takes_its_own_psnr_pretraining(data: Path, tmp_path: Path) -> None:
    # An RRDBNet PSNR model fits ugsr's trunk but not its packed (desubpixel) input conv, whose bias it does fit:
    # copying it would leave that one layer random under a copied trunk (the bug this test guards against).
    rrdbnet = build_model("rrdbnet", scale=4, **TINY_RRDB)
    card = ModelCard("rrdbnet", {"scale": 4, **TINY_RRDB}, 4, "psnr")
    rrdbnet_path = save_model(tmp_path / "rrdbnet.safetensors", rrdbnet, card)
    ugsr = _method("ugsr", data, tmp_path)
    with pytest.raises(ConfigError, match=r"shallow_conv.weight .* --method psnr --backbone ugsr"):
        ugsr.initialize_from(rrdbnet_path)
    # Paper 002 pre-trains its own generator with L1: `--method psnr --backbone ugsr` gives a model that fits.
    psnr = _method("psnr", data, tmp_path, **{"model.backbone": "ugsr"})
    assert psnr.architecture == "ugsr" and set(psnr.discriminators) == set()
    path = save_model(tmp_path / "ugsr.safetensors", psnr.generator, ModelCard("ugsr", psnr.architecture_config, 4))
    report = ugsr.initialize_from(path)
    own = ugsr.generator.state_dict()
    assert sorted(report.copied) == sorted(own) and not report.shape_mismatch and not report.not_in_source
    for key, value in psnr.generator.state_dict().items():
        assert torch.equal(own[key], value), key


def test_weighted_term_without_its_input_is_an_error(data: Path, tmp_path: Path) -> None:
    # spsr-g keeps branch_pixel 0.5: without the branch that weight must not be dropped in silence.
    with pytest.raises(ConfigError, match=r"losses.branch_pixel=0.5 needs the generator's 'grad_branch' output"):
        _method("spsr-g", data, tmp_path, **{"model.generator": "backbone"})
    with pytest.raises(ConfigError, match=r"losses.multi_scale_gradient=0.1 needs .*'gradient_maps'"):
        _method("gpsr", data, tmp_path, **{"model.generator_options.use_gradient_branch": False})
    with pytest.raises(ConfigError, match="mixture_of_augmentations needs a generator taking HR-grid input"):
        _method("spsr-g", data, tmp_path, **{"data.mixture_of_augmentations": True})
    with pytest.raises(ConfigError, match=r"model.generator_options.use_crfs: expected true or false"):
        _method("gpsr", data, tmp_path, **{"model.generator_options.use_crfs": "maybe"})


def test_gan_presets_refuse_to_start_without_init(data: Path, tmp_path: Path) -> None:
    for method in ("srgan", "esrgan", "spsr-g", "ugsr"):
        cfg = resolve_train_config(
            method, overrides=tiny_overrides(method, data, tmp_path, **{"model.from_scratch": False})
        )
        with pytest.raises(ConfigError, match="--init CHECKPOINT"):
            Trainer(cfg)
    cfg = resolve_train_config("esrgan", overrides=tiny_overrides("esrgan", data, tmp_path))
    with pytest.warns(SrtkWarning, match="from scratch"):
        Trainer(cfg)
    for method in ("psnr", "gpsr"):  # trained from scratch by their papers
        assert not preset_config(method).model.init_required


def test_missing_imagenet_weights_stop_unless_random_is_allowed(data: Path, tmp_path: Path) -> None:
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty-hub"))
    try:
        with pytest.raises(SrtkError, match="VGG19 weights not found"):
            _method("esrgan", data, tmp_path, **{"losses.allow_random_perceptual": False})
        assert isinstance(_method("esrgan", data, tmp_path).perceptual, VGGPerceptualLoss)
    finally:
        torch.hub.set_dir(hub)


def test_mixture_of_augmentations_keeps_shapes_and_range() -> None:
    lr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 32, 32)
    for seed in range(10):
        torch.manual_seed(seed)
        mixed, target = mixture_of_augmentations(lr, hr, 4)
        assert mixed.shape == target.shape == hr.shape
        assert 0 <= float(mixed.min()) and float(mixed.max()) <= 1
    torch.manual_seed(0)
    first = mixture_of_augmentations(lr, hr, 4)
    torch.manual_seed(0)
    again = mixture_of_augmentations(lr, hr, 4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_official_release_switch_is_the_released_codes_recipe(data: Path, tmp_path: Path) -> None:
    paper = resolve_train_config("spsr-g")
    release = resolve_train_config("spsr-g", overrides={"optim.official_release": True})
    assert (paper.optim.iterations, paper.optim.fusion_warmup, paper.model.kaiming_scale) == (400_000, 0, None)
    assert (release.optim.iterations, release.optim.fusion_warmup, release.model.kaiming_scale) == (500_000, 5_000, 0.1)
    assert (release.losses.grad_pixel_criterion, release.losses.gradient_padding) == ("l2", 2)
    assert release.losses == replace(paper.losses, grad_pixel_criterion="l2", gradient_padding=2)  # weights stay
    # An explicit option still wins over the recipe, wherever the switch was set.
    mine = resolve_train_config("spsr-g", flags={"optim.iterations": 7}, overrides={"optim.official_release": True})
    assert mine.optim.iterations == 7 and mine.optim.fusion_warmup == 5_000
    with pytest.raises(ConfigError, match="gpsr.* has no released recipe"):
        resolve_train_config("gpsr", overrides={"optim.official_release": True})

    trainer = Trainer(
        resolve_train_config(
            "spsr-g",
            overrides=tiny_overrides("spsr-g", data, tmp_path, **{"optim.official_release": True}),
        )
    )
    method = trainer.method
    assert method.discriminators["gradient"].input_size == 8 * 4 + 2  # the 2-padded gradient maps of 32 px
    assert method.grad_pixel.compare.criterion == "l2"
    before = {k: v.detach().clone() for k, v in method.generator.named_parameters()}
    batch = trainer.stream.next()
    assert trainer.train_step(batch["lr"], batch["hr"]).skipped is None  # iteration 0 < 5000: the warm-up
    moved = {k for k, v in method.generator.named_parameters() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith("fusion.") for k in moved)
    trainer.state.iteration = 5_000  # past the warm-up the whole generator trains
    batch = trainer.stream.next()
    trainer.train_step(batch["lr"], batch["hr"])
    moved = {k for k, v in method.generator.named_parameters() if not torch.equal(before[k], v)}
    assert any(k.startswith("backbone.") for k in moved) and any(k.startswith("gradient_branch.") for k in moved)


def test_scaled_kaiming_initialisation() -> None:
    network = build_model("rrdbnet", scale=4, **TINY_RRDB)
    scaled_kaiming_init(network, 0.1)
    conv = network.shallow_conv
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.detach().std()) == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.25)
    assert float(conv.bias.detach().abs().max()) == 0.0
