"""Training methods: which networks a method builds and which weighted losses its generator and critics minimise.

One class, `SRMethod`, covers the PSNR-oriented training and the GAN methods of the papers; a method is its
config (srtk.train.config presets): every loss term with a non-zero weight is built, with whatever network
it needs (image critic D_I, gradient critic D_GM), and nothing else. The terms:
- pixel: L1 on images (SPSR eq. 3, ugsr eq. 12, GPSR eq. 18);
- perceptual: VGG19 (SPSR eq. 4) or LPIPS (ugsr eq. 6);
- adversarial: image critic, RaGAN/vanilla/hinge with a VGG-style critic (SPSR eq. 5-6), or the U-Net critic
  with its hinge + CutMix-consistency loss (ugsr eq. 2-5); feature matching on the U-Net critic (ugsr eq. 7);
- grad_pixel: ||M(SR) - M(HR)||_1 (SPSR eq. 7, ugsr eq. 8, GPSR eq. 15);
- grad_adversarial: the gradient critic on M(SR) vs M(HR) (SPSR eq. 8-9, ugsr eq. 10-11);
- branch_pixel: the gradient branch's output vs M(HR) (SPSR eq. 10, ugsr eq. 9);
- multi_scale_gradient: GPSR's deep multi-scale gradient supervision (eq. 12-14).
A step takes a batch and returns named losses; a method knows nothing of devices, precision or processes.
Convention: images RGB, NCHW, float in [0, 1].
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import ConfigError
from srtk.losses.adversarial import UNetDiscriminatorLoss, feature_matching_loss
from srtk.losses.gg import GradientGuidedLoss
from srtk.losses.gradient import GradientAdversarialInputs, GradientBranchPixelLoss, GradientPixelLoss
from srtk.losses.perceptual import LPIPSLoss, VGGPerceptualLoss
from srtk.losses.pixel import PixelLoss
from srtk.losses.registry import build_adversarial_loss
from srtk.models.discriminators import UNetDiscriminator
from srtk.models.registry import build_model, load_model_with_card
from srtk.train.config import LossConfig, ModelConfig, TrainConfig

IMAGE_CRITIC = "image"  # D_I
GRADIENT_CRITIC = "gradient"  # D_GM
GRADIENT_BRANCH_GENERATORS = ("spsr", "spsr-around", "ugsr")  # outputs carry `grad_branch`
MULTI_SCALE_GENERATORS = ("gpsr", "gpsr-x8")  # outputs carry `gradient_maps`
HR_GRID_GENERATORS = ("ugsr",)  # accept an HR-sized (MoA-mixed) input: paper 002 sec. 3.1

# MoA (Yoo et al. 2020, "Rethinking Data Augmentation for Image Super-resolution"; paper 002 sec. 3.1): per batch,
# one augmentation drawn uniformly. We implement five of its seven (blend, RGB permutation, mixup, CutMix,
# CutBlur); cutout and CutMixup are left out (cutout needs a masked loss, CutMixup is CutMix + mixup).
MOA_AUGMENTATIONS = ("blend", "rgb", "mixup", "cutmix", "cutblur")
BLEND_MIN_ALPHA = 0.6  # blend keeps at least 60% of the image (MoA's alpha)
MIXUP_CONCENTRATION = 1.2  # mixup weight ~ Beta(1.2, 1.2) (MoA)
CUT_MAX_SIDE = 0.7  # CutMix / CutBlur boxes: side up to 70% of the image (MoA's alpha 0.7)


class GeneratorStep(NamedTuple):
    """One generator step: named losses ("total" is what is minimised) and what the critics' step needs."""

    losses: dict[str, Tensor]
    sr: Tensor  # (N, 3, H, W), still attached to the generator's graph
    hr: Tensor  # (N, 3, H, W), the target actually used (MoA may have changed it)


