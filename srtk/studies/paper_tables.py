"""The papers' ablation tables as data: each study names its variants (a preset + config overrides, resolved as
`srtk train` resolves them), the shared first steps they need (a PSNR-oriented model to start from, the NSEs),
and the numbers the paper published for each variant, so that `srtk ablate` prints them beside its own.

Papers (shared/papers/README.md): 000 SPSR journal (Tables 2-7), 002 ugsr (Table 2), 003 GPSR (Tables 2-3),
004 PCL (Tables IV-VII). Numbers are transcribed from the text copies; where the extraction garbled a table, the
reading is stated beside it. Presets are named here as data (which preset a variant trains), never compared.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Paper column name -> srtk result key (srtk.evaluate); None: a metric srtk does not compute.
# PI (Blau et al. 2018) = ((10 - Ma) + NIQE) / 2 needs Ma et al.'s learned score, which srtk does not implement.
METRIC_KEYS: dict[str, str | None] = {"PSNR": "psnr_y", "SSIM": "ssim_y", "LPIPS": "lpips", "NIQE": "niqe", "PI": None}
# srtk.evaluate --metrics names for the keys above
EVAL_METRICS: dict[str, str] = {"psnr_y": "psnr_y", "ssim_y": "ssim_y", "lpips": "lpips", "niqe": "niqe"}

ROWS, COLUMNS = "rows", "columns"  # the paper's layout: one row per variant, or one column per variant


@dataclass(frozen=True)
class Step:
    """A shared first step of a study, trained once into DIR/NAME: a PSNR-oriented model or an NSE."""

    name: str
    about: str
    method: str | None = None  # a training preset (srtk train --method)
    pretext: str | None = None  # or a pretext task (srtk pretrain-nse --task)
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One row (or column) of a paper's table: what is trained, and what the paper measured."""

    name: str  # folder name under the study's output folder
    label: str  # the paper's label
    method: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    init: str | None = None  # a step or variant whose final.safetensors initialises the generator (model.init)
    nse: str | None = None  # a step whose final.safetensors is the structure extractor (structure.nse)
    needs_embedding: bool = False  # a fixed pre-trained E_D given by `srtk ablate --embedding` (PCL-F)
    marks: Mapping[str, str] = field(default_factory=dict)  # the paper's check-mark rows/columns
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # dataset -> paper metric -> value


@dataclass(frozen=True)
class Study:
    name: str
    source: str  # paper and table
    caption: str
    datasets: tuple[str, ...]  # srtk benchmark names, in the paper's order
    metrics: tuple[str, ...]  # the paper's metric columns, in its order
    variants: tuple[Variant, ...]
    steps: tuple[Step, ...] = ()
    layout: str = ROWS
    notes: tuple[str, ...] = ()  # readings and departures, printed above the table


def _by_dataset(datasets: tuple[str, ...], metrics: tuple[str, ...], values: tuple[float, ...]) -> dict:
    """{dataset: {metric: value}} of a table row read left to right (datasets outer, metrics inner)."""
    assert len(values) == len(datasets) * len(metrics), (datasets, metrics, values)  # a transcription slip
    it = iter(values)
    return {d: {m: next(it) for m in metrics} for d in datasets}


