"""GPSR: Gradient-Prior-based Super-Resolution network (paper 003, Zhu et al., Appl. Sci. 2023, sec. 3).

Two branches (sec. 3.1, Fig. 1):
- SR branch: the bicubic-upsampled LR image -> shallow conv (eq. 1) -> N = log2(scale) stride-2 encoders
  that halve the size and double the channels (eq. 2-3) -> N decoders, each M RS3AM-SR modules + sub-pixel
  x2 + conv (eq. 4-5), whose output is concatenated with the encoder skip of the same size and with the
  gradient branch's structure features (eq. 6) -> conv to RGB (eq. 7).
- Gradient branch (sec. 3.2.1, Fig. 2): M(I_LR) (eq. 8-10) -> N gradient modules; module k fuses the M
  intermediate features of decoder k in an RS3AM-G, then sub-pixel x2 + conv (eq. 11). Each structure feature
  map F_k^grad feeds decoder k+1 and, through one conv, gives the gradient map G_k supervised by the GG loss
  (eq. 12-14) at LR size * 2^k.
- RS3AM-SR / RS3AM-G (sec. 3.3, Fig. 5): a Contextual Residual Fusion Structure (CRFS: chained residual
  branches whose residual features are all fused by a 1x1 gating conv, plus a module residual; eq. 19-24)
  with a Large-Receptive-field Spatial Attention Module (LRSAM, sec. 3.3.2, Fig. 4) at every branch's tail.

The paper gives no channel widths and the PDF text is ambiguous in places; the choices are marked "reading:"
in comments. At x4 they give 8,189,161 parameters (Table 4: 8.18M, so 0.11% above; the window 8.18M +- 0.005M
is hit only by stacking two unmotivated tweaks, e.g. ESA's extra 1x1 conv in LRSAM plus 1x1 convs after the
decoder pixel shuffles) and 1011G MACs at a 1280x720 output (Table 4: 1098G).

Widths across scales. Table 4 has 8.18M / 1098G at x4 and 14.42M / 382G at x8 (same 1280x720 output). No
reading of the widths that we tried gives both parameter counts from one set of constants (x8 counts):
- widths per resolution (n = 16 at every scale, the encoder doubling to n * 2^N): 37,683,756 (1875G);
- encoder doubling capped at 64 channels (n = 16): 28,160,748;
- widths per level counted from the LR end, DRN's rule (ref. [40]; its released settings halve n from 16 at
  x4 to 8 at x8 for DRN-S, 20 to 10 for DRN-L, so the first decoder keeps n * 2^N): n * 2^N = 64 gives
  9,438,108 (469G);
- one free width at x8: n = 9 gives 11,916,412, n = 10 gives 14,736,312; 14.42M lies between two integers;
- 4,608 combinations of the unspecified details, each with n * 2^N = 16..160 in steps of 4: F'_j as wide as
  its skip or half the decoder input (sec. 3.1: the decoder "halving the channel dimension"); F_k^grad as wide
  as the skip, constant, halving, or as wide as F'_k; F_0^grad at n * 2^N, n, half or twice n * 2^N; DRN's
  encoder conv order; 1x1 or 3x3 convs after the pixel shuffles and in RS3AM-G; LRSAM squeeze ratio 2/4/8 with
  1-3 convs, with or without ESA's extra 1x1. The 77 within 8.18M +- 0.005M at x4 give x8 counts that jump
  from 13.69M to 15.22M: none within 0.7M of 14.42M.
Table 4's FLOPs point the same way: at the same output, x8 costs a third of x4 with 1.76x its
parameters, so about 70% of the x8 parameters would have to run at LR size (160x90), with narrow high-res
decoders. Under DRN's rule x8 is the x4 network at half resolution (1098G / 4 = 275G) plus a top level at
HR / 2, whose remaining 107G pay for about 0.5M parameters there, not the 6.24M the parameter gap needs; under
per-resolution widths x8 contains the x4 network at full resolution (>= 1098G).
`scale` therefore selects DRN's rule, GPSR's closest published precedent (its SR branch, eq. 1-7, mirrors
DRN's: bicubic input, stride-2 encoders with Leaky ReLU, skip concatenation; Table 4 compares with DRN) and the
reading closest to Table 4 in both columns: n * 2^N = DECODER_FEATURES at every scale, x4 8,189,161 / 1011G
and x8 9,438,108 (-35% against 14.42M) / 469G (+23% against 382G).
Convention: RGB, NCHW, float in [0, 1] in and out.
"""

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import ConfigError
from srtk.models.gradient import GradientMap