def generator_spec(method: str, model: ModelConfig, scale: int) -> tuple[str, dict[str, Any]]:
    """(registry name, builder kwargs) of the generator a method trains: what its model card records."""
    options = {"scale": scale, **dict(model.backbone_options)}
    if method == "gpsr" or model.backbone in MULTI_SCALE_GENERATORS:
        name = model.backbone if model.backbone in MULTI_SCALE_GENERATORS else "gpsr"
        # GGS / CRFS / LRSAM of GPSR Table 3 are switches of the network itself.
        switches = {"use_gradient_branch": model.gradient_branch, "use_crfs": model.crfs, "use_lrsam": model.lrsam}
        return name, {**options, **switches}
    if method == "spsr-g" and model.gradient_branch:
        if model.backbone == "rrdbnet":
            return "spsr", options
        # Model-agnostic SPSR (paper 000 sec. 1, Table 7): the gradient branch taps any backbone.
        backbone_options = dict(model.backbone_options)
        return "spsr-around", {"backbone": model.backbone, "backbone_options": backbone_options, "scale": scale}
    if method == "ugsr" and model.gradient_branch:
        if model.backbone != "rrdbnet":
            raise ConfigError(
                f"ugsr fuses its gradient branch with the RRDBNet SR branch after upsampling (paper 002 Fig. 1); "
                f"--backbone {model.backbone} is not supported"
            )
        return "ugsr", options
    # psnr / srgan / esrgan, and the "without gradient branch" ablation: the plain backbone.
    return model.backbone, options


def _critic(name: str, options: Mapping[str, Any], hr_patch_size: int) -> nn.Module:
    options = dict(options)
    if name.startswith("vgg"):
        options.setdefault("input_size", hr_patch_size)  # the VGG critic's FC head fixes its input size
    return build_model(name, **options)


def _outputs(output: Any) -> tuple[Tensor, Tensor | None, tuple[Tensor, ...]]:
    """(sr, gradient-branch map or None, multi-scale gradient maps) of any generator's output."""
    if isinstance(output, Tensor):
        return output, None, ()
    return output.sr, getattr(output, "grad_branch", None), tuple(getattr(output, "gradient_maps", ()))