def _columns(datasets: tuple[str, ...], metrics: tuple[str, ...], rows: tuple[tuple[float, ...], ...]) -> list:
    """[{dataset: {metric: value}} per variant column] of a transposed table (rows: dataset outer, metric inner)."""
    assert len(rows) == len(datasets) * len(metrics), (datasets, metrics)  # a transcription slip
    out: list[dict[str, dict[str, float]]] = [{} for _ in rows[0]]
    for index, row in enumerate(rows):
        dataset, metric = datasets[index // len(metrics)], metrics[index % len(metrics)]
        assert len(row) == len(out), row
        for column, value in enumerate(row):
            out[column].setdefault(dataset, {})[metric] = value
    return out


PSNR_INIT = Step(
    "psnr-init",
    "the PSNR-oriented model every GAN variant starts from (srtk train --method psnr; paper 000 sec. 5.1)",
    method="psnr",
)
NSE_CONTRASTIVE = Step(
    "nse-contrastive",
    "the NSE of SPSR-P (srtk pretrain-nse --task contrastive, sampling h; paper 000 sec. 4.2)",
    pretext="contrastive",
)
NSE_JIGSAW = Step("nse-jigsaw", "the NSE of SPSR-J (srtk pretrain-nse --task jigsaw)", pretext="jigsaw")

# ------------------------------------------------------------------------------------------------ paper 000

LPS = ("LPIPS", "PSNR", "SSIM")
SET14_BSD_URBAN = ("set14", "bsd100", "urban100")
FIVE_SETS = ("set5", "set14", "bsd100", "general100", "urban100")
NO_GRADIENT_BRANCH = {"model.generator": "backbone", "losses.branch_pixel": 0.0}


def _row(*values: float) -> dict:
    return _by_dataset(SET14_BSD_URBAN, LPS, values)


# Paper 000 Table 2 ("Comparison of SPSR-G models with different components"): Set14, BSD100, Urban100 x
# LPIPS, PSNR, SSIM. GL = the gradient loss on the SR image (pixel + adversarial), GB = the gradient branch.
SPSR_G_COMPONENTS = Study(
    name="spsr-g-components",
    source="paper 000 (SPSR journal) Table 2",
    caption="Comparison of SPSR-G models with different components",
    datasets=SET14_BSD_URBAN,
    metrics=LPS,
    steps=(PSNR_INIT,),
    variants=(
        Variant("esrgan", "ESRGAN [60]", "esrgan", init="psnr-init",
                paper=_row(0.1329, 26.276, 0.778, 0.1614, 25.317, 0.651, 0.1229, 24.360, 0.945)),
        # "the same architecture as ESRGAN without the gradient branch and is trained by the full loss"
        Variant("wo-gb", "SPSR-G w/o GB", "spsr-g", NO_GRADIENT_BRANCH, init="psnr-init",
                paper=_row(0.1320, 26.027, 0.785, 0.1604, 25.376, 0.659, 0.1188, 23.939, 0.940)),
        Variant("wo-gl", "SPSR-G w/o GL", "spsr-g", {"losses.grad_pixel": 0.0, "losses.grad_adversarial": 0.0},
                init="psnr-init", paper=_row(0.1335, 26.547, 0.794, 0.1611, 25.214, 0.647, 0.1195, 24.309, 0.942)),
        Variant("wo-agl", "SPSR-G w/o AGL", "spsr-g", {"losses.grad_adversarial": 0.0}, init="psnr-init",
                paper=_row(0.1364, 26.603, 0.789, 0.1624, 25.573, 0.657, 0.1194, 24.827, 0.948)),
        Variant("wo-pgl", "SPSR-G w/o PGL", "spsr-g", {"losses.grad_pixel": 0.0}, init="psnr-init",
                paper=_row(0.1341, 26.341, 0.783, 0.1619, 25.449, 0.654, 0.1222, 24.515, 0.943)),
        Variant("spsr-g", "SPSR-G", "spsr-g", init="psnr-init",
                paper=_row(0.1318, 26.640, 0.793, 0.1611, 25.505, 0.658, 0.1184, 24.799, 0.948)),
    ),
    notes=("ESRGAN is trained here by srtk's esrgan preset (SPSR-G's image-space settings); the paper's row is "
           "ESRGAN's published model.",),
)  # fmt: skip

# Paper 000 Table 3 (component analysis of SPSR-P): ASL / PSL = adversarial / pixelwise structure loss,
# GB = gradient branch, SL = both structure losses.
SPSR_P_COMPONENTS = Study(
    name="spsr-p-components",
    source="paper 000 (SPSR journal) Table 3",
    caption="Comparison of SPSR-P models with different components",
    datasets=SET14_BSD_URBAN,
    metrics=LPS,
    steps=(PSNR_INIT, NSE_CONTRASTIVE),
    variants=(
        Variant("spsr-p", "SPSR-P", "spsr-p", init="psnr-init", nse="nse-contrastive",
                paper=_row(0.1257, 27.067, 0.8076, 0.1561, 26.048, 0.6818, 0.1146, 25.228, 0.9531)),
        Variant("wo-asl", "SPSR-P w/o ASL", "spsr-p", {"losses.structure_adversarial": 0.0}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1270, 27.576, 0.8232, 0.1675, 26.564, 0.6982, 0.1171, 25.585, 0.9567)),
        Variant("wo-psl", "SPSR-P w/o PSL", "spsr-p", {"losses.structure_pixel": 0.0}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1269, 26.924, 0.8067, 0.1535, 25.918, 0.6754, 0.1140, 25.163, 0.9531)),
        Variant("wo-gb", "SPSR-P w/o GB", "spsr-p", NO_GRADIENT_BRANCH, init="psnr-init", nse="nse-contrastive",
                paper=_row(0.1261, 27.064, 0.8091, 0.1591, 26.079, 0.6821, 0.1173, 25.131, 0.9526)),
        # Without both structure losses no extractor is read: the NSE is not needed.
        Variant("wo-sl", "SPSR-P w/o SL", "spsr-p",
                {"losses.structure_pixel": 0.0, "losses.structure_adversarial": 0.0}, init="psnr-init",
                paper=_row(0.1332, 27.354, 0.8175, 0.1765, 26.458, 0.6949, 0.1221, 25.383, 0.9544)),
    ),
)  # fmt: skip

