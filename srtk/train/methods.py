"""A training method as the engine sees it: the generator and critics a configuration names, and the weighted
losses they minimise. Which method it is never matters here: the configuration (srtk.presets) says what to build,
and the generator declares what it outputs (srtk.models.capabilities); a weighted term whose input the generator
does not produce is a ConfigError, never a term silently dropped.

The terms:
- pixel: L1 on images (SPSR eq. 3, ugsr eq. 12, GPSR eq. 18);
- perceptual: VGG19 (SPSR eq. 4) or LPIPS (ugsr eq. 6);
- adversarial: image critic, RaGAN/vanilla/hinge with a VGG-style critic (SPSR eq. 5-6), or the U-Net critic
  with its hinge + CutMix-consistency loss (ugsr eq. 2-5); feature matching on the U-Net critic (ugsr eq. 7);
- grad_pixel: ||M(SR) - M(HR)||_1 (SPSR eq. 7, ugsr eq. 8, GPSR eq. 15);
- grad_adversarial: the gradient critic on M(SR) vs M(HR) (SPSR eq. 8-9, ugsr eq. 10-11);
- branch_pixel: the gradient branch's output vs M(HR) (SPSR eq. 10, ugsr eq. 9);
- multi_scale_gradient: GPSR's deep multi-scale gradient supervision (eq. 12-14);
- structure_pixel / structure_adversarial: SPSR-P/J's structure loss, L1 between structure features F(SR) and
  F(HR) and the critic D_SF on them (paper 000 eq. 14-16), F a frozen extractor (NSE, VGG19 or ResNet18);
- contrastive: PCL's contrastive loss on the embedding network's features of SR, sharpened positives and blurred
  negatives (paper 004 eq. 8-10); E_D learns as a critic with the contrastive discriminator loss (eq. 7).
A step takes a batch and returns named losses; a method knows nothing of devices, precision or processes.
Convention: images RGB, NCHW, float in [0, 1].
"""

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.config.resolve import coerce
from srtk.config.train import BACKBONE, ModelConfig, TrainConfig
from srtk.errors import ConfigError, SrtkWarning
from srtk.losses.adversarial import UNetDiscriminatorLoss, feature_matching_loss
from srtk.losses.contrastive import PCLObjective
from srtk.losses.gg import GradientGuidedLoss
from srtk.losses.gradient import GradientAdversarialInputs, GradientBranchPixelLoss, GradientPixelLoss
from srtk.losses.perceptual import VGG_CONTENT_LOSSES, LPIPSLoss
from srtk.losses.pixel import PixelLoss
from srtk.losses.registry import build_adversarial_loss
from srtk.losses.structure import StructurePixelLoss
from srtk.models.capabilities import GRADIENT_BRANCH, GRADIENT_MAPS, accepts_hr_grid, fusion_modules, outputs_of
from srtk.models.discriminators import UNetDiscriminator
from srtk.models.registry import AUXILIARY, MODELS, build_model, load_model_with_card
from srtk.models.structure_extractors import build_structure_extractor
from srtk.runtime import sr_image

IMAGE_CRITIC = "image"  # D_I
GRADIENT_CRITIC = "gradient"  # D_GM
STRUCTURE_CRITIC = "structure"  # D_SF
EMBEDDING_CRITIC = "embedding"  # PCL's E_D, trained with the contrastive discriminator loss
# Loss terms that read a generator output other than the SR image: term -> the output it needs.
TERM_INPUTS = {"branch_pixel": GRADIENT_BRANCH, "multi_scale_gradient": GRADIENT_MAPS}

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


