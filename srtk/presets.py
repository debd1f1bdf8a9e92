"""The methods of srtk as presets: each is a function returning a TrainConfig with its paper's numbers, naming the
networks to build and the weighted loss terms. This is the only module that knows methods by name; everything
after it reads the configuration.

- "psnr": the PSNR-oriented pre-training every perceptual method starts from (paper 002 sec. 3.1).
- "srgan": SRGAN as published (Ledig et al. 2017, sec. 2-3).
- "esrgan": the ESRGAN baseline (Wang et al. 2018) in the training framework of paper 000 sec. 5.1.
- "spsr-g": SPSR with gradient guidance (paper 000 sec. 3.2-3.3 and 5.1; paper 001).
- "ugsr": gradient branch + U-Net discriminator + LPIPS (paper 002 sec. 2-3.1).
- "gpsr": GPSR with the gradient-guided loss (paper 003 sec. 3.2.2, 4.1).
- "spsr-p" / "spsr-j": SPSR with the structure loss of an NSE pre-trained by contrastive prediction / jigsaw
  puzzles (paper 000 sec. 4.3, 5.1); "spsr-r", "spsr-vgg", "spsr-resnet": the same with a random NSE, ImageNet
  VGG19 or ResNet18 as the extractor (Appendix C, Table 6).
- "pcl": PCL on any backbone (paper 004 sec. III-IV).
The pretext tasks of `srtk pretrain-nse` (paper 000 sec. 4.2, 5.1) are presets too (PRETEXT_PRESETS).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any

from srtk.config.resolve import resolve
from srtk.config.train import (
    BACKBONE,
    ContrastiveConfig,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PretextConfig,
    StructureConfig,
    TrainConfig,
)
from srtk.errors import ConfigError

SPSR_MILESTONES = (50_000, 100_000, 200_000, 300_000)  # paper 000 sec. 5.1; paper 002 sec. 3.1


def psnr_preset() -> TrainConfig:
    """PSNR-oriented pre-training with L1 (paper 002 sec. 3.1: lr 2e-4, 16 patches of 32x32 LR, "updated every
    5x10^5 mini-batch cycles with the minimum 1x10^-7"; reading: the garbled exponent is 5, the update a cosine
    restart as in ESRGAN). The total length is not given: two periods, as ESRGAN's 1e6.
    Any registry SR network trains this way, ugsr's own generator too (`--backbone ugsr`: paper 002 pre-trains
    its generator with L1 before the GAN stage)."""
    return TrainConfig(
        method="psnr",
        data=DataConfig(lr_patch_size=32, batch_size=16),
        optim=OptimConfig(
            iterations=1_000_000,
            learning_rate=2e-4,
            schedule="cosine",
            cosine_period=500_000,
            min_learning_rate=1e-7,
        ),
        losses=LossConfig(pixel=1.0),
        model=ModelConfig(generator=BACKBONE, backbone="rrdbnet"),
    )


def esrgan_preset() -> TrainConfig:
    """ESRGAN (Wang et al. 2018) with SPSR-G's image-space settings, so that the two differ only in SPSR's
    additions (paper 000 reports ESRGAN's published numbers and trains SPSR-G "following the settings in [60]",
    sec. 5.1): beta_I 0.01, gamma_I 0.005, VGG19 perceptual loss weight 1, RaGAN with a VGG-style critic, Adam
    1e-4 halved at 50k/100k/200k/300k, 15 patches of 32x32 LR (ESRGAN itself: 16), initialised from the PSNR
    model. 400k iterations (not stated in paper 000; paper 002 trains "about 400k")."""
    return TrainConfig(
        method="esrgan",
        data=DataConfig(lr_patch_size=32, batch_size=15),
        optim=OptimConfig(iterations=400_000, milestones=SPSR_MILESTONES, gamma=0.5),
        losses=LossConfig(
            pixel=0.01, perceptual=1.0, perceptual_kind="vgg", adversarial=0.005, adversarial_kind="ragan"
        ),
        model=ModelConfig(generator=BACKBONE, backbone="rrdbnet", discriminator="vgg-128", init_required=True),
    )


def srgan_preset() -> TrainConfig:
    """SRGAN as published (Ledig et al. 2017): SRResNet with batch norm (sec. 2.1, Fig. 4), the VGG content
    loss (MSE on phi_5,4 after activation, rescaled by 1/12.75, sec. 2.2.1 and 3.2), the standard GAN loss
    weighted 1e-3 (eq. 3) against SRGAN's 8-conv critic with a dense head (Fig. 4); 16 patches of 24x24 LR
    (96x96 HR); Adam lr 1e-4 for 1e5 iterations, then 1e-5 for 1e5; initialised from the MSE-trained SRResNet
    (sec. 3.2: `srtk train --method psnr --backbone srresnet-bn --set losses.pixel_criterion=l2`)."""
    return TrainConfig(
        method="srgan",
        data=DataConfig(lr_patch_size=24, batch_size=16),
        optim=OptimConfig(iterations=200_000, milestones=(100_000,), gamma=0.1),
        losses=LossConfig(
            pixel=0.0, perceptual=1.0, perceptual_kind="vgg-srgan", adversarial=1e-3, adversarial_kind="vanilla"
        ),
        model=ModelConfig(generator=BACKBONE, backbone="srresnet-bn", discriminator="srgan-critic", init_required=True),
    )


def spsr_g_preset() -> TrainConfig:
    """SPSR-G (paper 000 sec. 3.3 eq. 10 and sec. 5.1): beta_I 0.01, gamma_I 0.005, beta_GM 0.01,
    gamma_GM 0.005, beta_GB 0.5, perceptual 1; 15 patches of 32x32 LR; Adam (0.9, 0.999, 1e-8), lr 1e-4 for
    G and both D, halved at 50k/100k/200k/300k; initialised from the PSNR-oriented RRDB model (--init).
    The generator wraps any backbone (paper 000 sec. 1: "model-agnostic"; RRDBNet gives the paper's)."""
    return TrainConfig(
        method="spsr-g",
        data=DataConfig(lr_patch_size=32, batch_size=15),
        optim=OptimConfig(iterations=400_000, milestones=SPSR_MILESTONES, gamma=0.5),
        losses=LossConfig(
            pixel=0.01,  # beta_SR^I
            perceptual=1.0,  # eq. 10: L_SR^Per unweighted
            perceptual_kind="vgg",
            adversarial=0.005,  # gamma_SR^I
            adversarial_kind="ragan",  # sec. 3.3: "we conduct relativistic average GAN"
            grad_pixel=0.01,  # beta_SR^GM: "equal to those of image-space loss"
            grad_adversarial=0.005,  # gamma_SR^GM
            branch_pixel=0.5,  # beta_GB^GM
        ),
        model=ModelConfig(
            generator="spsr-around",
            backbone="rrdbnet",
            discriminator="vgg-128",
            gradient_discriminator="vgg-128",
            init_required=True,
        ),
    )


def ugsr_preset() -> TrainConfig:
    """ugsr (paper 002 sec. 3.1, eq. 13): lambda_Adv 0.005, lambda_Per (LPIPS) 0.001, lambda_Pix 0.01,
    lambda_GM 0.01, lambda_GB 0.5; feature matching unweighted in eq. 13; 16 patches of 32x32 LR, lr 1e-4
    halved at 50k/100k/200k/300k, about 400k iterations, MoA augmentation; initialised from its generator's
    L1 pre-training (`--method psnr --backbone ugsr`).

    Reading of the garbled eq. 13: the five named weights go to image adversarial, LPIPS, image pixel,
    SR gradient pixel and gradient-branch pixel; the gradient discriminator's weight is not legible, so it
    takes SPSR's gamma_GM = 0.005 (paper 002 follows SPSR, its [16], for the gradient losses).
    """
    return TrainConfig(
        method="ugsr",
        data=DataConfig(lr_patch_size=32, batch_size=16, mixture_of_augmentations=True),
        optim=OptimConfig(iterations=400_000, milestones=SPSR_MILESTONES, gamma=0.5),
        losses=LossConfig(
            pixel=0.01,
            perceptual=0.001,
            perceptual_kind="lpips",  # sec. 2.4: LPIPS on AlexNet
            adversarial=0.005,
            adversarial_kind="ragan",  # the gradient critic's RaGAN (eq. 10-11); the U-Net critic uses hinge
            feature_matching=1.0,
            consistency=1.0,  # eq. 5 adds L_Dcons unweighted
            grad_pixel=0.01,
            grad_adversarial=0.005,
            branch_pixel=0.5,
        ),
        model=ModelConfig(
            generator="ugsr",
            backbone=None,  # fig. 1: its own RRDB SR branch, fused with the gradient branch after upsampling
            discriminator="unet-sn",
            gradient_discriminator="vgg-128",
            init_required=True,
        ),
    )


def gpsr_preset() -> TrainConfig:
    """GPSR (paper 003 sec. 3.2.2 and 4.1): L_GP = L1 + 0.1 L_grad^pix + 0.001 L_SG^pix; 8 patches of 48x48
    LR; Adam (0.9, 0.999, 1e-8), lr 1e-4 cosine-annealed to 1e-7 over 1e6 iterations, from scratch."""
    return TrainConfig(
        method="gpsr",
        data=DataConfig(lr_patch_size=48, batch_size=8),
        optim=OptimConfig(
            iterations=1_000_000, learning_rate=1e-4, schedule="cosine", min_learning_rate=1e-7, cosine_period=None
        ),
        losses=LossConfig(pixel=1.0, multi_scale_gradient=0.1, grad_pixel=0.001),
        # GGS / CRFS / LRSAM of Table 3 are options of the network: model.generator_options.use_crfs=false, ...
        model=ModelConfig(generator="gpsr", backbone=None),
    )


def spsr_structure_preset(
    method: str, structure: StructureConfig, *, perceptual: float = 1.0
) -> Callable[[], TrainConfig]:
    """SPSR with the structure loss (paper 000 eq. 17): L_Per + beta_I L_Pix + beta_SF L_PixSF + gamma_SF L_AdvSF
    with beta_I 0.01 and beta_SF 1e-7, gamma_SF 0.1 (sec. 5.1); the image-space adversarial loss and both
    gradient-space losses are removed (sec. 4.3), the gradient branch and its loss beta_GB 0.5 stay (reading:
    sec. 4.3 removes L_AdvI, L_PixGM and L_AdvGM only; Table 3 ablates the branch, "w/o GB"). Everything else as
    SPSR-G (sec. 5.1): 15 patches of 32x32 LR, lr 1e-4 halved at 50k/100k/200k/300k, from the PSNR model.
    reading: D_SF plays the relativistic average GAN of D_GM ("similar to that used for the gradient loss")."""

    def build() -> TrainConfig:
        cfg = spsr_g_preset()
        return replace(
            cfg,
            method=method,
            losses=LossConfig(
                pixel=0.01,  # beta_SR^I
                perceptual=perceptual,  # eq. 17: L_SR^Per unweighted
                perceptual_kind="vgg",
                adversarial_kind="ragan",
                branch_pixel=0.5,  # beta_GB^GM
                structure_pixel=1e-7,  # beta_SR^SF (sec. 5.1)
                structure_adversarial=0.1,  # gamma_SR^SF (sec. 5.1)
            ),
            structure=structure,
        )

    return build


def pcl_preset() -> TrainConfig:
    """PCL (paper 004): L1 + alpha L_CL with alpha 0.1 (eq. 12, Table VII), K_P = K_N = 4 (sec. III-B), the first
    L = 4 layers of the Haar-band embedding E_D (sec. III-C, III-D), 48x48 LR patches, batch 16, Adam
    (0.9, 0.999, 1e-8) (sec. III-E). The backbone is re-trained from scratch with its own recipe (sec. IV-A);
    EDSR, RCAN, HAN and NLSN share it in their code bases: lr 1e-4 halved every 2x10^5 iterations.
    reading: 10^6 iterations (the EDSR code base's 1000 epochs of 1000 iterations); E_D's lr = the SR network's."""
    return TrainConfig(
        method="pcl",
        data=DataConfig(lr_patch_size=48, batch_size=16),
        optim=OptimConfig(
            iterations=1_000_000,
            learning_rate=1e-4,
            discriminator_learning_rate=1e-4,
            milestones=(200_000, 400_000, 600_000, 800_000),
            gamma=0.5,
        ),
        losses=LossConfig(pixel=1.0, contrastive=0.1),
        model=ModelConfig(generator=BACKBONE, backbone="edsr-baseline"),  # EDSR-S, Table II's first row
        contrastive=ContrastiveConfig(),
    )


def nse_pretext_preset(task: str) -> TrainConfig:
    """Pre-training of the NSE (paper 000 sec. 5.1): 420x420 HR patches (105 x 4: the LR half of each batch is
    unused), batch 48, 32 feature channels; contrastive prediction with tau 64 and lr 1e-3 x0.2 every 20 epochs,
    jigsaw with lr 1e-4 decayed every 30 epochs. reading: the jigsaw decay factor is not given (0.2, as the
    contrastive one); an epoch is one patch per training image (DIV2K: 800 / 48 = 16 iterations), and the
    lengths, not given either, are three decays each: 60 epochs (1,000 iterations) and 90 epochs (1,500)."""
    contrastive = task == "contrastive"
    return TrainConfig(
        method=f"nse-{task}",
        data=DataConfig(lr_patch_size=105, scale=4, batch_size=48),
        optim=OptimConfig(
            iterations=1_000 if contrastive else 1_500,
            learning_rate=1e-3 if contrastive else 1e-4,
            step_epochs=20 if contrastive else 30,
            gamma=0.2,
            milestones=(),
        ),
        losses=LossConfig(pixel=0.0),
        model=ModelConfig(backbone=None),
        pretext=PretextConfig(task=task),
    )


def spsr_official_release(cfg: TrainConfig) -> TrainConfig:
    """The SPSR authors' released training code, where it differs from paper 000: the first 5k iterations train
    only the fusion block (the branches are copied or warming up), the generator starts from ESRGAN's Kaiming
    x 0.1 initialisation, M(SR) is compared with M(HR) by MSE, the gradient maps of the losses and of D_GM are
    zero-padded by 2 (one pixel more each side, so D_GM sees 130 px), and training runs 500k iterations."""
    return replace(
        cfg,
        optim=replace(cfg.optim, iterations=500_000, fusion_warmup=5_000, official_release=True),
        losses=replace(cfg.losses, grad_pixel_criterion="l2", gradient_padding=2),
        model=replace(cfg.model, kaiming_scale=0.1),
    )


@dataclass(frozen=True)
class Preset:
    build: Callable[[], TrainConfig]
    official_release: Callable[[TrainConfig], TrainConfig] | None = None  # the authors' code's recipe, if any


PRESETS: dict[str, Preset] = {
    "psnr": Preset(psnr_preset),
    "srgan": Preset(srgan_preset),
    "esrgan": Preset(esrgan_preset),
    "spsr-g": Preset(spsr_g_preset, official_release=spsr_official_release),
    "ugsr": Preset(ugsr_preset),
    "gpsr": Preset(gpsr_preset),
    "spsr-p": Preset(spsr_structure_preset("spsr-p", StructureConfig(extractor="nse", nse_task="contrastive"))),
    "spsr-j": Preset(spsr_structure_preset("spsr-j", StructureConfig(extractor="nse", nse_task="jigsaw"))),
    "spsr-r": Preset(spsr_structure_preset("spsr-r", StructureConfig(extractor="nse", random_nse=True))),
    "spsr-vgg": Preset(spsr_structure_preset("spsr-vgg", StructureConfig(extractor="vgg19"))),
    "spsr-resnet": Preset(spsr_structure_preset("spsr-resnet", StructureConfig(extractor="resnet18"))),
    "pcl": Preset(pcl_preset),
}
PRETEXT_PRESETS: dict[str, Callable[[], TrainConfig]] = {
    task: partial(nse_pretext_preset, task) for task in ("contrastive", "jigsaw")
}
DEFAULT_METHOD = "psnr"
PSNR_ORIENTED, PERCEPTUAL = "PSNR-oriented", "perceptual"
# Loss terms that trade fidelity for realistic texture: a method with any of them weighted is a perceptual one.
PERCEPTUAL_TERMS = ("perceptual", "adversarial", "grad_adversarial", "structure_adversarial")
# The perceptual method `srtk demo` upscales with when a bundled model of it exists: paper 000's proposal (SPSR with
# the structure loss of an NSE pre-trained by contrastive prediction).
SHOWCASE_PERCEPTUAL_METHOD = "spsr-p"


def preset_config(method: str, *, official_release: bool = False) -> TrainConfig:
    """The preset of `method` (optionally with its authors' released recipe), or a ConfigError listing them."""
    if method not in PRESETS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[method]
    cfg = preset.build()
    if official_release:
        if preset.official_release is None:
            raise ConfigError(f"optim.official_release: method {method!r} has no released recipe that differs")
        cfg = preset.official_release(cfg)
    return cfg


def method_kind(method: str | None) -> str | None:
    """PERCEPTUAL for a method whose preset weights a perceptual or adversarial term, PSNR_ORIENTED for one trained
    on pixel, gradient or contrastive terms alone (psnr, gpsr, pcl); None for an unknown one (converted weights)."""
    if method is None or method not in PRESETS:
        return None
    losses = PRESETS[method].build().losses
    return PERCEPTUAL if any(getattr(losses, term) > 0 for term in PERCEPTUAL_TERMS) else PSNR_ORIENTED


def is_perceptual_method(method: str | None) -> bool:
    """Whether a method trades PSNR for texture: judge its models by NIQE/LPIPS, not PSNR."""
    return method_kind(method) == PERCEPTUAL


def resolve_train_config(
    method: str | None = None,
    *,
    file: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Method preset < config file (nested) < flags < `--set` overrides (dotted keys), as a checked TrainConfig.

    A config file may name the method (top-level `method`); an explicit `method` wins. `optim.official_release`,
    wherever it is set, swaps the preset for the released recipe before the file and flags apply, so that an
    explicit `--iterations` still wins over the recipe's.
    """
    file = dict(file or {})
    method = method or file.get("method") or DEFAULT_METHOD
    file.pop("method", None)
    layers = {"file": file, "flags": flags, "overrides": overrides}
    first = resolve(preset_config(method), **layers)
    if first.optim.official_release:
        first = resolve(preset_config(method, official_release=True), **layers)
    return replace(first, method=method)


def resolve_pretext_config(
    task: str,
    *,
    file: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The pretext preset of `task` < config file < flags < `--set` overrides (`srtk pretrain-nse`)."""
    if task not in PRETEXT_PRESETS:
        raise ConfigError(f"unknown pretext task {task!r}; choose one of: {', '.join(PRETEXT_PRESETS)}")
    file = dict(file or {})
    file.pop("method", None)
    cfg = resolve(PRETEXT_PRESETS[task](), file=file, flags=flags, overrides=overrides)
    if cfg.pretext.task != task:
        raise ConfigError(f"pretext.task={cfg.pretext.task}: the task is chosen with --task (here {task})")
    return cfg


def describe_presets() -> str:
    """One paragraph per method preset with the papers' numbers it carries (for `srtk train --help`)."""
    return "\n\n".join(f"{name}: {describe(preset.build())}" for name, preset in PRESETS.items())


def describe(cfg: TrainConfig) -> str:
    """One line of what a configuration trains: networks, patches, schedule, weighted losses, critics."""
    optim, data, model, losses = cfg.optim, cfg.data, cfg.model, cfg.losses
    if optim.schedule == "multistep":
        steps = "/".join(f"{m // 1000}k" for m in optim.milestones)
        schedule = f"lr {optim.learning_rate:g} x{optim.gamma:g} at {steps}"
    elif optim.schedule == "cosine":
        period = f" restarting every {optim.cosine_period // 1000}k" if optim.cosine_period else ""
        schedule = f"cosine lr {optim.learning_rate:g} -> {optim.min_learning_rate:g}{period}"
    else:
        schedule = f"constant lr {optim.learning_rate:g}"
    weights = ", ".join(
        f"{f.name} {getattr(losses, f.name):g}"
        for f in fields(losses)
        if isinstance(getattr(losses, f.name), float) and getattr(losses, f.name) > 0 and f.name != "consistency"
    )
    critics = []
    if losses.adversarial > 0:
        critics.append(f"D_I {model.discriminator}")
    if losses.grad_adversarial > 0:
        critics.append(f"D_GM {model.gradient_discriminator}")
    if losses.structure_adversarial > 0:
        critics.append(f"D_SF {cfg.structure.discriminator}")
    if losses.contrastive > 0 and cfg.contrastive.embedding != "vgg" and cfg.contrastive.embedding_checkpoint is None:
        critics.append(f"E_D on {cfg.contrastive.embedding} input (contrastive discriminator loss)")
    if model.generator == BACKBONE:
        network = model.backbone
    else:
        network = model.generator + (f" over {model.backbone}" if model.backbone else "")
    init = "; starts from --init (a PSNR-oriented model)" if model.init_required else ""
    if losses.structure_pixel > 0 or losses.structure_adversarial > 0:
        structure = cfg.structure
        if structure.extractor != "nse":
            extractor = f"ImageNet {structure.extractor}"
        elif structure.random_nse:
            extractor = "a randomly initialised NSE"
        else:
            extractor = f"the NSE of --nse (pretrain-nse --task {structure.nse_task or 'contrastive|jigsaw'})"
        init += f"; structure features from {extractor}"
    if losses.contrastive > 0:
        c = cfg.contrastive
        init += f"; K_P {c.num_positives} sharpened, K_N {c.num_negatives} blurred, L {c.num_layers} layers"
    return (
        f"{network}; {data.batch_size} x {data.lr_patch_size}px LR patches, x{data.scale}; "
        f"{optim.iterations // 1000}k iterations, {schedule}; losses: {weights}"
        + (f"; critics: {', '.join(critics)}" if critics else "")
        + init
    )