# Paper 000 Table 4 (parameter sensitivity of SPSR-P): gamma = gamma_SR^SF (structure_adversarial, 0.1 in
# SPSR-P), beta = beta_SR^SF (structure_pixel, 1e-7), one changed at a time.
SPSR_P_SENSITIVITY = Study(
    name="spsr-p-sensitivity",
    source="paper 000 (SPSR journal) Table 4",
    caption="Parameter sensitivity of SPSR-P (gamma = gamma_SR^SF, beta = beta_SR^SF)",
    datasets=SET14_BSD_URBAN,
    metrics=LPS,
    steps=(PSNR_INIT, NSE_CONTRASTIVE),
    variants=(
        Variant("gamma-1", "gamma = 1", "spsr-p", {"losses.structure_adversarial": 1.0}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1280, 26.978, 0.8063, 0.1544, 25.849, 0.6743, 0.1172, 25.182, 0.9523)),
        Variant("gamma-1e-2", "gamma = 1e-2", "spsr-p", {"losses.structure_adversarial": 1e-2}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1251, 26.870, 0.8054, 0.1517, 25.815, 0.6720, 0.1158, 25.016, 0.9515)),
        Variant("gamma-1e-3", "gamma = 1e-3", "spsr-p", {"losses.structure_adversarial": 1e-3}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1253, 26.890, 0.8034, 0.1498, 25.817, 0.6723, 0.1126, 25.107, 0.9526)),
        Variant("beta-1e-5", "beta = 1e-5", "spsr-p", {"losses.structure_pixel": 1e-5}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1303, 27.145, 0.8105, 0.1605, 26.026, 0.6815, 0.1187, 25.197, 0.9533)),
        Variant("beta-1e-6", "beta = 1e-6", "spsr-p", {"losses.structure_pixel": 1e-6}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1278, 26.936, 0.8071, 0.1555, 25.912, 0.6782, 0.1162, 25.166, 0.9533)),
        Variant("beta-1e-8", "beta = 1e-8", "spsr-p", {"losses.structure_pixel": 1e-8}, init="psnr-init",
                nse="nse-contrastive",
                paper=_row(0.1298, 27.072, 0.8092, 0.1612, 26.132, 0.6816, 0.1178, 25.216, 0.9530)),
        Variant("spsr-p", "SPSR-P", "spsr-p", init="psnr-init", nse="nse-contrastive",
                paper=_row(0.1257, 27.067, 0.8076, 0.1561, 26.048, 0.6818, 0.1146, 25.228, 0.9531)),
    ),
)  # fmt: skip

# Paper 000 Table 5 (Appendix B.1): SPSR-P with NSEs trained with the sampling strategies h / v / c (Fig. 13).
# Rows: dataset x metric (the extraction garbled the dataset names: "C at F" Set5, "S at 14" Set14, "PCD100"
# BSD100, "Com arra1100" General100); columns: SPSR-P-h, SPSR-P-v, SPSR-P-c.
_TABLE5 = _columns(FIVE_SETS, LPS, (
    (0.0591, 0.0646, 0.0613), (31.036, 31.027, 30.907), (0.8772, 0.8821, 0.8772),
    (0.1257, 0.1274, 0.1269), (27.067, 27.064, 26.944), (0.8076, 0.8092, 0.8065),
    (0.1561, 0.1557, 0.1548), (26.048, 26.048, 25.908), (0.6818, 0.6809, 0.6765),
    (0.0820, 0.0822, 0.0817), (30.101, 30.113, 29.943), (0.8696, 0.8705, 0.8685),
    (0.1146, 0.1153, 0.1166), (25.228, 25.213, 25.143), (0.9531, 0.9534, 0.9523),
))  # fmt: skip
SPSR_SAMPLING = Study(
    name="spsr-sampling",
    source="paper 000 (SPSR journal) Table 5",
    caption="SPSR-P with NSEs trained by contrastive prediction under different sampling strategies",
    datasets=FIVE_SETS,
    metrics=LPS,
    layout=COLUMNS,
    steps=(
        PSNR_INIT,
        *(Step(f"nse-{s}", f"the NSE F_P-{s} (srtk pretrain-nse --task contrastive --sampling {s})",
               pretext="contrastive", overrides={"pretext.sampling": s}) for s in "hvc"),
    ),
    variants=tuple(
        Variant(f"spsr-p-{s}", f"SPSR-P-{s}", "spsr-p", init="psnr-init", nse=f"nse-{s}", paper=_TABLE5[i])
        for i, s in enumerate("hvc")
    ),
)  # fmt: skip

