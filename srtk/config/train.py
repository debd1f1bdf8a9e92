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
STRUCTURE_EXTRACTORS = ("nse", "vgg19", "resnet18")  # paper 000 sec. 4.1 and Appendix C
PRETEXT_TASKS = ("contrastive", "jigsaw")  # paper 000 sec. 4.2
SAMPLING_STRATEGIES = ("h", "v", "c")  # paper 000 Appendix B, Fig. 13
EMBEDDING_SPACES = ("haar", "rgb", "fft", "vgg")  # paper 004 Table IV configs 3, 2, 5 and 1


@dataclass(frozen=True)
class DataConfig:
    """Training patches and the validation set."""

    train: tuple[str, ...] = ("div2k",)  # registry names or folders of HR images (all three papers: DIV2K)
    data_root: Path | None = None  # where registry datasets live (else $SRTK_DATA, then the cache)
    scale: int = 4  # every paper's main setting
    lr_patch_size: int = 32  # paper 000 sec. 5.1 / paper 002 sec. 3.1: 32x32 LR, 128x128 HR
    batch_size: int = 16  # per process; paper 002 sec. 3.1
    augment: bool = True  # flips and 90-degree rotations
    skip_unusable_images: bool = False  # leave out unreadable / too small images with a warning (else an error)
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
    # Multiply the learning rate by gamma every N epochs of the training data instead of at `milestones`
    # (paper 000 sec. 5.1, the NSE's schedules); None: milestones in iterations.
    step_epochs: int | None = None
    min_learning_rate: float = 1e-7  # cosine floor
    cosine_period: int | None = None  # cosine restarts every N iterations; None: one period over the run
    # The first N iterations train only the generator's fusion layers (the SPSR release's branch warm-up).
    fusion_warmup: int = 0
    # The first N iterations train only the critics, on the generator's outputs: a GAN fine-tuned from a PSNR model
    # then starts against a critic that already tells SR from HR, instead of one whose gradients are noise (none of
    # the papers; their 4e5 iterations leave the first ones behind).
    critic_warmup: int = 0
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
    structure_pixel: float = 0.0  # beta_SF: L1 between F(SR) and F(HR), structure features (paper 000 eq. 14, 16)
    structure_adversarial: float = 0.0  # gamma_SF: D_SF on structure features, generator side (paper 000 eq. 15)
    contrastive: float = 0.0  # alpha: PCL's contrastive loss on E_D features (paper 004 eq. 10, 12)
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
class StructureConfig:
    """The structure extractor F of the structure loss and its critic D_SF (paper 000 sec. 4.3, Appendix C)."""

    extractor: str = "nse"  # "nse" (a pretrain-nse checkpoint), or ImageNet "vgg19" / "resnet18" (Appendix C)
    nse: Path | None = None  # the NSE checkpoint (`--nse`): final.safetensors of `srtk pretrain-nse`
    random_nse: bool = False  # SPSR-R: a randomly initialised NSE instead of a checkpoint (Appendix C)
    nse_task: str | None = None  # the pretext task the NSE must come from (spsr-p: contrastive); None: any
    discriminator: str = "spsr-structure"  # D_SF (paper 000 sec. 4.3)
    discriminator_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContrastiveConfig:
    """PCL's samples, embedding network and contrastive loss (paper 004 sec. III-B to III-D)."""

    num_positives: int = 4  # K_P (sec. III-B)
    num_negatives: int = 4  # K_N = K_P = 4 (sec. III-B)
    blur_kernel_sizes: tuple[int, ...] = (3, 5, 7, 9, 11)  # "uniformly sampled from {3, 5, 7, 9, 11}" (sec. III-B)
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # "kernel width uniformly from [0.3, 1.5]" (sec. III-B)
    # Strength a of Sharpen (eq. 5), uniform per image and positive: I + a (I - smooth(I)), PIL/kornia "sharpness"
    # with factor 1 + a. reading: no kernel or range in the paper; the authors' release draws factors in [0.5, 3],
    # whose part below 1 blurs, so srtk keeps its sharpening part, a in [0, 2] (srtk.losses.contrastive_samples).
    sharpen_amount: tuple[float, float] = (0.0, 2.0)
    temperature: float = 1.0  # tau of eq. 8. reading: not in the paper; the authors' release uses raw cosines (1)
    num_layers: int = 4  # L: "the first 4 intermediate layers" (sec. III-D)
    embedding: str = "haar"  # E_D's input: Haar LH/HL/HH (default), RGB, FFT, or a fixed ImageNet VGG19 (Table IV)
    embedding_options: Mapping[str, Any] = field(default_factory=dict)  # EmbeddingNetwork kwargs
    embedding_checkpoint: Path | None = None  # PCL-F: a fixed pre-trained E_D (`--embedding`, Table V)
    # HR is always a positive and the bicubic-upsampled LR always a negative; these add the generated samples.
    # reading: Table IV config 4 ("no Aug") = Table VI's first row (same numbers): HR vs LR only, as in the release.
    generate_samples: bool = True  # Table IV config 4 turns the sharpened/blurred sample generation off
    use_positives: bool = True  # Table VI "Pos": the K_P sharpened positives
    use_negatives: bool = True  # Table VI "Neg": the K_N blurred negatives


