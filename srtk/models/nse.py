"""The neural structure extractor (NSE) of SPSR-P / SPSR-J and its two pretext heads (paper 000 sec. 4.1-4.2,
Appendix A, Fig. 12).

F: "a relatively small and shallow neural network with 6 convolutional layers followed by ReLU layers. Each
obtained feature vector has a receptive field of 31x31. We follow the ResNet architecture and involve two skip
connections" (Appendix A); the feature map is "downsampled by a factor of 4" (sec. 4.1) and has 32 channels
(sec. 5.1). Fig. 12 is not in our copy of the paper, so the layer list below is the one ResNet-style chain
that meets all of these numbers with 3x3 convs (the caption's example layer is "Conv, k3s1c64"):

    conv1 k3 s2 c64                      RF  3, stride 2
    [conv2 k3 s1 c64, conv3 k3 s1 c64]   RF 11          + identity skip 1
    conv4 k3 s2 c32                      RF 15, stride 4
    [conv5 k3 s1 c32, conv6 k3 s1 c32]   RF 31          + identity skip 2

P (contrastive prediction, sec. 4.2): fully connected layers with ReLU that map the concatenated features of M
context positions to a prediction of the target position's feature; trained with InfoNCE (eqs. 11-12) against
negatives from the same feature map whose receptive fields overlap neither the target's nor the context's.
J (jigsaw, sec. 4.2): three fully connected layers that classify which of the 4! = 24 permutations shuffled
the features of a 2x2 grid of non-overlapping positions.
PretextModel: F with one of the two heads, what `srtk pretrain-nse` trains and saves (losses: srtk.losses.pretext).
Convention: images RGB, NCHW, float in [0, 1]; structure features (N, 32, ceil(H/4), ceil(W/4)).
"""

import itertools
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KERNEL_SIZE = 3  # every NSE conv is 3x3 (Fig. 12 caption: "Conv, k3s1c64")
DOWNSAMPLE_STRIDE = 2  # two stride-2 convs: features at 1/4 resolution (sec. 4.1)
NUM_JIGSAW_TILES = 4  # "M is set to 4 ... located in a 2x2 grid" (sec. 4.2)
JIGSAW_GRID = 2
PRETEXT_TASKS = ("contrastive", "jigsaw")  # sec. 4.2: contrastive prediction (SPSR-P), jigsaw puzzles (SPSR-J)


class _ResidualBlock(nn.Module):
    """ResNet basic block: relu(conv(relu(conv(x))) + x), the NSE's two skip connections (Appendix A)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, KERNEL_SIZE, padding=KERNEL_SIZE // 2)
        self.conv2 = nn.Conv2d(channels, channels, KERNEL_SIZE, padding=KERNEL_SIZE // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class NeuralStructureExtractor(nn.Module):
    """F: image -> structure features, 31x31 receptive field, stride 4 (paper 000 sec. 4.1, Appendix A).

    (N, in_channels, H, W) -> (N, out_features, ceil(H/4), ceil(W/4)); feature (i, j) sees the 31x31 input
    window centred on pixel (4i, 4j) (zero padding outside the image).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_features: int = 64,  # width of the first stage (Fig. 12 caption: "k3s1c64")
        out_features: int = 32,  # "the channel number of extracted structure features is 32" (sec. 5.1)
    ) -> None:
        super().__init__()
        pad = KERNEL_SIZE // 2
        self.stem = nn.Conv2d(in_channels, num_features, KERNEL_SIZE, DOWNSAMPLE_STRIDE, pad)  # conv1
        self.block1 = _ResidualBlock(num_features)  # conv2, conv3
        self.down = nn.Conv2d(num_features, out_features, KERNEL_SIZE, DOWNSAMPLE_STRIDE, pad)  # conv4
        self.block2 = _ResidualBlock(out_features)  # conv5, conv6
        # What a user of F sizes itself by (the structure critic D_SF: input = HR patch // stride).
        self.out_channels = out_features
        self.stride = receptive_field(self)[1]

    def forward(self, img: Tensor) -> Tensor:
        half = self.block1(F.relu(self.stem(img)))  # (N, 64, H/2, W/2)
        return self.block2(F.relu(self.down(half)))  # (N, 32, H/4, W/4)


def receptive_field(module: nn.Module) -> tuple[int, int]:
    """(receptive field size, stride) in input pixels of a chain of square convs (kernel, stride, dilation).

    Walks the Conv2d layers in registration order, which must be their order along the longest path (true for
    the NSE: its skips are identities, so the chain of six convs is that path).
    """
    size, jump = 1, 1
    for layer in module.modules():
        if not isinstance(layer, nn.Conv2d):
            continue
        kernel, stride, dilation = layer.kernel_size[0], layer.stride[0], layer.dilation[0]
        if layer.kernel_size[1] != kernel or layer.stride[1] != stride or layer.dilation[1] != dilation:
            raise ValueError(f"receptive_field handles square convs only, got {layer}")
        size += dilation * (kernel - 1) * jump  # each tap of the kernel is `jump` input pixels apart
        jump *= stride
    return size, jump


