"""`srtk train` configuration: frozen dataclasses grouped by concern. A method is a preset of these (srtk.presets);
the configuration, not the method's name, says what is built and trained.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srtk.config.resolve import as_json_dict
from srtk.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("constant", "multistep", "cosine")
PERCEPTUAL_KINDS = ("vgg", "vgg-srgan", "lpips")  # vgg-srgan: MSE on relu5_4 / 12.75^2 (Ledig et al.)
BEST_METRICS = ("psnr_y", "ssim_y")
BACKBONE = "backbone"  # model.generator: train the backbone itself (psnr, esrgan; the "no branch" ablations)


@dataclass(frozen=True)
class DataConfig:
    """Training patches and the validation set."""

    train: tuple[str, ...] = ("div2k",)  # registry names or folders of HR images (all three papers: DIV2K)
    data_root: Path | None = None  # where registry datasets live (else $SRTK_DATA, then the cache)
    scale: int = 4  # every paper's main setting
    lr_patch_size: int = 32  # paper 000 sec. 5.1 / paper 002 sec. 3.1: 32x32 LR, 128x128 HR
    batch_size: int = 16  # per process; paper 002 sec. 3.1
    augment: bool = True  # flips and 90-degree rotations
    repeat: int = 1  # images are visited `repeat` times per epoch (small sets make short epochs)
    num_workers: int = 4
    cache_dir: Path | None = None  # on-disk cache of the generated LR images
    mixture_of_augmentations: bool = False  # MoA (paper 002 sec. 3.1, after Yoo et al. 2020)
    val_dataset: str | None = None  # registry name or folder; None: no validation
    val_max_images: int | None = None  # validate on the first N images only (quick checks)
    val_tile: int | None = None  # validate in LR tiles of this size (bounded memory), as `srtk evaluate --tile`


@dataclass(frozen=True)
class OptimConfig:
    """Adam for every network and the learning-rate schedule, a function of the iteration."""

    iterations: int = 400_000
    learning_rate: float = 1e-4  # generator
    discriminator_learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)  # paper 000 sec. 5.1, paper 002 sec. 3.1, paper 003 sec. 4.1
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "multistep"  # "constant", "multistep" (x gamma at each milestone), "cosine"
    milestones: tuple[int, ...] = (50_000, 100_000, 200_000, 300_000)
    gamma: float = 0.5
    min_learning_rate: float = 1e-7  # cosine floor
    cosine_period: int | None = None  # cosine restarts every N iterations; None: one period over the run
    # The first N iterations train only the generator's fusion layers (the SPSR release's branch warm-up).
    fusion_warmup: int = 0
    # The SPSR authors' released recipe instead of the paper's (srtk.presets.official_release); default: the paper.
    official_release: bool = False
    ema_decay: float = 0.0  # exponential moving average of the generator; 0 disables (none of the papers)
    grad_clip: float | None = None  # clip the generator's gradient norm; None: off (none of the papers)


@dataclass(frozen=True)
class LossConfig:
    """Weights of every loss term; a zero weight means the term (and any network it needs) is not built."""

    pixel: float = 1.0  # L1 in image space
    pixel_criterion: str = "l1"
    perceptual: float = 0.0
    # "vgg": L1 on VGG19 conv5_4 (ESRGAN's layer, which paper 000 adopts without naming); "vgg-srgan": SRGAN's
    # MSE on relu5_4; "lpips": AlexNet LPIPS (paper 002 sec. 2.4)
    perceptual_kind: str = "vgg"
    adversarial: float = 0.0  # image discriminator, generator side
    adversarial_kind: str = "ragan"  # for VGG-style critics; the U-Net critic always uses its hinge loss
    feature_matching: float = 0.0  # paper 002 eq. 7 (U-Net discriminator only)
    consistency: float = 1.0  # CutMix consistency of the U-Net discriminator (paper 002 eq. 5)
    grad_pixel: float = 0.0  # L1 between M(SR) and M(HR): SPSR eq. 7, ugsr eq. 8, GPSR eq. 15
    grad_pixel_criterion: str = "l1"  # as pixel_criterion; "l1" in the papers, "l2" (MSE) in the SPSR release
    gradient_padding: int = 1  # zero padding of M(.) in the gradient losses and D_GM's input (release: 2)
    grad_adversarial: float = 0.0  # gradient discriminator D_GM, generator side (SPSR eq. 9)
    branch_pixel: float = 0.0  # gradient branch output vs M(HR) (SPSR eq. 10, ugsr eq. 9)
    multi_scale_gradient: float = 0.0  # GPSR eq. 14 (alpha of eq. 16)
    allow_random_perceptual: bool = False  # tests only: VGG/LPIPS with random weights


@dataclass(frozen=True)
class ModelConfig:
    """Which networks are built (registry names + builder options); the ablations are changes of these."""

    # The generator trained: a registry name, or "backbone" for the backbone itself. A generator whose builder
    # takes a `backbone` (spsr-around) wraps model.backbone; the others (ugsr, gpsr) build their own SR network.
    generator: str = BACKBONE
    generator_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. gpsr's use_crfs / use_lrsam
    backbone: str | None = "rrdbnet"  # the SR network a generator wraps; None for generators that build their own
    backbone_options: Mapping[str, Any] = field(default_factory=dict)  # builder kwargs, e.g. num_blocks
    discriminator: str = "vgg-128"  # image critic D_I: a registry name (vgg-128, unet-sn, srgan-critic)
    discriminator_options: Mapping[str, Any] = field(default_factory=dict)
    gradient_discriminator: str = "vgg-128"  # D_GM (paper 000 sec. 3.3)
    gradient_discriminator_options: Mapping[str, Any] = field(default_factory=dict)
    init: Path | None = None  # initialise from a checkpoint (paper 000 sec. 5.1: the PSNR-oriented model)
    init_required: bool = False  # the GAN presets: every paper starts them from the PSNR-oriented model
    from_scratch: bool = False  # train an init_required preset without --init anyway (a warning is logged)
    # Scaled Kaiming initialisation of the generator (ESRGAN's x0.1, which the SPSR release uses); None: PyTorch's.
    kaiming_scale: float | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the networks run; none of it changes the mathematics."""

    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + gradient scaling)
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-identical resume on CPU)
    seed: int = 0
    max_bad_steps: int = 10  # consecutive non-finite steps that stop the run