# Paper 000 Table 6 (Appendix C): the structure extractor replaced by ImageNet VGG19 / ResNet18, a random NSE,
# the jigsaw NSE and the contrastive one. Rows dataset x metric; columns SPSR-VGG, -ResNet, -R, -J, -P.
# The extraction reads SPSR-R's Set5 LPIPS "0.06629" and Urban100 PSNR "24.67" (transcribed as printed).
_TABLE6 = _columns(FIVE_SETS, LPS, (
    (0.0696, 0.0743, 0.06629, 0.0614, 0.0591), (30.273, 30.501, 30.751, 30.995, 31.036),
    (0.8714, 0.8721, 0.8706, 0.8773, 0.8772),
    (0.1438, 0.1489, 0.1408, 0.1272, 0.1257), (26.658, 26.894, 26.672, 27.027, 27.067),
    (0.8037, 0.8098, 0.7983, 0.8073, 0.8076),
    (0.1746, 0.1765, 0.1631, 0.1544, 0.1561), (26.005, 25.966, 25.914, 25.975, 26.048),
    (0.6805, 0.6801, 0.6737, 0.6788, 0.6818),
    (0.0896, 0.0989, 0.0874, 0.0830, 0.0820), (29.409, 29.518, 29.625, 30.003, 30.101),
    (0.8645, 0.8677, 0.8636, 0.8680, 0.8696),
    (0.1359, 0.1271, 0.1231, 0.1171, 0.1146), (24.652, 25.056, 24.67, 25.099, 25.228),
    (0.9483, 0.9517, 0.9481, 0.9517, 0.9531),
))  # fmt: skip
SPSR_NSE = Study(
    name="spsr-nse",
    source="paper 000 (SPSR journal) Table 6",
    caption="SPSR trained with different structure extractors",
    datasets=FIVE_SETS,
    metrics=LPS,
    layout=COLUMNS,
    steps=(PSNR_INIT, NSE_JIGSAW, NSE_CONTRASTIVE),
    variants=(
        Variant("spsr-vgg", "SPSR-VGG", "spsr-vgg", init="psnr-init", paper=_TABLE6[0]),
        Variant("spsr-resnet", "SPSR-ResNet", "spsr-resnet", init="psnr-init", paper=_TABLE6[1]),
        Variant("spsr-r", "SPSR-R", "spsr-r", init="psnr-init", paper=_TABLE6[2]),
        Variant("spsr-j", "SPSR-J", "spsr-j", init="psnr-init", nse="nse-jigsaw", paper=_TABLE6[3]),
        Variant("spsr-p", "SPSR-P", "spsr-p", init="psnr-init", nse="nse-contrastive", paper=_TABLE6[4]),
    ),
)