class SRMethod(nn.Module):
    """A generator, its critics and its weighted losses, as configured (see the module docstring)."""

    def __init__(
        self,
        *,
        method: str,
        model: ModelConfig,
        losses: LossConfig,
        scale: int,
        hr_patch_size: int,
        mixture_of_augmentations: bool = False,
    ) -> None:
        super().__init__()
        self.method = method
        self.weights = losses
        self.scale = scale
        self.architecture, self.architecture_config = generator_spec(method, model, scale)
        self.generator = build_model(self.architecture, **self.architecture_config)
        self.has_branch = self.architecture in GRADIENT_BRANCH_GENERATORS
        self.has_multi_scale = self.architecture in MULTI_SCALE_GENERATORS and model.gradient_branch
        self.moa = mixture_of_augmentations
        if self.moa and self.architecture not in HR_GRID_GENERATORS:
            raise ConfigError(f"MoA needs a generator taking HR-grid input ({', '.join(HR_GRID_GENERATORS)})")

        self.pixel = PixelLoss(criterion=losses.pixel_criterion) if losses.pixel > 0 else None  # type: ignore[arg-type]
        self.perceptual: nn.Module | None = None
        if losses.perceptual > 0:
            allow = losses.allow_random_perceptual
            self.perceptual = (
                LPIPSLoss(allow_random=allow)
                if losses.perceptual_kind == "lpips"
                else VGGPerceptualLoss(allow_random=allow)
            )
        self.grad_pixel = GradientPixelLoss() if losses.grad_pixel > 0 else None
        self.branch_pixel = GradientBranchPixelLoss() if losses.branch_pixel > 0 and self.has_branch else None
        self.multi_scale = (
            GradientGuidedLoss(multi_scale_weight=1.0, sr_gradient_weight=0.0, pixel_weight=0.0)
            if losses.multi_scale_gradient > 0 and self.has_multi_scale
            else None
        )

        # Critics: built only when their generator-side weight is non-zero.
        self.discriminators = nn.ModuleDict()
        self.unet_loss: UNetDiscriminatorLoss | None = None
        if losses.adversarial > 0:
            critic = _critic(model.discriminator, model.discriminator_options, hr_patch_size)
            self.discriminators[IMAGE_CRITIC] = critic
            if isinstance(critic, UNetDiscriminator):
                self.unet_loss = UNetDiscriminatorLoss(consistency_weight=losses.consistency)
        if losses.feature_matching > 0 and self.unet_loss is None:
            raise ConfigError("losses.feature_matching needs the U-Net image critic (model.discriminator=unet-sn)")
        self.gradient_inputs = GradientAdversarialInputs() if losses.grad_adversarial > 0 else None
        if self.gradient_inputs is not None:
            self.discriminators[GRADIENT_CRITIC] = _critic(
                model.gradient_discriminator, model.gradient_discriminator_options, hr_patch_size
            )
        self.adversarial = build_adversarial_loss(losses.adversarial_kind) if self.discriminators else None

    # ------------------------------------------------------------------------------------------ steps

    def super_resolve(self, lr: Tensor) -> Tensor:
        """The generator's SR image for an LR batch (validation, inference)."""
        return _outputs(self.generator(lr))[0]

    def generator_losses(self, lr: Tensor, hr: Tensor) -> GeneratorStep:
        """Weighted generator objective for one batch; critics are frozen by the caller."""
        w = self.weights
        if self.moa:
            mixed, hr = mixture_of_augmentations(lr, hr, self.scale)
            output = self.generator(mixed, hr_grid=True)
        else:
            output = self.generator(lr)
        sr, branch, maps = _outputs(output)
        terms: dict[str, Tensor] = {}
        weighted: list[Tensor] = []

        def add(name: str, value: Tensor, weight: float) -> None:
            terms[name] = value
            weighted.append(weight * value)

        if self.pixel is not None:
            add("pixel", self.pixel(sr, hr), w.pixel)
        if self.perceptual is not None:
            add("perceptual", self.perceptual(sr, hr), w.perceptual)
        if self.grad_pixel is not None:
            add("grad_pixel", self.grad_pixel(sr, hr), w.grad_pixel)
        if self.branch_pixel is not None and branch is not None:
            add("branch_pixel", self.branch_pixel(branch, hr), w.branch_pixel)
        if self.multi_scale is not None and maps:
            add("multi_scale_gradient", self.multi_scale(sr, hr, maps).multi_scale, w.multi_scale_gradient)
        if IMAGE_CRITIC in self.discriminators:
            critic = self.discriminators[IMAGE_CRITIC]
            if self.unet_loss is not None:
                fake_out = critic(sr)
                add("adversarial", self.unet_loss.generator_loss(fake_out), w.adversarial)
                if w.feature_matching > 0:
                    with torch.no_grad():
                        real_features = critic(hr).features
                    add("feature_matching", feature_matching_loss(fake_out.features, real_features), w.feature_matching)
            else:
                assert self.adversarial is not None
                real_logits = critic(hr).detach()  # RaGAN compares with D(HR); it trains nothing here
                add("adversarial", self.adversarial.generator_loss(critic(sr), real_logits), w.adversarial)
        if self.gradient_inputs is not None:
            assert self.adversarial is not None
            critic = self.discriminators[GRADIENT_CRITIC]
            pair = self.gradient_inputs(sr, hr)
            real_logits = critic(pair.hr).detach()
            add("grad_adversarial", self.adversarial.generator_loss(critic(pair.sr), real_logits), w.grad_adversarial)
        if not weighted:
            raise ConfigError(f"method {self.method!r} has no loss with a non-zero weight")
        terms["total"] = torch.stack([t.float() for t in weighted]).sum()
        return GeneratorStep(terms, sr, hr)

    def discriminator_losses(self, step: GeneratorStep) -> dict[str, Tensor]:
        """The critics' objective ("total": the sum over critics; they share no parameters)."""
        fake = step.sr.detach()  # a critic step never trains the generator
        hr = step.hr
        terms: dict[str, Tensor] = {}
        if IMAGE_CRITIC in self.discriminators:
            critic = self.discriminators[IMAGE_CRITIC]
            if self.unet_loss is not None:
                unet = self.unet_loss.discriminator_loss(critic, hr, fake)
                terms["image_encoder"], terms["image_decoder"] = unet.encoder, unet.decoder
                terms["image_consistency"] = unet.consistency
                terms["image"] = unet.total
            else:
                assert self.adversarial is not None
                terms["image"] = self.adversarial.discriminator_loss(critic(hr), critic(fake))
        if self.gradient_inputs is not None:
            assert self.adversarial is not None
            critic = self.discriminators[GRADIENT_CRITIC]
            pair = self.gradient_inputs(fake, hr)
            terms["gradient"] = self.adversarial.discriminator_loss(critic(pair.hr), critic(pair.sr))
        totals = [terms[name].float() for name in self.discriminators]
        terms["total"] = torch.stack(totals).sum()
        return terms

    # ----------------------------------------------------------------------------------- initialisation

    def initialize_from(self, path: Path) -> int:
        """Copy the weights of a checkpoint into the generator wherever names and shapes agree (paper 000
        sec. 5.1: "a pretrained PSNR-oriented RRDB model to initialize the parameters of the shared
        architectures"); returns how many tensors were copied."""
        network, _ = load_model_with_card(path)
        source = getattr(network, "network", network).state_dict()
        own = self.generator.state_dict()
        copied: dict[str, Tensor] = {}
        for key, value in own.items():
            for candidate in _shared_names(key):
                if candidate in source and source[candidate].shape == value.shape:
                    copied[key] = source[candidate]
                    break
        if not copied:
            raise ConfigError(f"{path}: no tensor of this checkpoint fits the {self.architecture} generator")
        self.generator.load_state_dict(copied, strict=False)
        return len(copied)