@dataclass(frozen=True)
class CheckpointConfig:
    """Outputs: checkpoints, logs, validation."""

    out_dir: Path = Path("runs/train")
    every: int = 5_000  # iterations between checkpoints
    validate_every: int = 5_000
    log_every: int = 100
    best_metric: str = "psnr_y"  # validation metric that selects the `best` checkpoint (higher is better)
    resume: bool = False  # continue from out_dir/last.state.pt
    tensorboard: bool = True  # also write TensorBoard scalars to out_dir/tensorboard when tensorboard is installed


@dataclass(frozen=True)
class TrainConfig:
    method: str = "psnr"  # the preset this configuration started from: recorded, never compared (srtk.presets)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if self.data.scale not in (2, 3, 4, 8):
            raise ConfigError(f"data.scale must be 2, 3, 4 or 8, not {self.data.scale}")
        if self.runtime.precision not in PRECISIONS:
            raise ConfigError(f"runtime.precision must be one of {', '.join(PRECISIONS)}")
        if self.optim.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}")
        if self.losses.perceptual_kind not in PERCEPTUAL_KINDS:
            raise ConfigError(f"losses.perceptual_kind must be one of {', '.join(PERCEPTUAL_KINDS)}")
        if self.losses.gradient_padding < 1:
            raise ConfigError(f"losses.gradient_padding must be at least 1, not {self.losses.gradient_padding}")
        if self.checkpoint.best_metric not in BEST_METRICS:
            raise ConfigError(f"checkpoint.best_metric must be one of {', '.join(BEST_METRICS)}")
        positive = {
            "optim.iterations": self.optim.iterations,
            "data.batch_size": self.data.batch_size,
            "data.lr_patch_size": self.data.lr_patch_size,
            "checkpoint.every": self.checkpoint.every,
            "checkpoint.validate_every": self.checkpoint.validate_every,
            "checkpoint.log_every": self.checkpoint.log_every,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, not {value}")
        if not self.data.train:
            raise ConfigError("no training data given (data.train / --data)")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (Paths as strings, tuples as lists)."""
        return as_json_dict(self)