RGB_CHANNELS = 3
# reading: every "Conv" of the paper is 3x3 unless it only mixes channels (CRFS gates, LRSAM squeeze/restore).
KERNEL_SIZE = 3
UPSAMPLE_FACTOR = 2  # each decoder / gradient module doubles the size (eq. 4-5, 11)
# reading: the width of F_N and of the first decoder, n * 2^N with N = log2(scale) (paper 003 sec. 4.1.3), is
# the same at every scale (DRN's rule, ref. [40]; module docstring): n = 16 at x4 is the width of Table 4's 8.18M
# (srtk 8,189,161), so n = 8 at x8 (9,438,108; the paper's 14.42M fits no reading we found).
DECODER_FEATURES = 64

# Builds the attention of a branch given its width (keyword `num_features`): a configured LRSAM.
AttentionFactory = Callable[..., nn.Module]


class GPSROutput(NamedTuple):
    """I_SR and the multi-scale gradient maps G_1..G_N (eq. 12), G_s at LR size * 2^s (G_N at SR size).

    `gradient_maps` is empty when the gradient branch is switched off (no GGS, Table 3).
    """

    sr: Tensor
    gradient_maps: tuple[Tensor, ...]


def _conv(in_channels: int, out_channels: int, kernel_size: int = KERNEL_SIZE, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2)