# Paper 000 Table 7 (Appendix D): EDSR and SRResNet as the SR network: the PSNR model, then (initialised from
# it) the GAN, the gradient loss (-G) and the structure loss (-P). reading: "EDSR" is the baseline EDSR
# (16 blocks, 64 features; its published x4 Set5 32.09 is nearest the table's 32.074); SRResNet is BN-free, as in
# the ESRGAN framework the paper trains in. "-GAN" = the perceptual + adversarial losses = srtk's esrgan preset.
_TABLE7 = _columns(FIVE_SETS, LPS, (
    (0.1726, 0.0808, 0.0794, 0.0787, 0.1724, 0.0882, 0.0783, 0.0731),
    (32.074, 29.614, 29.536, 30.32, 32.161, 29.168, 29.632, 30.410),
    (0.9054, 0.8602, 0.8556, 0.8693, 0.9065, 0.8613, 0.8693, 0.8738),
    (0.2832, 0.1473, 0.1425, 0.1539, 0.2837, 0.1663, 0.1418, 0.1377),
    (28.565, 26.321, 26.337, 26.881, 28.589, 26.171, 26.243, 26.781),
    (0.8510, 0.7898, 0.7894, 0.8054, 0.8516, 0.7841, 0.7818, 0.8004),
    (0.3712, 0.1841, 0.1823, 0.1850, 0.3705, 0.1980, 0.1816, 0.1749),
    (27.561, 25.182, 25.218, 26.062, 27.579, 25.459, 25.475, 25.862),
    (0.7349, 0.6497, 0.6531, 0.6768, 0.7358, 0.6485, 0.6502, 0.678),
    (0.1785, 0.1011, 0.1008, 0.0982, 0.1788, 0.1055, 0.0993, 0.0944),
    (31.384, 29.003, 28.829, 29.763, 31.450, 28.575, 29.027, 29.716),
    (0.8948, 0.8486, 0.8458, 0.8642, 0.8956, 0.8541, 0.8467, 0.8618),
    (0.2281, 0.1492, 0.1482, 0.1489, 0.2273, 0.1551, 0.1456, 0.1399),
    (26.032, 23.865, 23.930, 24.574, 26.109, 24.397, 24.009, 24.606),
    (0.9603, 0.9359, 0.9368, 0.9468, 0.9602, 0.9381, 0.9374, 0.9442),
))  # fmt: skip


def _backbone_variants(backbone: str, label: str, first_column: int) -> tuple[Variant, ...]:
    on = {"model.backbone": backbone}
    psnr = f"{backbone}-psnr"
    return (
        Variant(psnr, label, "psnr", on, paper=_TABLE7[first_column]),
        Variant(f"{backbone}-gan", f"{label}-GAN", "esrgan", on, init=psnr, paper=_TABLE7[first_column + 1]),
        Variant(f"{backbone}-g", f"{label}-G", "spsr-g", on, init=psnr, paper=_TABLE7[first_column + 2]),
        Variant(f"{backbone}-p", f"{label}-P", "spsr-p", on, init=psnr, nse="nse-contrastive",
                paper=_TABLE7[first_column + 3]),
    )  # fmt: skip


SPSR_BACKBONES = Study(
    name="spsr-backbones",
    source="paper 000 (SPSR journal) Table 7",
    caption="Perceptual-driven SR on other network architectures",
    datasets=FIVE_SETS,
    metrics=LPS,
    layout=COLUMNS,
    steps=(NSE_CONTRASTIVE,),
    variants=(*_backbone_variants("edsr-baseline", "EDSR", 0), *_backbone_variants("srresnet", "SRResNet", 4)),
    notes=("the PSNR columns (EDSR, SRResNet) are srtk's psnr preset (L1, cosine 2e-4), the init of the others.",),
)

# ------------------------------------------------------------------------------------------------ paper 002

# Paper 002 Table 2 ("Model configurations and quantitative comparisons"): Set14 and Urban100 x PI, PSNR, SSIM.
# reading: "w/o U-Net" uses the VGG-style encoder critic of the perceptual-driven methods (srtk's vgg-128 with
# RaGAN), which has no decoder features to match (feature matching off); "w/o LPIPS" is "trained ... with VGG
# based perceptual loss", weight 1 as in ESRGAN/SPSR (paper 002 gives none).
UGSR_PSNR_INIT = Step(
    "psnr-init",
    "ugsr's generator pre-trained with L1 (srtk train --method psnr --backbone ugsr; paper 002 sec. 3.1)",
    method="psnr",
    overrides={"model.backbone": "ugsr"},
)


def _ugsr_row(*values: float) -> dict:
    return _by_dataset(("set14", "urban100"), ("PI", "PSNR", "SSIM"), values)


