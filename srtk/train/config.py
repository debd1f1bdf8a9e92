"""`srtk train` configuration: frozen dataclasses grouped by concern, the papers' method presets, and the one
function that applies preset < config file < command-line overrides.

Presets (functions returning a TrainConfig with the paper's numbers):
- "psnr": the PSNR-oriented pre-training every perceptual method starts from (paper 002 sec. 3.1).
- "srgan", "esrgan": the GAN baselines, trained as paper 000 sec. 5.1 trains its comparison models.
- "spsr-g": SPSR with gradient guidance (paper 000 sec. 3, 5.1; paper 001).
- "ugsr": gradient branch + U-Net discriminator + LPIPS (paper 002 sec. 2-3.1).
- "gpsr": GPSR with the gradient-guided loss (paper 003 sec. 3.2.2, 4.1).
"""

import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from srtk.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("constant", "multistep", "cosine")
PERCEPTUAL_KINDS = ("vgg", "lpips")
BEST_METRICS = ("psnr_y", "ssim_y")


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
    ema_decay: float = 0.0  # exponential moving average of the generator; 0 disables (none of the papers)
    grad_clip: float | None = None  # clip the generator's gradient norm; None: off (none of the papers)


@dataclass(frozen=True)
class LossConfig:
    """Weights of every loss term; a zero weight means the term (and any network it needs) is not built."""

    pixel: float = 1.0  # L1 in image space
    pixel_criterion: str = "l1"
    perceptual: float = 0.0
    perceptual_kind: str = "vgg"  # "vgg" (VGG19 conv5_4, paper 000) or "lpips" (AlexNet, paper 002)
    adversarial: float = 0.0  # image discriminator, generator side
    adversarial_kind: str = "ragan"  # for VGG-style critics; the U-Net critic always uses its hinge loss
    feature_matching: float = 0.0  # paper 002 eq. 7 (U-Net discriminator only)
    consistency: float = 1.0  # CutMix consistency of the U-Net discriminator (paper 002 eq. 5)
    grad_pixel: float = 0.0  # L1 between M(SR) and M(HR): SPSR eq. 7, ugsr eq. 8, GPSR eq. 15
    grad_adversarial: float = 0.0  # gradient discriminator D_GM, generator side (SPSR eq. 9)
    branch_pixel: float = 0.0  # gradient branch output vs M(HR) (SPSR eq. 10, ugsr eq. 9)
    multi_scale_gradient: float = 0.0  # GPSR eq. 14 (alpha of eq. 16)
    allow_random_perceptual: bool = False  # tests only: VGG/LPIPS with random weights


@dataclass(frozen=True)
class ModelConfig:
    """Which networks the method builds (registry names) and the component switches of the ablations."""

    backbone: str = "rrdbnet"  # the SR network / SR branch (registry name)
    backbone_options: Mapping[str, Any] = field(default_factory=dict)  # builder kwargs, e.g. num_blocks
    gradient_branch: bool = True  # SPSR/ugsr gradient branch, GPSR GGS; False: the plain backbone
    crfs: bool = True  # GPSR: contextual residual fusion (Table 3)
    lrsam: bool = True  # GPSR: large-receptive-field spatial attention (Table 3)
    discriminator: str = "vgg-128"  # image critic: "vgg-128" (VGG-style) or "unet-sn" (paper 002)
    discriminator_options: Mapping[str, Any] = field(default_factory=dict)
    gradient_discriminator: str = "vgg-128"  # D_GM (paper 000 sec. 3.3)
    gradient_discriminator_options: Mapping[str, Any] = field(default_factory=dict)
    init: Path | None = None  # initialise from a checkpoint (paper 000 sec. 5.1: the PSNR-oriented model)


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
    method: str = "psnr"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if self.method not in PRESETS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of: {', '.join(PRESETS)}")
        if self.data.scale not in (2, 3, 4, 8):
            raise ConfigError(f"data.scale must be 2, 3, 4 or 8, not {self.data.scale}")
        if self.runtime.precision not in PRECISIONS:
            raise ConfigError(f"runtime.precision must be one of {', '.join(PRECISIONS)}")
        if self.optim.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}")
        if self.losses.perceptual_kind not in PERCEPTUAL_KINDS:
            raise ConfigError(f"losses.perceptual_kind must be one of {', '.join(PERCEPTUAL_KINDS)}")
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
        return json.loads(json.dumps(asdict(self), default=str))


# ---------------------------------------------------------------------------------------------- presets

SPSR_MILESTONES = (50_000, 100_000, 200_000, 300_000)  # paper 000 sec. 5.1; paper 002 sec. 3.1


def psnr_preset() -> TrainConfig:
    """PSNR-oriented pre-training with L1 (paper 002 sec. 3.1: lr 2e-4, cosine restarts every 5e5 iterations
    down to 1e-7; 16 patches of 32x32 LR). The total length is not given: two periods, as ESRGAN's 1e6."""
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
        model=ModelConfig(backbone="rrdbnet"),
    )