def min_separation(size: int, stride: int) -> int:
    """Fewest feature positions apart along one axis with disjoint receptive fields: ceil(31/4) = 8."""
    return math.ceil(size / stride)


def context_offsets(strategy: str, separation: int) -> tuple[tuple[int, int], ...]:
    """(dy, dx) of the M context positions around the target, sampling strategies h, v, c (Appendix B).

    h: the two horizontal neighbours, v: the two vertical ones, c: the four ends of a cross. Neighbours sit
    `separation` positions away so that no two receptive fields overlap (sec. 4.2).
    """
    s = separation
    strategies = {
        "h": ((0, -s), (0, s)),
        "v": ((-s, 0), (s, 0)),
        "c": ((0, -s), (0, s), (-s, 0), (s, 0)),
    }
    if strategy not in strategies:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of: {', '.join(strategies)}")
    return strategies[strategy]


def jigsaw_offsets(separation: int) -> tuple[tuple[int, int], ...]:
    """(dy, dx) of the 2x2 grid of jigsaw tiles, row-major, `separation` apart so the tiles do not overlap."""
    return tuple((row * separation, col * separation) for row in range(JIGSAW_GRID) for col in range(JIGSAW_GRID))


class PredictionMap(NamedTuple):
    """P applied at every target position whose context lies inside the feature map."""

    predicted: Tensor  # (N, C, h, w): p_t for each target position
    target: Tensor  # (N, C, h, w): f_{X_t}, the positive of each prediction
    origin: tuple[int, int]  # (row, col) in the feature map of predicted[..., 0, 0]