UGSR_COMPONENTS = Study(
    name="ugsr-components",
    source="paper 002 (ugsr) Table 2",
    caption="Model configurations and quantitative comparisons",
    datasets=("set14", "urban100"),
    metrics=("PI", "PSNR", "SSIM"),
    steps=(UGSR_PSNR_INIT,),
    variants=(
        # "We first remove the gradient branch (GB) in our generator" (sec. 3.3): its own loss goes with it, the
        # gradient losses on the SR image stay (as SPSR-G w/o GB, "trained by the full loss").
        Variant("wo-gb", "Ours w/o GB", "ugsr", {"model.generator_options.use_gradient_branch": False,
                                                 "losses.branch_pixel": 0.0},
                init="psnr-init", paper=_ugsr_row(3.0239, 26.106, 0.7731, 3.6058, 24.004, 0.9381)),
        Variant("wo-unet", "Ours w/o U-Net", "ugsr", {"model.discriminator": "vgg-128", "losses.feature_matching": 0.0},
                init="psnr-init", paper=_ugsr_row(2.8771, 25.828, 0.7719, 3.6323, 24.053, 0.9404)),
        Variant("wo-lpips", "Ours w/o LPIPS", "ugsr", {"losses.perceptual_kind": "vgg", "losses.perceptual": 1.0},
                init="psnr-init", paper=_ugsr_row(2.9753, 26.044, 0.7774, 3.6584, 24.058, 0.9421)),
        # the extraction reads the full model's Set14 PI as "28735": 2.8735 (Table 1's "Ours" column agrees)
        Variant("ugsr", "Ours", "ugsr", init="psnr-init",
                paper=_ugsr_row(2.8735, 26.136, 0.7807, 3.5599, 24.144, 0.9437)),
    ),
    notes=("PI needs Ma et al.'s learned score, which srtk does not compute: its run column is empty; NIQE, "
           "PI's other half, is measured instead.",
           "w/o GB: the gradient branch and its loss are removed; the gradient losses on the SR image stay."),
)  # fmt: skip

# ------------------------------------------------------------------------------------------------ paper 003

# Paper 003 Table 2: the GG loss = L_grad^pix (the gradient branch's multi-scale maps, losses.multi_scale_gradient)
# + L_SG^pix (the SR image's gradient map, losses.grad_pixel); Set5 x4 PSNR. The text fixes the columns: without
# L_grad^pix 32.31, without L_SG^pix 32.54, both 32.61.
GPSR_GG_LOSS = Study(
    name="gpsr-gg-loss",
    source="paper 003 (GPSR) Table 2",
    caption="Ablation of the gradient-guided loss (L_grad^pix, L_SG^pix)",
    datasets=("set5",),
    metrics=("PSNR",),
    layout=COLUMNS,
    variants=(
        Variant("wo-sg", "L_grad only", "gpsr", {"losses.grad_pixel": 0.0},
                marks={"L_grad^pix": "yes", "L_SG^pix": ""}, paper={"set5": {"PSNR": 32.54}}),
        Variant("wo-grad", "L_SG only", "gpsr", {"losses.multi_scale_gradient": 0.0},
                marks={"L_grad^pix": "", "L_SG^pix": "yes"}, paper={"set5": {"PSNR": 32.31}}),
        Variant("gpsr", "GPSR", "gpsr", marks={"L_grad^pix": "yes", "L_SG^pix": "yes"},
                paper={"set5": {"PSNR": 32.61}}),
    ),
)  # fmt: skip

# Paper 003 Table 3: LRSAM, CRFS and GGS (= the gradient branch + the GG loss) switched on and off; Set5 x4 PSNR.
# Columns (check marks read from the tab layout, confirmed by the text's gains over 32.46): none, LRSAM, CRFS,
# GGS, LRSAM+CRFS, LRSAM+GGS, CRFS+GGS, all three (GPSR).
_GPSR_TABLE3 = (
    ((), 32.46), (("LRSAM",), 32.52), (("CRFS",), 32.52), (("GGS",), 32.61), (("LRSAM", "CRFS"), 32.63),
    (("LRSAM", "GGS"), 32.70), (("CRFS", "GGS"), 32.67), (("LRSAM", "CRFS", "GGS"), 32.74),
)  # fmt: skip


def _gpsr_module_variant(modules: tuple[str, ...], psnr: float) -> Variant:
    overrides: dict[str, Any] = {
        "model.generator_options.use_lrsam": "LRSAM" in modules,
        "model.generator_options.use_crfs": "CRFS" in modules,
    }
    if "GGS" not in modules:  # no gradient branch, so no loss on its maps nor on the SR gradient map
        overrides.update({
            "model.generator_options.use_gradient_branch": False,
            "losses.multi_scale_gradient": 0.0,
            "losses.grad_pixel": 0.0,
        })  # fmt: skip
    name = "-".join(m.lower() for m in modules) or "baseline"
    return Variant(
        name,
        " + ".join(modules) or "baseline",
        "gpsr",
        overrides,
        marks={m: "yes" if m in modules else "" for m in ("LRSAM", "CRFS", "GGS")},
        paper={"set5": {"PSNR": psnr}},
    )