def esrgan_preset() -> TrainConfig:
    """ESRGAN as paper 000 sec. 5.1 trains its models: beta_I 0.01, gamma_I 0.005 ("we follow the settings
    in [60]"), VGG19 perceptual loss weight 1, RaGAN with a VGG-style critic, Adam 1e-4 halved at
    50k/100k/200k/300k, 15 patches of 32x32 LR, initialised from the PSNR model. 400k iterations (not stated
    in paper 000; paper 002 trains "about 400k", as ESRGAN)."""
    return TrainConfig(
        method="esrgan",
        data=DataConfig(lr_patch_size=32, batch_size=15),
        optim=OptimConfig(iterations=400_000, milestones=SPSR_MILESTONES, gamma=0.5),
        losses=LossConfig(
            pixel=0.01, perceptual=1.0, perceptual_kind="vgg", adversarial=0.005, adversarial_kind="ragan"
        ),
        model=ModelConfig(backbone="rrdbnet", discriminator="vgg-128"),
    )


def srgan_preset() -> TrainConfig:
    """SRGAN (Ledig et al. 2017, sec. 3): SRResNet, VGG content loss, standard GAN loss weighted 1e-3,
    16 patches of 24x24 LR (96x96 HR), lr 1e-4 for 1e5 iterations then 1e-5 for 1e5."""
    return TrainConfig(
        method="srgan",
        data=DataConfig(lr_patch_size=24, batch_size=16),
        optim=OptimConfig(iterations=200_000, milestones=(100_000,), gamma=0.1),
        losses=LossConfig(pixel=0.0, perceptual=1.0, adversarial=1e-3, adversarial_kind="vanilla"),
        model=ModelConfig(
            backbone="srresnet",
            discriminator="vgg-128",
            discriminator_options={"num_stages": 3},  # 96 px patches: 96 / 2^3 = 12, a whole map for the FC head
        ),
    )


def spsr_g_preset() -> TrainConfig:
    """SPSR-G (paper 000 sec. 3.3 eq. 10 and sec. 5.1): beta_I 0.01, gamma_I 0.005, beta_GM 0.01,
    gamma_GM 0.005, beta_GB 0.5, perceptual 1; 15 patches of 32x32 LR; Adam (0.9, 0.999, 1e-8), lr 1e-4 for
    G and both D, halved at 50k/100k/200k/300k; initialised from the PSNR-oriented RRDB model (--init)."""
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
        model=ModelConfig(backbone="rrdbnet", discriminator="vgg-128", gradient_discriminator="vgg-128"),
    )


def ugsr_preset() -> TrainConfig:
    """ugsr (paper 002 sec. 3.1, eq. 13): lambda_Adv 0.005, lambda_Per (LPIPS) 0.001, lambda_Pix 0.01,
    lambda_GM 0.01, lambda_GB 0.5; feature matching unweighted in eq. 13; 16 patches of 32x32 LR, lr 1e-4
    halved at 50k/100k/200k/300k, about 400k iterations, MoA augmentation.

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
        model=ModelConfig(backbone="rrdbnet", discriminator="unet-sn", gradient_discriminator="vgg-128"),
    )


def gpsr_preset() -> TrainConfig:
    """GPSR (paper 003 sec. 3.2.2 and 4.1): L_GP = L1 + 0.1 L_grad^pix + 0.001 L_SG^pix; 8 patches of 48x48
    LR; Adam (0.9, 0.999, 1e-8), lr 1e-4 cosine-annealed to 1e-7 over 1e6 iterations."""
    return TrainConfig(
        method="gpsr",
        data=DataConfig(lr_patch_size=48, batch_size=8),
        optim=OptimConfig(
            iterations=1_000_000, learning_rate=1e-4, schedule="cosine", min_learning_rate=1e-7, cosine_period=None
        ),
        losses=LossConfig(pixel=1.0, multi_scale_gradient=0.1, grad_pixel=0.001),
        model=ModelConfig(backbone="gpsr"),
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "psnr": psnr_preset,
    "srgan": srgan_preset,
    "esrgan": esrgan_preset,
    "spsr-g": spsr_g_preset,
    "ugsr": ugsr_preset,
    "gpsr": gpsr_preset,
}


# ------------------------------------------------------------------------------- files and overrides


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file of nested sections, e.g. {"optim": {"learning_rate": 2e-4}}."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config files must be .yaml, .yml or .toml")
    except (ValueError, yaml.YAMLError) as error:  # tomllib.TOMLDecodeError is a ValueError
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"{path}: cannot parse ({reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.learning_rate=2e-4' -> ('optim.learning_rate', 0.0002); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optim.learning_rate=2e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def resolve_config(
    method: str,
    *,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The one place precedence is applied: method preset < config file (nested) < CLI overrides (dotted keys).

    A config file may also name the method (top-level `method`); the CLI's `method` wins when given.
    Unknown sections or keys raise ConfigError naming them.
    """
    file = dict(file or {})
    method = method or file.get("method") or "psnr"
    if method not in PRESETS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(PRESETS)}")
    tree = _to_tree(PRESETS[method]())
    file.pop("method", None)
    _merge(tree, file, prefix="")
    for dotted, value in (overrides or {}).items():
        *sections, key = dotted.split(".")
        _merge(tree, _nest(sections, key, value), prefix="")
    tree["method"] = method
    return _build(TrainConfig, tree, prefix="")