def _mlp(in_features: int, hidden_features: int, out_features: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(num_layers - 1):
        layers += [nn.Linear(width, hidden_features), nn.ReLU()]
        width = hidden_features
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ContrastivePredictor(nn.Module):
    """P: concatenated context features (..., M*C) -> predicted target feature (..., C) (paper 000 sec. 4.2).

    "An autoregressive model composed of several fully connected layers and ReLU activation layers"; the paper
    gives neither depth nor width, so both are arguments.
    """

    def __init__(
        self,
        *,
        num_features: int = 32,  # structure-feature channels (sec. 5.1)
        num_context: int = 2,  # M: two horizontal neighbours (Fig. 5a, the default "h" strategy)
        hidden_features: int = 256,  # not stated in the paper
        num_layers: int = 3,  # "several fully connected layers": not stated in the paper
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.num_context = num_context
        self.mlp = _mlp(num_context * num_features, hidden_features, num_features, num_layers)

    def forward(self, context: Tensor) -> Tensor:
        return self.mlp(context)

    def predict_map(self, feats: Tensor, offsets: tuple[tuple[int, int], ...]) -> PredictionMap:
        """Predict each position of `feats` (N, C, H, W) whose context at `offsets` (dy, dx) is in the map."""
        if len(offsets) != self.num_context:
            raise ValueError(f"P was built for {self.num_context} context positions, got {len(offsets)} offsets")
        height, width = feats.shape[-2:]
        top, left = max(0, -min(dy for dy, _ in offsets)), max(0, -min(dx for _, dx in offsets))
        rows = height - top - max(0, max(dy for dy, _ in offsets))
        cols = width - left - max(0, max(dx for _, dx in offsets))
        if rows < 1 or cols < 1:
            raise ValueError(f"a {height}x{width} feature map has no position with context at {offsets}")
        # The context of every target is a shifted crop: one slice per context position, no loop over pixels.
        context = torch.cat(
            [feats[..., top + dy : top + dy + rows, left + dx : left + dx + cols] for dy, dx in offsets],
            dim=1,
        )  # (N, M*C, rows, cols)
        predicted = self(context.movedim(1, -1)).movedim(-1, 1)  # FC layers act per position: (N, C, rows, cols)
        target = feats[..., top : top + rows, left : left + cols]
        return PredictionMap(predicted, target, (top, left))


def negative_mask(
    targets: Tensor, offsets: tuple[tuple[int, int], ...], height: int, width: int, separation: int
) -> Tensor:
    """Which positions of an (height, width) feature map may serve as negatives for each target (sec. 4.2).

    targets: (T, 2) long (row, col). Returns (T, height, width) bool: True where the position's receptive
    field overlaps neither the target's nor any context position's, i.e. it is `separation` or more away
    from each of them along at least one axis.
    """
    occupied = torch.tensor(((0, 0), *offsets), device=targets.device)  # (M+1, 2): target and its context
    claimed = targets[:, None, :] + occupied[None]  # (T, M+1, 2)
    rows = torch.arange(height, device=targets.device)
    cols = torch.arange(width, device=targets.device)
    # Two windows overlap iff they are closer than `separation` along both axes: the test is separable, so it
    # needs (T, M+1, H) + (T, M+1, W) comparisons and one (T, H, W) mask, not a (T, M+1, H*W) distance tensor
    # (gigabytes for a batch of 420x420 patches).
    near_rows = (rows[None, None] - claimed[..., :1]).abs() < separation  # (T, M+1, H)
    near_cols = (cols[None, None] - claimed[..., 1:]).abs() < separation  # (T, M+1, W)
    overlapped = torch.zeros(len(targets), height, width, dtype=torch.bool, device=targets.device)
    for claim in range(occupied.shape[0]):  # M+1 <= 5 claimed positions, not a loop over pixels
        overlapped |= near_rows[:, claim, :, None] & near_cols[:, claim, None, :]
    return ~overlapped


class JigsawClassifier(nn.Module):
    """J: which of the 24 permutations shuffled 4 tile features (paper 000 sec. 4.2): three FC layers.

    `permutations` (24, 4) is a fixed buffer: row k lists, for each input slot, the tile placed there.
    """

    def __init__(
        self,
        *,
        num_features: int = 32,  # structure-feature channels (sec. 5.1)
        num_tiles: int = NUM_JIGSAW_TILES,  # 2x2 grid (sec. 4.2)
        hidden_features: int = 256,  # not stated in the paper
    ) -> None:
        super().__init__()
        self.num_tiles = num_tiles
        table = torch.tensor(list(itertools.permutations(range(num_tiles))))  # (num_tiles!, num_tiles)
        self.register_buffer("permutations", table, persistent=False)
        self.mlp = _mlp(num_tiles * num_features, hidden_features, len(table), num_layers=3)  # "three FC layers"

    def shuffle(self, tiles: Tensor, labels: Tensor) -> Tensor:
        """Tiles (N, 4, C) in grid order, permutation labels (N,) -> concatenated shuffled input (N, 4*C)."""
        order = self.permutations[labels]  # (N, 4): which tile goes to each slot
        shuffled = torch.gather(tiles, 1, order[..., None].expand(-1, -1, tiles.shape[-1]))
        return shuffled.flatten(1)

    def forward(self, shuffled: Tensor) -> Tensor:
        """(N, 4*C) shuffled concatenation -> (N, 24) permutation logits c of eq. 13."""
        return self.mlp(shuffled)


class PretextModel(nn.Module):
    """F with its pretext head: what `srtk pretrain-nse` trains and saves; `--nse` loads its .extractor.

    task "contrastive": F_P with the predictor P over the context layout `sampling` (h, v, c: Appendix B);
    task "jigsaw": F_J with the classifier J over a 2x2 grid (sec. 4.2; `sampling` and `predictor_layers` are
    then unused but recorded). Context and tiles sit `separation` feature positions apart, the fewest with
    disjoint receptive fields. forward returns the structure features F(img), so a loaded PretextModel is
    usable as an extractor; the pretext losses are srtk.losses.pretext.
    """

    def __init__(
        self,
        *,
        task: str = "contrastive",  # SPSR-P, the paper's main method (sec. 5.3)
        sampling: str = "h",  # "An example of horizontal sampling is shown in Fig. 5 (a)" (sec. 4.2)
        in_channels: int = 3,
        num_features: int = 64,  # F's first-stage width (Fig. 12 caption)
        out_features: int = 32,  # structure-feature channels (sec. 5.1)
        hidden_features: int = 256,  # P's / J's hidden width: not stated in the paper
        predictor_layers: int = 3,  # P's depth, "several fully connected layers": not stated in the paper
    ) -> None:
        super().__init__()
        if task not in PRETEXT_TASKS:
            raise ValueError(f"unknown pretext task {task!r}; choose one of: {', '.join(PRETEXT_TASKS)}")
        self.task = task
        self.sampling = sampling
        self._config = {
            "task": task,
            "sampling": sampling,
            "in_channels": in_channels,
            "num_features": num_features,
            "out_features": out_features,
            "hidden_features": hidden_features,
            "predictor_layers": predictor_layers,
        }
        self.extractor = NeuralStructureExtractor(
            in_channels=in_channels, num_features=num_features, out_features=out_features
        )
        self.separation = min_separation(*receptive_field(self.extractor))
        context = context_offsets(sampling, self.separation)  # validates `sampling` for both tasks
        self.head: ContrastivePredictor | JigsawClassifier
        if task == "contrastive":
            self.offsets = context
            self.head = ContrastivePredictor(
                num_features=out_features,
                num_context=len(context),
                hidden_features=hidden_features,
                num_layers=predictor_layers,
            )
        else:
            self.offsets = jigsaw_offsets(self.separation)
            self.head = JigsawClassifier(num_features=out_features, hidden_features=hidden_features)

    def card_config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model: the `config` of its model card."""
        return dict(self._config)

    def forward(self, img: Tensor) -> Tensor:
        return self.extractor(img)  # (N, out_features, ceil(H/4), ceil(W/4))