GPSR_MODULES = Study(
    name="gpsr-modules",
    source="paper 003 (GPSR) Table 3",
    caption="Investigations of LRSAM, CRFS and GGS",
    datasets=("set5",),
    metrics=("PSNR",),
    layout=COLUMNS,
    variants=tuple(_gpsr_module_variant(modules, psnr) for modules, psnr in _GPSR_TABLE3),
)

# ------------------------------------------------------------------------------------------------ paper 004

PCL_SETS = ("set5", "set14", "bsd100", "urban100", "manga109")
RCAN = {"model.backbone": "rcan"}  # sec. IV-D: "We take the RCAN model as our baseline"


def _pcl_row(*values: float) -> dict:
    return _by_dataset(PCL_SETS, ("PSNR", "SSIM"), values)


# Paper 004 Table IV: the embedding network (VGG: a fixed ImageNet VGG19; D: E_D on RGB; H+D / F+D: E_D on Haar /
# FFT bands) and the sample generation ("Aug"), RCAN x4.
PCL_EMBEDDING = Study(
    name="pcl-embedding",
    source="paper 004 (PCL) Table IV",
    caption="Ablation of the embedding network and the sample generation (RCAN)",
    datasets=PCL_SETS,
    metrics=("PSNR", "SSIM"),
    variants=(
        Variant("config1-vgg", "1", "pcl", {**RCAN, "contrastive.embedding": "vgg"},
                marks={"L_CL": "VGG", "Aug": "yes"},
                paper=_pcl_row(32.62, 0.8985, 28.84, 0.7875, 27.73, 0.7428, 26.72, 0.8059, 31.12, 0.9160)),
        Variant("config2-rgb", "2", "pcl", {**RCAN, "contrastive.embedding": "rgb"},
                marks={"L_CL": "D", "Aug": "yes"},
                paper=_pcl_row(32.64, 0.8994, 28.86, 0.7889, 27.76, 0.7444, 26.82, 0.8082, 31.33, 0.9177)),
        Variant("config3-haar", "3", "pcl", RCAN, marks={"L_CL": "H+D", "Aug": "yes"},
                paper=_pcl_row(32.70, 0.9005, 28.89, 0.7889, 27.78, 0.7437, 26.84, 0.8083, 31.41, 0.9185)),
        Variant("config4-no-aug", "4", "pcl", {**RCAN, "contrastive.generate_samples": False},
                marks={"L_CL": "H+D", "Aug": ""},
                paper=_pcl_row(32.67, 0.8999, 28.87, 0.7885, 27.76, 0.7435, 26.83, 0.8079, 31.42, 0.9185)),
        Variant("config5-fft", "5", "pcl", {**RCAN, "contrastive.embedding": "fft"},
                marks={"L_CL": "F+D", "Aug": "yes"},
                paper=_pcl_row(32.66, 0.8995, 28.90, 0.7893, 27.77, 0.7434, 26.86, 0.8089, 31.40, 0.9186)),
    ),
)  # fmt: skip

# Paper 004 Table V: EDSR-S re-trained alone, with PCL, and with a fixed E_D pre-trained with EDSR-L (PCL-F).
# The extraction scrambled the PCL-F row ("0.8948 28.62 0.7826 27.58 0.7866 30.49 0.9079 32.19 0.7365 26.09");
# reading, by position and by the +PCL row beside it: Set5 32.19/0.8948, Set14 28.62/0.7826, B100 27.58/0.7365,
# Urban100 26.09/0.7866, Manga109 30.49/0.9079. EDSR-S alone: the pcl recipe with the contrastive weight 0 (L1).
EDSR_S = {"model.backbone": "edsr-baseline"}
PCL_FIXED_EMBEDDING = Study(
    name="pcl-fixed-embedding",
    source="paper 004 (PCL) Table V",
    caption="EDSR-S, with PCL, and with a fixed pre-trained embedding network (PCL-F)",
    datasets=PCL_SETS,
    metrics=("PSNR", "SSIM"),
    variants=(
        Variant("edsr-s", "EDSR-S", "pcl", {**EDSR_S, "losses.contrastive": 0.0},
                paper=_pcl_row(32.09, 0.8938, 28.58, 0.7813, 27.57, 0.7357, 26.04, 0.7849, 30.35, 0.9067)),
        Variant("pcl", "+PCL", "pcl", EDSR_S,
                paper=_pcl_row(32.17, 0.8948, 28.61, 0.7825, 27.58, 0.7365, 26.07, 0.7863, 30.45, 0.9078)),
        Variant("pcl-f", "+PCL-F", "pcl", EDSR_S, needs_embedding=True,
                paper=_pcl_row(32.19, 0.8948, 28.62, 0.7826, 27.58, 0.7365, 26.09, 0.7866, 30.49, 0.9079)),
    ),
    notes=("PCL-F's E_D comes from --embedding (the paper's was pre-trained with EDSR-L; `srtk convert` reads the "
           "authors' release).",),
)  # fmt: skip