def _nest(sections: list[str], key: str, value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {key: value}
    for section in reversed(sections):
        nested = {section: nested}
    return nested


def _to_tree(cfg: Any) -> dict[str, Any]:
    """A config dataclass as nested dicts of its (unconverted) field values."""
    return {
        f.name: _to_tree(getattr(cfg, f.name)) if is_dataclass(getattr(cfg, f.name)) else getattr(cfg, f.name)
        for f in fields(cfg)
    }


def _merge(tree: dict[str, Any], changes: Mapping[str, Any], *, prefix: str) -> None:
    for key, value in changes.items():
        name = f"{prefix}{key}"
        if key not in tree:
            valid = ", ".join(f"{prefix}{k}" for k in tree)
            raise ConfigError(f"unknown option {name!r}; valid here: {valid}")
        if isinstance(tree[key], dict) and not _is_options(name):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} is a section; give its keys, e.g. {name}.KEY=VALUE")
            _merge(tree[key], value, prefix=f"{name}.")
        elif isinstance(tree[key], Mapping) and _is_options(name) and isinstance(value, Mapping):
            tree[key] = {**tree[key], **value}  # builder kwargs: free-form, merged key by key
        else:
            tree[key] = value


def _is_options(name: str) -> bool:
    return name.endswith("_options")


def _build(cls: type, tree: Mapping[str, Any], *, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        name = f"{prefix}{f.name}"
        value = tree[f.name]
        kind = hints[f.name]
        if is_dataclass(kind):
            kwargs[f.name] = _build(kind, value, prefix=f"{name}.")
        else:
            kwargs[f.name] = _coerce(value, kind, name)
    return cls(**kwargs)


def _coerce(value: Any, kind: Any, name: str) -> Any:
    """`value` (from YAML/TOML/CLI) as the field's declared type, or a ConfigError naming the option."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if kind is Any:
        return value
    if origin is tuple:
        items = [value] if isinstance(value, (str, int, float)) else value
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], name) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, name) for v, a in zip(items, args, strict=True))
    if origin is not None and issubclass(origin, Mapping) or kind is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of builder options, got {value!r}")
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if number != int(number):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        return Path(value).expanduser()
    raise ConfigError(f"{name}: unsupported option type {kind}")


def describe_presets() -> str:
    """One paragraph per method preset with the papers' numbers it carries (for `srtk train --help`)."""
    lines = []
    for name, preset in PRESETS.items():
        cfg = preset()
        optim, data, model = cfg.optim, cfg.data, cfg.model
        if optim.schedule == "multistep":
            steps = "/".join(f"{m // 1000}k" for m in optim.milestones)
            schedule = f"lr {optim.learning_rate:g} x{optim.gamma:g} at {steps}"
        elif optim.schedule == "cosine":
            period = f" restarting every {optim.cosine_period // 1000}k" if optim.cosine_period else ""
            schedule = f"cosine lr {optim.learning_rate:g} -> {optim.min_learning_rate:g}{period}"
        else:
            schedule = f"constant lr {optim.learning_rate:g}"
        weights = ", ".join(
            f"{f.name} {getattr(cfg.losses, f.name):g}"
            for f in fields(cfg.losses)
            if isinstance(getattr(cfg.losses, f.name), float)
            and getattr(cfg.losses, f.name) > 0
            and f.name != "consistency"
        )
        critics = []
        if cfg.losses.adversarial > 0:
            kind = "hinge + CutMix" if model.discriminator == "unet-sn" else cfg.losses.adversarial_kind
            critics.append(f"D_I {model.discriminator} ({kind})")
        if cfg.losses.grad_adversarial > 0:
            critics.append(f"D_GM {model.gradient_discriminator}")
        lines.append(
            f"{name}: {model.backbone}; {data.batch_size} x {data.lr_patch_size}px LR patches, x{data.scale}; "
            f"{optim.iterations // 1000}k iterations, {schedule}; losses: {weights}"
            + (f"; critics: {', '.join(critics)}" if critics else "")
        )
    return "\n\n".join(lines)