# SPSR's SR branch is `backbone.*` (an RRDBNet); ugsr's trunk/upsampler are RRDBNet's under other names.
_SHARED_PREFIXES = (("backbone.", ""), ("sr_trunk.", "residual_trunk."), ("sr_upsampler.", "upsampler."))


def _shared_names(key: str) -> list[str]:
    names = [key]
    for ours, theirs in _SHARED_PREFIXES:
        if key.startswith(ours):
            names.append(theirs + key[len(ours) :])
    return names


def build_method(cfg: TrainConfig) -> SRMethod:
    """The method object of a resolved TrainConfig."""
    return SRMethod(
        method=cfg.method,
        model=cfg.model,
        losses=cfg.losses,
        scale=cfg.data.scale,
        hr_patch_size=cfg.data.lr_patch_size * cfg.data.scale,
        mixture_of_augmentations=cfg.data.mixture_of_augmentations,
    )


# ------------------------------------------------------------------------------------------------- MoA


def _random_box(height: int, width: int, device: torch.device) -> Tensor:
    """(1, 1, H, W) mask of one random box, side fraction uniform in (0, CUT_MAX_SIDE]."""
    side = float(torch.rand(())) * CUT_MAX_SIDE
    box_h, box_w = max(1, round(side * height)), max(1, round(side * width))
    top = int(torch.randint(0, height - box_h + 1, ()))
    left = int(torch.randint(0, width - box_w + 1, ()))
    mask = torch.zeros(1, 1, height, width, device=device)
    mask[..., top : top + box_h, left : left + box_w] = 1
    return mask


def mixture_of_augmentations(lr: Tensor, hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(HR-grid input, target) after one MoA augmentation (paper 002 sec. 3.1).

    The LR image is first nearest-upsampled to the HR grid (the generator's desubpixel head undoes it), so
    that CutBlur can paste HR pixels into it. Uses the global torch RNG (checkpointed by the engine).
    """
    lr_up = F.interpolate(lr, scale_factor=scale, mode="nearest")  # (N, 3, H, W)
    choice = MOA_AUGMENTATIONS[int(torch.randint(0, len(MOA_AUGMENTATIONS), ()))]
    batch, _, height, width = hr.shape
    if choice == "blend":  # both images blended with one random constant colour
        colour = torch.rand(batch, 3, 1, 1, device=hr.device, dtype=hr.dtype)
        alpha = BLEND_MIN_ALPHA + (1 - BLEND_MIN_ALPHA) * float(torch.rand(()))
        return alpha * lr_up + (1 - alpha) * colour, alpha * hr + (1 - alpha) * colour
    if choice == "rgb":  # the same channel permutation for input and target
        order = torch.randperm(3).to(hr.device)
        return lr_up[:, order], hr[:, order]
    if choice == "mixup":  # convex mix with another sample of the batch
        weight = float(torch.distributions.Beta(MIXUP_CONCENTRATION, MIXUP_CONCENTRATION).sample())
        other = torch.randperm(batch).to(hr.device)
        return weight * lr_up + (1 - weight) * lr_up[other], weight * hr + (1 - weight) * hr[other]
    mask = _random_box(height, width, hr.device).to(hr.dtype)
    if choice == "cutmix":  # a box of another sample pasted into input and target alike
        other = torch.randperm(batch).to(hr.device)
        return mask * lr_up[other] + (1 - mask) * lr_up, mask * hr[other] + (1 - mask) * hr
    # CutBlur: HR pixels inside the box of the LR input, or (half the time) LR pixels inside an HR input.
    if float(torch.rand(())) < 0.5:
        mask = 1 - mask
    return mask * hr + (1 - mask) * lr_up, hr