# Paper 004 Table VI: the generated positives / negatives switched on and off (RCAN); B100, Urban100, Manga109 x
# PSNR, SSIM, LPIPS. The first row (neither) equals Table IV config 4 (srtk: contrastive.use_* off).
def _pcl_samples_row(*values: float) -> dict:
    return _by_dataset(("bsd100", "urban100", "manga109"), ("PSNR", "SSIM", "LPIPS"), values)


PCL_SAMPLES = Study(
    name="pcl-samples",
    source="paper 004 (PCL) Table VI",
    caption="Ablation of the generated positive and negative samples (RCAN)",
    datasets=("bsd100", "urban100", "manga109"),
    metrics=("PSNR", "SSIM", "LPIPS"),
    variants=(
        Variant("none", "-", "pcl", {**RCAN, "contrastive.use_positives": False, "contrastive.use_negatives": False},
                marks={"Pos": "", "Neg": ""},
                paper=_pcl_samples_row(27.76, 0.7435, 0.3011, 26.83, 0.8079, 0.2318, 31.42, 0.9185, 0.1319)),
        Variant("pos", "Pos", "pcl", {**RCAN, "contrastive.use_negatives": False}, marks={"Pos": "yes", "Neg": ""},
                paper=_pcl_samples_row(27.74, 0.7433, 0.3007, 26.82, 0.8082, 0.2307, 31.43, 0.9189, 0.1318)),
        Variant("neg", "Neg", "pcl", {**RCAN, "contrastive.use_positives": False}, marks={"Pos": "", "Neg": "yes"},
                paper=_pcl_samples_row(27.79, 0.7438, 0.3013, 26.88, 0.8094, 0.2316, 31.40, 0.9186, 0.1320)),
        Variant("pos-neg", "Pos + Neg", "pcl", RCAN, marks={"Pos": "yes", "Neg": "yes"},
                paper=_pcl_samples_row(27.78, 0.7437, 0.3010, 26.84, 0.8083, 0.2314, 31.41, 0.9185, 0.1316)),
    ),
)  # fmt: skip

# Paper 004 Table VII: alpha, the contrastive loss weight (0.1 in PCL), RCAN-PCL x4, Set14 PSNR.
PCL_ALPHA = Study(
    name="pcl-alpha",
    source="paper 004 (PCL) Table VII",
    caption="The influence of the contrastive weight alpha (RCAN-PCL)",
    datasets=("set14",),
    metrics=("PSNR",),
    layout=COLUMNS,
    variants=tuple(
        Variant(f"alpha-{alpha:g}", f"alpha = {alpha:g}", "pcl", {**RCAN, "losses.contrastive": alpha},
                paper={"set14": {"PSNR": psnr}})
        for alpha, psnr in ((0.01, 28.88), (0.1, 28.89), (0.25, 28.84), (0.5, 28.77), (1.0, 28.4), (5.0, 28.1))
    ),
)  # fmt: skip

STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        SPSR_G_COMPONENTS,
        SPSR_P_COMPONENTS,
        SPSR_P_SENSITIVITY,
        SPSR_SAMPLING,
        SPSR_NSE,
        SPSR_BACKBONES,
        UGSR_COMPONENTS,
        GPSR_GG_LOSS,
        GPSR_MODULES,
        PCL_EMBEDDING,
        PCL_FIXED_EMBEDDING,
        PCL_SAMPLES,
        PCL_ALPHA,
    )
}
