"""Every method trains a few steps with finite losses on a tiny config, updating every network it builds; the
component switches really change what is built; initialisation from a PSNR checkpoint; missing VGG weights."""

from pathlib import Path

import pytest
import torch

from srtk.errors import ConfigError, SrtkError
from srtk.losses.perceptual import LPIPSLoss, VGGPerceptualLoss
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.discriminators import UNetDiscriminator, VGGDiscriminator
from srtk.models.gpsr import GPSR, LRSAM
from srtk.models.registry import build_model
from srtk.models.rrdbnet import RRDBNet
from srtk.models.spsr import SPSR
from srtk.models.ugsr import UGSR
from srtk.train.config import resolve_config
from srtk.train.engine import Trainer
from srtk.train.methods import SRMethod, build_method, mixture_of_augmentations
from tests.train import TINY_RRDB, image_folder, tiny_overrides

# method -> (generator class, critics built, generator loss terms)
EXPECTED = {
    "psnr": (RRDBNet, {}, {"pixel"}),
    "srgan": (None, {"image": VGGDiscriminator}, {"perceptual", "adversarial"}),
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
    trainer = Trainer(resolve_config(method, overrides=tiny_overrides(method, data, tmp_path)))
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
    trainer.iteration = 2
    metrics = trainer.validate() if trainer.val_pairs else None
    assert metrics is None  # no validation set configured here


def _method(method: str, data: Path, tmp_path: Path, **extra: object) -> SRMethod:
    return build_method(resolve_config(method, overrides=tiny_overrides(method, data, tmp_path, **extra)))


def test_spsr_switches_change_what_is_built(data: Path, tmp_path: Path) -> None:
    plain = _method("spsr-g", data, tmp_path, **{"model.gradient_branch": False})
    assert type(plain.generator) is RRDBNet and plain.architecture == "rrdbnet"  # SPSR without its branch
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
    with pytest.raises(ConfigError, match="--backbone edsr"):
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
    assert full.architecture_config["use_crfs"] and any(isinstance(m, LRSAM) for m in full.generator.modules())
    assert len(full.generator.gradient_modules) == 2 and full.multi_scale is not None  # x4: N = 2
    no_lrsam = _method("gpsr", data, tmp_path, **{"model.lrsam": False})
    assert not any(isinstance(m, LRSAM) for m in no_lrsam.generator.modules())
    no_crfs = _method("gpsr", data, tmp_path, **{"model.crfs": False})
    assert all(block.gate is None for decoder in no_crfs.generator.decoders for block in decoder.blocks)
    no_ggs = _method("gpsr", data, tmp_path, **{"model.gradient_branch": False})
    assert len(no_ggs.generator.gradient_modules) == 0 and no_ggs.multi_scale is None
    assert no_ggs.architecture_config["use_gradient_branch"] is False
    sizes = [sum(p.numel() for p in m.generator.parameters()) for m in (full, no_lrsam, no_crfs, no_ggs)]
    assert len(set(sizes)) == 4 and sizes[0] == max(sizes)


def test_spsr_initialises_its_sr_branch_from_a_psnr_checkpoint(data: Path, tmp_path: Path) -> None:
    psnr = build_model("rrdbnet", scale=4, **TINY_RRDB)
    path = save_model(tmp_path / "psnr.safetensors", psnr, ModelCard("rrdbnet", {"scale": 4, **TINY_RRDB}, 4, "psnr"))
    method = _method("spsr-g", data, tmp_path)
    copied = method.initialize_from(path)
    source = psnr.state_dict()
    spsr_state = method.generator.state_dict()
    shared = [k for k in source if k != "out_conv.weight" and k != "out_conv.bias"]
    assert copied == len(shared)  # everything but the RGB layer, which SPSR turns into a feature layer
    for key in shared:
        assert torch.equal(spsr_state[f"backbone.{key}"], source[key])
    ugsr = _method("ugsr", data, tmp_path)
    assert ugsr.initialize_from(path) > 0
    assert torch.equal(
        ugsr.generator.state_dict()["sr_trunk.blocks.0.dense_blocks.0.convs.0.weight"],
        source["residual_trunk.blocks.0.dense_blocks.0.convs.0.weight"],
    )


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