@dataclass(frozen=True)
class PretextConfig:
    """Self-supervised training of the neural structure extractor (`srtk pretrain-nse`, paper 000 sec. 4.2)."""

    task: str | None = None  # "contrastive" or "jigsaw"; None: an SR method, not a pretext run
    sampling: str = "h"  # contrastive context layout h / v / c (Appendix B, Fig. 13)
    temperature: float = 64.0  # tau of eq. 12 (sec. 5.1)
    targets_per_image: int = 64  # anchors drawn per patch per step (each against all its negatives)
    nse: Path | None = None  # start the extractor from this NSE checkpoint (the head starts fresh)
    freeze_extractor: bool = False  # re-fit only the head on a frozen extractor (the evaluation of Appendix B.2)
    head_options: Mapping[str, Any] = field(default_factory=dict)  # ContrastivePredictor / JigsawClassifier kwargs
    extractor_options: Mapping[str, Any] = field(default_factory=dict)  # NeuralStructureExtractor kwargs


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
    overwrite: bool = False  # replace the run already in out_dir (else it is an error: two runs never mix)
    tensorboard: bool = True  # also write TensorBoard scalars to out_dir/tensorboard when tensorboard is installed


@dataclass(frozen=True)
class TrainConfig:
    method: str = "psnr"  # the preset this configuration started from: recorded, never compared (srtk.presets)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    structure: StructureConfig = field(default_factory=StructureConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    pretext: PretextConfig = field(default_factory=PretextConfig)
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
        choices = {
            "structure.extractor": (self.structure.extractor, STRUCTURE_EXTRACTORS),
            "contrastive.embedding": (self.contrastive.embedding, EMBEDDING_SPACES),
            "pretext.sampling": (self.pretext.sampling, SAMPLING_STRATEGIES),
        }
        if self.structure.nse_task is not None:
            choices["structure.nse_task"] = (self.structure.nse_task, PRETEXT_TASKS)
        if self.pretext.task is not None:
            choices["pretext.task"] = (self.pretext.task, PRETEXT_TASKS)
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
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
        if not 0 <= self.optim.critic_warmup < self.optim.iterations:
            raise ConfigError(
                f"optim.critic_warmup must be at least 0 and below optim.iterations ({self.optim.iterations}), "
                f"not {self.optim.critic_warmup}"
            )
        if not self.data.train:
            raise ConfigError("no training data given (data.train / --data)")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (Paths as strings, tuples as lists)."""
        return as_json_dict(self)