class LRSAM(nn.Module):
    """Large-Receptive-field-based Spatial Attention Module (sec. 3.3.2, Fig. 4): Y_0 * sigmoid(mask).

    Squeeze: 1x1 conv to num_features // reduction channels, a stride-3 conv and a 7x7 max-pool give a large
    receptive field at 1/3 size; a few conv+ReLU follow. Excitation: sub-pixel conv (x3, the inverse of the
    stride) back to full size, a 1x1 conv back to num_features, sigmoid; the mask rescales Y_0 per pixel and
    channel. Sizes that are not multiples of the stride are zero-padded, and the mask cropped back.
    """

    def __init__(
        self,
        *,
        num_features: int,
        reduction: int = 4,  # not in the paper: ESA's ratio (RFA, ref. [26]); gives x4 GPSR its 8.18M
        stride: int = 3,  # sec. 3.3.2: "a stride Conv (with stride 3)"
        pool_size: int = 7,  # sec. 3.3.2: "max-pooling ... with a large window (e.g., 7x7)"
        num_convs: int = 2,  # sec. 3.3.2 "a set of Convs followed by ReLU"; reading: two (count not given)
    ) -> None:
        super().__init__()
        reduced = max(num_features // reduction, 1)
        self.stride = stride
        self.reduce = _conv(num_features, reduced, kernel_size=1)
        self.strided = nn.Conv2d(reduced, reduced, KERNEL_SIZE, stride=stride)  # non-overlapping 3x3 cells
        # reading: the pool keeps the 1/3 size (stride 1) so that one x3 pixel shuffle restores full size.
        self.pool = nn.MaxPool2d(pool_size, stride=1, padding=pool_size // 2)
        self.convs = nn.Sequential(*(nn.Sequential(_conv(reduced, reduced), nn.ReLU()) for _ in range(num_convs)))
        self.upsample = nn.Sequential(_conv(reduced, reduced * stride**2), nn.PixelShuffle(stride))
        # reading: the x3 sub-pixel layer yields `reduced` channels and a 1x1 conv restores num_features, so
        # the mask weighs every channel (a sub-pixel conv straight to num_features: x4 GPSR would have 13M).
        self.restore = _conv(reduced, num_features, kernel_size=1)

    def forward(self, features: Tensor) -> Tensor:
        height, width = features.shape[-2:]
        squeezed = self.reduce(features)
        # Pad to a multiple of the stride so the x3 pixel shuffle lands on (at least) the input size.
        squeezed = F.pad(squeezed, (0, (-width) % self.stride, 0, (-height) % self.stride))
        coarse = self.convs(self.pool(self.strided(squeezed)))  # (N, r, ceil(h/3), ceil(w/3))
        mask = self.upsample(coarse)[..., :height, :width]  # (N, r, h, w)
        return features * self.restore(mask).sigmoid()


class ResidualBranch(nn.Module):
    """Conv-ReLU-Conv of an EDSR residual block (ref. [10]); the skip is added by the caller (CRFS)."""

    def __init__(self, *, num_features: int) -> None:
        super().__init__()
        width = num_features
        self.body = nn.Sequential(_conv(width, width), nn.ReLU(), _conv(width, width))

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features)


class RS3AMSR(nn.Module):
    """RS3AM-SR (sec. 3.3.3, Fig. 5a): CRFS over chained residual branches, an LRSAM at each branch's tail.

    h_i = h_{i-1} + R_i with R_i = LRSAM(branch_i(h_{i-1})); output x + gate([R_1..R_B]) (eq. 21-22).
    Without CRFS (Table 3) it is plain EDSR residual blocks: output h_B = x + R_1 + ... + R_B, no gate.
    """

    def __init__(
        self,
        *,
        num_features: int,
        num_residual_blocks: int,
        attention: AttentionFactory | None,
        use_crfs: bool,
    ) -> None:
        super().__init__()
        count = num_residual_blocks
        self.branches = nn.ModuleList(ResidualBranch(num_features=num_features) for _ in range(count))
        self.attentions = nn.ModuleList(
            attention(num_features=num_features) if attention else nn.Identity() for _ in range(count)
        )
        # Gating unit (eq. 19/21): a 1x1 conv weighs the concatenated residual features.
        self.gate = _conv(count * num_features, num_features, kernel_size=1) if use_crfs else None

    def forward(self, features: Tensor) -> Tensor:
        hidden = features
        residuals = []
        for branch, attention in zip(self.branches, self.attentions, strict=True):
            residual = attention(branch(hidden))
            residuals.append(residual)
            hidden = hidden + residual
        if self.gate is None:
            return hidden
        return features + self.gate(torch.cat(residuals, dim=1))


class RS3AMG(nn.Module):
    """RS3AM-G (sec. 3.3.3, Fig. 5b, eq. 23-24): the CRFS of the gradient branch, fed by decoder features.

    Branch m: local_m = branch_m(h_{m-1}); R_m = conv(LRSAM([F_de^m, local_m])) back to num_features;
    h_m = h_{m-1} + R_m; output x + gate([R_1..R_M]) (without CRFS: h_M).
    """

    def __init__(
        self,
        *,
        num_features: int,
        sr_features: int,
        num_branches: int,
        attention: AttentionFactory | None,
        use_crfs: bool,
    ) -> None:
        super().__init__()
        fused = sr_features + num_features
        self.branches = nn.ModuleList(ResidualBranch(num_features=num_features) for _ in range(num_branches))
        self.attentions = nn.ModuleList(
            attention(num_features=fused) if attention else nn.Identity() for _ in range(num_branches)
        )
        # eq. 23: "the function of Conv here is to halve the channel dimension" -- exactly half in the first
        # module, where both inputs have n * 2^N channels; later modules reduce to their own (smaller) width.
        self.fuse = nn.ModuleList(_conv(fused, num_features) for _ in range(num_branches))
        self.gate = _conv(num_branches * num_features, num_features, kernel_size=1) if use_crfs else None

    def forward(self, features: Tensor, sr_features: Sequence[Tensor]) -> Tensor:
        hidden = features
        residuals = []
        for branch, attention, fuse, sr_feature in zip(
            self.branches, self.attentions, self.fuse, sr_features, strict=True
        ):
            residual = fuse(attention(torch.cat([sr_feature, branch(hidden)], dim=1)))
            residuals.append(residual)
            hidden = hidden + residual
        if self.gate is None:
            return hidden
        return features + self.gate(torch.cat(residuals, dim=1))


class SubPixelUpsample(nn.Module):
    """f_conv(f_subpix(.)) of eq. 5 and 11: conv to 4x channels, pixel shuffle x2, conv to out_channels."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(in_channels, in_channels * UPSAMPLE_FACTOR**2),
            nn.PixelShuffle(UPSAMPLE_FACTOR),
            _conv(in_channels, out_channels),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features)


class Encoder(nn.Module):
    """H_en (eq. 3): stride-2 conv (halves the size, doubles the channels), LeakyReLU, conv."""

    def __init__(self, *, in_channels: int, negative_slope: float) -> None:
        super().__init__()
        out_channels = 2 * in_channels
        self.body = nn.Sequential(
            _conv(in_channels, out_channels, stride=UPSAMPLE_FACTOR),
            nn.LeakyReLU(negative_slope),
            _conv(out_channels, out_channels),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features)


class Decoder(nn.Module):
    """H_de (eq. 5): M RS3AM-SR, sub-pixel x2, conv; also returns the intermediates F_de^m (eq. 11)."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        num_modules: int,
        num_residual_blocks: int,
        attention: AttentionFactory | None,
        use_crfs: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            RS3AMSR(
                num_features=in_channels,
                num_residual_blocks=num_residual_blocks,
                attention=attention,
                use_crfs=use_crfs,
            )
            for _ in range(num_modules)
        )
        self.upsample = SubPixelUpsample(in_channels=in_channels, out_channels=out_channels)

    def forward(self, features: Tensor) -> tuple[Tensor, list[Tensor]]:
        intermediates = []
        for block in self.blocks:
            features = block(features)
            intermediates.append(features)
        return self.upsample(features), intermediates