def typed_options(name: str, options: Mapping[str, Any], section: str) -> dict[str, Any]:
    """Builder options (from a config file or --set) checked against the registry builder's signature: an unknown
    key or a value of the wrong type is a ConfigError naming `section`.KEY, never a silently truthy string."""
    if name not in MODELS:
        raise ConfigError(f"unknown network {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    builder = MODELS[name]
    parameters = inspect.signature(builder).parameters
    checked = {}
    for key, value in options.items():
        if key not in parameters:
            raise ConfigError(f"{section}.{key}: {name} has no option {key!r}; it takes: {', '.join(parameters)}")
        kind = parameters[key].annotation  # srtk writes real annotations (no `from __future__ import annotations`)
        checked[key] = coerce(value, kind, f"{section}.{key}") if kind in (bool, int, float, str) else value
        # Integer options are counts and sizes (blocks, features, channels, groups): at least 1, or 0 where the
        # builder's own default is 0 (an optional part switched off).
        lowest = 0 if parameters[key].default == 0 else 1
        if kind is int and checked[key] < lowest:
            raise ConfigError(f"{section}.{key}={checked[key]}: {name}'s {key} must be at least {lowest}")
    return checked


def generator_spec(model: ModelConfig, scale: int) -> tuple[str, dict[str, Any]]:
    """(registry name, builder kwargs) of the generator a model config names: what its model card records."""
    if model.generator == BACKBONE:
        if model.backbone is None:
            raise ConfigError("model.generator=backbone needs a model.backbone (a registry SR network)")
        return model.backbone, {
            "scale": scale,
            **typed_options(model.backbone, model.backbone_options, "model.backbone_options"),
        }
    options = {"scale": scale, **typed_options(model.generator, model.generator_options, "model.generator_options")}
    if "backbone" in inspect.signature(MODELS[model.generator]).parameters:  # it wraps any backbone
        if model.backbone is None:
            raise ConfigError(f"{model.generator} wraps a backbone: give model.backbone (--backbone)")
        options.update(backbone=model.backbone, backbone_options=dict(model.backbone_options))
    elif model.backbone is not None:
        raise ConfigError(
            f"{model.generator} builds its own SR network; --backbone {model.backbone} does not apply "
            f"(its sizes are model.generator_options)"
        )
    return model.generator, options


def _critic(name: str, options: Mapping[str, Any], input_size: int) -> nn.Module:
    options = dict(options)
    if name in AUXILIARY and "input_size" in inspect.signature(AUXILIARY[name]).parameters:
        options.setdefault("input_size", input_size)  # a critic's dense head fixes its input size: the patch's
    return build_model(name, **options)


def _weights(losses: Any) -> dict[str, float]:
    return {f.name: getattr(losses, f.name) for f in fields(losses) if isinstance(getattr(losses, f.name), float)}


def _field(output: Any, name: str) -> Any:
    return None if isinstance(output, Tensor) else getattr(output, name, None)


def scaled_kaiming_init(network: nn.Module, scale: float) -> None:
    """ESRGAN's initialisation: Kaiming-normal convolutions (fan-in) scaled by `scale`, zero biases.

    Small residual branches make a deep residual network start close to the identity (ESRGAN sec. 3.3)."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            module.weight.data.mul_(scale)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@dataclass
class InitReport:
    """What `--init` copied into the generator and what it could not."""

    copied: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)  # e.g. SPSR's gradient branch from a plain RRDBNet
    shape_mismatch: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"copied": len(self.copied), "not_in_source": self.not_in_source, "shape_mismatch": self.shape_mismatch}


class SRMethod(nn.Module):
    """A generator, its critics and its weighted losses, as configured (see the module docstring)."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        losses, model, scale = cfg.losses, cfg.model, cfg.data.scale
        hr_patch_size = cfg.data.lr_patch_size * scale
        self.weights = losses
        self.scale = scale
        self.architecture, self.architecture_config = generator_spec(model, scale)
        self.generator = build_model(self.architecture, **self.architecture_config)
        if model.kaiming_scale is not None:
            scaled_kaiming_init(self.generator, model.kaiming_scale)
        produced = outputs_of(self.generator)
        for term, needed in TERM_INPUTS.items():
            weight = getattr(losses, term)
            if weight != 0 and needed not in produced:  # a configured weight is never dropped in silence
                raise ConfigError(
                    f"losses.{term}={weight:g} needs the generator's {needed!r} output, which {self.architecture} "
                    f"does not produce; set losses.{term}=0 for this generator"
                )
        self.moa = cfg.data.mixture_of_augmentations
        if self.moa and not accepts_hr_grid(self.generator):
            raise ConfigError(
                f"data.mixture_of_augmentations needs a generator taking HR-grid input, not {self.architecture}"
            )
        self.warmup_modules = fusion_modules(self.generator)
        self.fusion_warmup, self.critic_warmup = cfg.optim.fusion_warmup, cfg.optim.critic_warmup
        if cfg.optim.fusion_warmup > 0 and not self.warmup_modules:
            raise ConfigError(f"optim.fusion_warmup: {self.architecture} declares no fusion layers to warm up")

        self.pixel = PixelLoss(criterion=losses.pixel_criterion) if losses.pixel > 0 else None  # type: ignore[arg-type]
        self.perceptual: nn.Module | None = None
        if losses.perceptual > 0:
            allow = losses.allow_random_perceptual
            kind = losses.perceptual_kind
            self.perceptual = (
                LPIPSLoss(allow_random=allow) if kind == "lpips" else VGG_CONTENT_LOSSES[kind](allow_random=allow)
            )
        padding = losses.gradient_padding
        self.grad_pixel = (
            GradientPixelLoss(criterion=losses.grad_pixel_criterion, padding=padding)  # type: ignore[arg-type]
            if losses.grad_pixel > 0
            else None
        )
        self.branch_pixel = GradientBranchPixelLoss() if losses.branch_pixel > 0 else None
        self.multi_scale = (
            GradientGuidedLoss(multi_scale_weight=1.0, sr_gradient_weight=0.0, pixel_weight=0.0)
            if losses.multi_scale_gradient > 0
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
        self.gradient_inputs = GradientAdversarialInputs(padding=padding) if losses.grad_adversarial > 0 else None
        if self.gradient_inputs is not None:
            # A padded operator makes the gradient maps 2 (padding - 1) pixels larger than the HR patch.
            self.discriminators[GRADIENT_CRITIC] = _critic(
                model.gradient_discriminator, model.gradient_discriminator_options, hr_patch_size + 2 * (padding - 1)
            )

        # Structure loss (paper 000 sec. 4.3): a frozen extractor F, L1 on its features, D_SF on them.
        self.frozen = nn.ModuleDict()  # fixed networks the losses read: kept in eval mode, never optimised
        self.structure_pixel = StructurePixelLoss() if losses.structure_pixel > 0 else None
        if losses.structure_pixel > 0 or losses.structure_adversarial > 0:
            structure = cfg.structure
            self.frozen["structure_extractor"] = build_structure_extractor(
                structure.extractor,
                nse=structure.nse,
                random_nse=structure.random_nse,
                nse_task=structure.nse_task,
                allow_random=losses.allow_random_perceptual,
            )
        if losses.structure_adversarial > 0:
            extractor = self.frozen["structure_extractor"]
            stride = int(extractor.stride)
            if hr_patch_size % stride:
                raise ConfigError(f"the HR patch ({hr_patch_size} px) must be a multiple of F's stride {stride}")
            options = {"in_channels": int(extractor.out_channels), **cfg.structure.discriminator_options}
            self.discriminators[STRUCTURE_CRITIC] = _critic(
                cfg.structure.discriminator, options, hr_patch_size // stride
            )

        # PCL (paper 004 sec. III): E_D is a critic (its own loss, eq. 7) unless it is fixed (PCL-F, VGG).
        self.pcl: PCLObjective | None = None
        if losses.contrastive > 0:
            self.pcl = PCLObjective(
                cfg.contrastive, hr_patch_size=hr_patch_size, allow_random_vgg=losses.allow_random_perceptual
            )
            if self.pcl.trains_embedding:
                self.discriminators[EMBEDDING_CRITIC] = self.pcl.embedding
            else:
                self.pcl.embedding.requires_grad_(False)
                self.frozen["embedding"] = self.pcl.embedding
        self.adversarial = build_adversarial_loss(losses.adversarial_kind) if self.discriminators else None
        if cfg.optim.critic_warmup > 0 and not self.discriminators:
            raise ConfigError(f"optim.critic_warmup: method {cfg.method!r} trains no critic to warm up")
        for network in self.frozen.values():
            network.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "SRMethod":
        super().train(mode)
        for network in self.frozen.values():  # a fixed extractor's batch norm never tracks training batches
            network.eval()
        return self

    def active_terms(self) -> dict[str, float]:
        """The weighted loss terms this method minimises (non-zero weights): what a model card records."""
        critic_side = () if self.unet_loss is not None else ("consistency",)  # the U-Net critic's own weight
        return {term: w for term, w in _weights(self.weights).items() if w > 0 and term not in critic_side}

    def structure_features(self, img: Tensor) -> Tensor:
        return self.frozen["structure_extractor"](img)

    # ------------------------------------------------------------------------------------------ steps

    def super_resolve(self, lr: Tensor) -> Tensor:
        """The generator's SR image for an LR batch (validation, inference)."""
        return sr_image(self.generator(lr))

    def warm_up(self, iteration: int) -> bool:
        """Set up the warm-ups of `iteration`; returns whether the generator steps. optim.fusion_warmup: only the
        fusion layers train (the SPSR release's branch warm-up); optim.critic_warmup: only the critics do."""
        if self.warmup_modules:
            active = iteration < self.fusion_warmup
            for name, parameter in self.generator.named_parameters():
                if not any(name == module or name.startswith(f"{module}.") for module in self.warmup_modules):
                    parameter.requires_grad_(not active)
        return not (self.discriminators and iteration < self.critic_warmup)

    def generator_losses(self, lr: Tensor, hr: Tensor) -> GeneratorStep:
        """Weighted generator objective for one batch; critics are frozen by the caller."""
        w = self.weights
        if self.moa:
            mixed, hr = mixture_of_augmentations(lr, hr, self.scale)
            output = self.generator(mixed, hr_grid=True)
        else:
            output = self.generator(lr)
        sr = sr_image(output)
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
        if self.branch_pixel is not None:
            add("branch_pixel", self.branch_pixel(_field(output, GRADIENT_BRANCH), hr), w.branch_pixel)
        if self.multi_scale is not None:
            maps = tuple(_field(output, GRADIENT_MAPS))
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
        if "structure_extractor" in self.frozen:
            with torch.no_grad():
                hr_features = self.structure_features(hr)
            sr_features = self.structure_features(sr)
            if self.structure_pixel is not None:
                add("structure_pixel", self.structure_pixel(sr_features, hr_features), w.structure_pixel)
            if STRUCTURE_CRITIC in self.discriminators:
                assert self.adversarial is not None
                critic = self.discriminators[STRUCTURE_CRITIC]
                real_logits = critic(hr_features).detach()
                add(
                    "structure_adversarial",
                    self.adversarial.generator_loss(critic(sr_features), real_logits),
                    w.structure_adversarial,
                )
        if self.pcl is not None:
            add("contrastive", self.pcl.generator_loss(sr, hr, lr), w.contrastive)
        if not weighted:
            raise ConfigError("no loss has a non-zero weight: set at least one losses.* weight")
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
        if STRUCTURE_CRITIC in self.discriminators:
            assert self.adversarial is not None
            critic = self.discriminators[STRUCTURE_CRITIC]
            with torch.no_grad():
                real, fake_features = self.structure_features(hr), self.structure_features(fake)
            terms["structure"] = self.adversarial.discriminator_loss(critic(real), critic(fake_features))
        if EMBEDDING_CRITIC in self.discriminators:
            assert self.pcl is not None
            terms["embedding"] = self.pcl.embedding_loss(fake, hr)
        totals = [terms[name].float() for name in self.discriminators]
        terms["total"] = torch.stack(totals).sum()
        return terms

    # ----------------------------------------------------------------------------------- initialisation

    def initialize(self, model: ModelConfig, method: str) -> InitReport | None:
        """Apply model.init, or refuse a preset that needs one (model.init_required) unless model.from_scratch."""
        if model.init is not None:
            return self.initialize_from(model.init)
        if model.init_required:
            if not model.from_scratch:
                raise ConfigError(
                    f"method {method} starts from a PSNR-oriented model, as its paper does: give --init CHECKPOINT "
                    f"(e.g. the final.safetensors of srtk train --method psnr), or --from-scratch to train without one"
                )
            warnings.warn(
                f"{method} trains from scratch (--from-scratch): its paper starts from a PSNR model",
                SrtkWarning,
                stacklevel=3,
            )
        return None

    def initialize_from(self, path: Path) -> InitReport:
        """Copy a checkpoint's weights into the generator wherever names and shapes agree (paper 000 sec. 5.1:
        "a pretrained PSNR-oriented RRDB model to initialize the parameters of the shared architectures").

        Tensors the source does not have stay as initialised and are reported, and so is a whole layer that the
        source has in another shape (SPSR's backbone reconstructs features where RRDBNet's last conv emits RGB).
        A layer the source has partly in another shape (its bias fits, its weight does not) is an error: that
        layer would start half copied, half from noise, unnoticed (ugsr's packed input conv from an RRDBNet).
        """
        network, _ = load_model_with_card(path)
        source = getattr(network, "network", network).state_dict()
        own = self.generator.state_dict()
        report = InitReport()
        copied: dict[str, Tensor] = {}
        status: dict[str, str] = {}
        theirs: dict[str, str] = {}  # a mismatching tensor's name in the source
        for key, value in own.items():
            candidates = [name for name in _shared_names(key) if name in source]
            fitting = [name for name in candidates if source[name].shape == value.shape]
            if fitting:
                copied[key] = source[fitting[0]]
                status[key] = "copied"
            elif candidates:
                status[key], theirs[key] = "mismatch", candidates[0]
            else:
                status[key] = "absent"
        if not copied:
            raise ConfigError(f"{path}: no tensor of this checkpoint fits the {self.architecture} generator")
        for key in own:
            layer = key.rpartition(".")[0]
            if status[key] == "mismatch":
                if any(status[k] == "copied" for k in own if k.rpartition(".")[0] == layer):
                    raise ConfigError(
                        f"{path}: {key} has shape {tuple(source[theirs[key]].shape)} there but "
                        f"{tuple(own[key].shape)} in {self.architecture}, while the rest of its layer fits: "
                        f"this checkpoint is not this generator's pre-training (train one with --method psnr "
                        f"--backbone {self.architecture})"
                    )
                report.shape_mismatch.append(key)
            elif status[key] == "absent":
                report.not_in_source.append(key)
        report.copied = list(copied)
        self.generator.load_state_dict(copied, strict=False)
        return report


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
    return SRMethod(cfg)


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