class GradientModule(nn.Module):
    """Gradient module k (Fig. 2, eq. 11): RS3AM-G, sub-pixel x2, conv -> F_k^grad; and G_k (eq. 12)."""

    def __init__(
        self,
        *,
        in_channels: int,
        sr_features: int,
        out_channels: int,
        num_branches: int,
        attention: AttentionFactory | None,
        use_crfs: bool,
    ) -> None:
        super().__init__()
        self.fusion = RS3AMG(
            num_features=in_channels,
            sr_features=sr_features,
            num_branches=num_branches,
            attention=attention,
            use_crfs=use_crfs,
        )
        self.upsample = SubPixelUpsample(in_channels=in_channels, out_channels=out_channels)
        self.to_gradient = _conv(out_channels, RGB_CHANNELS)  # G_s = f_conv(F_grad^s), eq. 12

    def forward(self, features: Tensor, sr_features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        structure = self.upsample(self.fusion(features, sr_features))  # F_k^grad, twice the input size
        return structure, self.to_gradient(structure)


class GPSR(nn.Module):
    """GPSR generator (paper 003, sec. 3, Fig. 1). LR RGB in [0, 1] -> GPSROutput(sr, gradient_maps).

    Widths: F_0 has num_features (n) channels, n = DECODER_FEATURES / 2^N unless given; encoder l has n * 2^l;
    decoder 1 works on F_N (n * 2^N channels), decoder j > 1 on F_{j+N-1} = [F_{N-j+1}, F'_{j-1}, F_{j-1}^grad]
    (3 * n * 2^(N-j+1)); gradient module k works at n * 2^(N-k+1), the width of the encoder features of the
    same size.
    """

    def __init__(
        self,
        *,
        scale: int = 4,  # x4 and x8 in the paper (sec. 4.3)
        num_features: int | None = None,  # n; None: DECODER_FEATURES / 2^N, 16 at x4 (Table 4's 8.18M), 8 at x8
        num_modules: int = 4,  # M RS3AM-SR per decoder = RS3AM-G branches (sec. 4.1.3: M = 4)
        num_residual_blocks: int = 4,  # residual features per CRFS (eq. 19: i = 1..4; Fig. 5 with M = 4)
        attention_reduction: int = 4,  # LRSAM squeeze ratio, see LRSAM
        attention_stride: int = 3,  # LRSAM strided conv (sec. 3.3.2)
        attention_pool_size: int = 7,  # LRSAM max-pool window (sec. 3.3.2)
        attention_num_convs: int = 2,  # LRSAM conv+ReLU count (sec. 3.3.2, count not given)
        negative_slope: float = 0.2,  # encoder Leaky ReLU (eq. 3); slope not given, 0.2 as in DRN (ref. [40])
        use_gradient_branch: bool = True,  # GGS (Table 3): the gradient branch and its inputs to the decoders
        use_crfs: bool = True,  # CRFS (Table 3): gated fusion of the residual features
        use_lrsam: bool = True,  # LRSAM (Table 3): spatial attention at every residual branch's tail
    ) -> None:
        super().__init__()
        num_levels = round(math.log2(scale)) if scale > 1 else 0
        if scale < UPSAMPLE_FACTOR or UPSAMPLE_FACTOR**num_levels != scale:
            raise ConfigError(f"GPSR needs a power-of-two scale >= 2 (N = log2 scale, sec. 4.1.3), got {scale}")
        if num_features is None:
            if DECODER_FEATURES % UPSAMPLE_FACTOR**num_levels:
                raise ConfigError(f"GPSR x{scale}: give num_features, {DECODER_FEATURES} is not n * 2^{num_levels}")
            num_features = DECODER_FEATURES // UPSAMPLE_FACTOR**num_levels
        self.scale = scale
        self.use_gradient_branch = use_gradient_branch
        # srtk.models.capabilities: without GGS there are no gradient maps to supervise.
        self.outputs = frozenset({"sr", "gradient_maps"} if use_gradient_branch else {"sr"})
        attention: AttentionFactory | None = None
        if use_lrsam:
            attention = partial(
                LRSAM,
                reduction=attention_reduction,
                stride=attention_stride,
                pool_size=attention_pool_size,
                num_convs=attention_num_convs,
            )
        # Channels of F_i (i = 0..N), the encoder output at size HR / 2^i.
        skip_channels = [num_features * UPSAMPLE_FACTOR**level for level in range(num_levels + 1)]
        inputs_per_level = 3 if use_gradient_branch else 2  # eq. 6 joins skip, decoder and gradient features
        decoder_width = skip_channels[num_levels]

        self.head = _conv(RGB_CHANNELS, num_features)  # f_conv of eq. 1
        self.encoders = nn.ModuleList(
            Encoder(in_channels=channels, negative_slope=negative_slope) for channels in skip_channels[:-1]
        )
        self.decoders = nn.ModuleList()
        self.gradient_modules = nn.ModuleList()
        for j in range(1, num_levels + 1):
            in_channels = decoder_width if j == 1 else inputs_per_level * skip_channels[num_levels - j + 1]
            out_channels = skip_channels[num_levels - j]  # F'_j has the width of the skip it is joined to
            self.decoders.append(
                Decoder(
                    in_channels=in_channels,
                    out_channels=out_channels,
                    num_modules=num_modules,
                    num_residual_blocks=num_residual_blocks,
                    attention=attention,
                    use_crfs=use_crfs,
                )
            )
            if use_gradient_branch:
                self.gradient_modules.append(
                    GradientModule(
                        in_channels=skip_channels[num_levels - j + 1],
                        sr_features=in_channels,
                        out_channels=out_channels,
                        num_branches=num_modules,
                        attention=attention,
                        use_crfs=use_crfs,
                    )
                )
        if use_gradient_branch:
            self.gradient = GradientMap()  # g(.) of eq. 8-9 (sign of M_x is irrelevant under the norm)
            self.gradient_head = _conv(RGB_CHANNELS, decoder_width)  # F_0^grad = f_conv(g(I_LR)), eq. 10
        self.tail = _conv(inputs_per_level * num_features, RGB_CHANNELS)  # eq. 7

    def forward(self, lr: Tensor) -> GPSROutput:
        # f_up of eq. 1. PyTorch's bicubic (a = -0.75, no antialias needed when upsampling), not MATLAB's
        # imresize (a = -0.5): it is a learned network's input, so only train/test consistency matters.
        upsampled = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        skips = [self.head(upsampled)]  # F_0: (N, n, H, W)
        for encoder in self.encoders:
            skips.append(encoder(skips[-1]))  # F_i: (N, n * 2^i, H / 2^i, W / 2^i)
        features = skips.pop()  # F_N at LR size
        structure = self.gradient_head(self.gradient(lr)) if self.use_gradient_branch else None  # F_0^grad
        gradient_maps = []
        for j, decoder in enumerate(self.decoders):
            decoded, intermediates = decoder(features)  # F'_j: twice the size, width of F_{N-j}
            joined = [skips.pop(), decoded]
            if structure is not None:
                structure, gradient_map = self.gradient_modules[j](structure, intermediates)  # F_j^grad, G_j
                joined.append(structure)
                gradient_maps.append(gradient_map)
            features = torch.cat(joined, dim=1)  # F_{j+N}, eq. 6
        return GPSROutput(sr=self.tail(features), gradient_maps=tuple(gradient_maps))
