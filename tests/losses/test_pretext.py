"""The NSE's pretext losses: InfoNCE of contrastive prediction and the jigsaw cross-entropy (paper 000 eqs. 11-13)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from srtk.errors import ConfigError
from srtk.losses.pretext import contrastive_prediction_loss, jigsaw_loss, pretext_loss
from srtk.models.nse import (
    ContrastivePredictor,
    JigsawClassifier,
    NeuralStructureExtractor,
    PretextModel,
    context_offsets,
    jigsaw_offsets,
    min_separation,
    receptive_field,
)
from tests.models.checks import assert_trains

WINDOW, STRIDE = receptive_field(NeuralStructureExtractor())  # 31 px, 4 px
SEPARATION = min_separation(WINDOW, STRIDE)  # 8
TINY = {"num_features": 8, "out_features": 4, "hidden_features": 8}


def picking_predictor(num_features: int, num_context: int, weights: list[float]) -> ContrastivePredictor:
    """A one-layer P whose prediction is sum_k weights[k] * (context feature k): a known, linear p_t."""
    predictor = ContrastivePredictor(num_features=num_features, num_context=num_context, num_layers=1)
    linear = predictor.mlp[0]
    with torch.no_grad():
        linear.weight.copy_(torch.cat([w * torch.eye(num_features) for w in weights], dim=1))
        linear.bias.zero_()
    return predictor


def cross_map(corner_4_4: tuple[float, float]) -> Tensor:
    """A (1, 2, 5, 5) map for the cross layout at separation 2: one target (2, 2), negatives = the 4 corners."""
    feats = torch.zeros(1, 2, 5, 5)
    feats[0, :] = torch.tensor([1.0, 0.0])[:, None, None]  # everywhere: parallel to p_t, cos 1 (must not count)
    feats[0, :, 2, 2] = torch.tensor([1.0, 1.0])  # the target f_{X_t}
    feats[0, :, 0, 0] = torch.tensor([0.0, 1.0])
    feats[0, :, 0, 4] = torch.tensor([-1.0, 0.0])
    feats[0, :, 4, 0] = torch.tensor([3.0, 4.0])
    feats[0, :, 4, 4] = torch.tensor(corner_4_4)
    return feats


@pytest.mark.parametrize(
    ("corner_4_4", "corner_cos", "accuracy"),
    [((2.0, -1.0), 2 / math.sqrt(5), 0.0), ((0.0, -1.0), 0.0, 1.0)],
)
def test_info_nce_by_hand_on_a_cross(corner_4_4: tuple[float, float], corner_cos: float, accuracy: float) -> None:
    # Separation 2 on a 5x5 map: the cross (0, +-2), (+-2, 0) fits around (2, 2) only; every position within
    # Chebyshev distance 1 of a sample is blocked, which leaves exactly the 4 corners as negatives.
    feats = cross_map(corner_4_4)
    predictor = picking_predictor(2, 4, [1.0, 0.0, 0.0, 0.0])  # p_t = the feature at (2, 0) = (1, 0)
    tau = 3.0
    result = contrastive_prediction_loss(
        feats, predictor, context_offsets("c", 2), 2, temperature=tau, targets_per_image=None
    )
    positive = math.exp(tau * 1 / math.sqrt(2))  # h(f_{X_t}, p_t) = exp(tau * cos 45 deg), eq. 12
    negatives = [math.exp(tau * 0.0), math.exp(tau * -1.0), math.exp(tau * 0.6), math.exp(tau * corner_cos)]
    expected = -math.log(positive / (positive + sum(negatives)))  # eq. 11
    assert result.loss.item() == pytest.approx(expected, rel=1e-5)
    assert result.accuracy.item() == accuracy  # 2/sqrt(5) = 0.894 beats cos 45 deg = 0.707; 0 does not
    assert result.chance == pytest.approx(1 / 5)
    assert not result.accuracy.requires_grad and result.loss.requires_grad


def pixel_negative_counts(targets: Tensor, offsets: tuple[tuple[int, int], ...], height: int, width: int) -> Tensor:
    """#positions whose 31x31 pixel window meets no sample's window, per target (T, 2) (interval arithmetic)."""
    claimed = targets[:, None] + torch.tensor(((0, 0), *offsets))  # (T, M+1, 2)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    centres = STRIDE * torch.stack((rows.flatten(), cols.flatten()), dim=-1)  # (H*W, 2) pixel centres
    claimed_centres = STRIDE * claimed
    half = WINDOW // 2
    low_a, high_a = centres[None, None] - half, centres[None, None] + half  # (1, 1, H*W, 2)
    low_b, high_b = claimed_centres[:, :, None] - half, claimed_centres[:, :, None] + half  # (T, M+1, 1, 2)
    meets = ((low_a <= high_b) & (low_b <= high_a)).all(dim=-1).any(dim=1)  # (T, H*W)
    return (~meets).sum(dim=-1)


@settings(max_examples=40, deadline=None)
@given(layout=st.sampled_from(["h", "v", "c"]), height=st.integers(6, 26), width=st.integers(6, 26))
def test_an_exact_predictor_ranks_every_positive_first(layout: str, height: int, width: int) -> None:
    offsets = context_offsets(layout, SEPARATION)
    reach_rows = max(abs(dy) for dy, _ in offsets)
    reach_cols = max(abs(dx) for _, dx in offsets)
    if height <= 2 * reach_rows or width <= 2 * reach_cols:
        predictor = picking_predictor(3, len(offsets), [1.0] * len(offsets))
        with pytest.raises(ConfigError, match=f"needs at least {2 * reach_rows + 1}x{2 * reach_cols + 1} structure"):
            contrastive_prediction_loss(torch.rand(1, 3, height, width), predictor, offsets, SEPARATION)
        return
    # f(y, x) = (1, x, y): no two positions are parallel, and each target is the mean of its context.
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    feats = torch.stack((torch.ones_like(rows), cols, rows))[None]  # (1, 3, H, W)
    predictor = picking_predictor(3, len(offsets), [1 / len(offsets)] * len(offsets))
    result = contrastive_prediction_loss(feats, predictor, offsets, SEPARATION, targets_per_image=None)
    assert result.accuracy.item() == 1.0
    targets = torch.cartesian_prod(
        torch.arange(reach_rows, height - reach_rows), torch.arange(reach_cols, width - reach_cols)
    )
    counts = pixel_negative_counts(targets, offsets, height, width)
    assert result.chance == pytest.approx((1 / (1 + counts.double())).mean().item(), rel=1e-12)


def test_drawn_targets_are_distinct_and_come_from_the_global_rng() -> None:
    feats = torch.randn(2, 4, 12, 20)
    predictor = ContrastivePredictor(num_features=4, num_context=2, hidden_features=8)
    offsets = context_offsets("h", SEPARATION)

    def loss(targets: int | None, seed: int = 0) -> Tensor:
        torch.manual_seed(seed)
        return contrastive_prediction_loss(feats, predictor, offsets, SEPARATION, targets_per_image=targets).loss

    every = loss(None)  # 12 x 4 valid targets per image
    torch.testing.assert_close(loss(12 * 4), every)  # all 48 drawn, none twice
    torch.testing.assert_close(loss(1000), every)  # more than there are: all of them
    assert loss(3, seed=1).item() == loss(3, seed=1).item()
    assert loss(3, seed=1).item() != loss(3, seed=2).item()


class RecordingClassifier(JigsawClassifier):
    """J with fixed logits that records what it was shown."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__(num_features=2, hidden_features=4)
        self.fixed = logits
        self.seen: list[Tensor] = []

    def forward(self, shuffled: Tensor) -> Tensor:
        self.seen.append(shuffled)
        return self.fixed.expand(len(shuffled), -1)


def test_jigsaw_cross_entropy_by_hand_and_the_tiles_it_shows() -> None:
    batch, grids, height, width = 2, 5, 12, 13
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    feats = torch.stack([torch.stack((rows + 100 * n, cols)) for n in range(batch)])  # f = (row + 100n, col)
    bias = torch.linspace(-1.0, 1.3, 24)  # c_j: label 23 has the largest logit
    classifier = RecordingClassifier(bias)
    result = jigsaw_loss(feats, classifier, SEPARATION, grids_per_image=grids)

    shown = classifier.seen[0].reshape(batch * grids, 4, 2)  # per puzzle: 4 slots of (row + 100n, col)
    table = classifier.permutations.tolist()
    offsets = jigsaw_offsets(SEPARATION)
    terms, hits = [], []
    for puzzle, slots in enumerate(shown.tolist()):
        image = puzzle // grids
        tiles = [(int(r) - 100 * image, int(c)) for r, c in slots]
        corner = (min(r for r, _ in tiles), min(c for _, c in tiles))
        assert all(0 <= r < height and 0 <= c < width for r, c in tiles)
        grid = [(corner[0] + dy, corner[1] + dx) for dy, dx in offsets]
        assert sorted(tiles) == sorted(grid)  # a 2x2 grid SEPARATION apart: disjoint receptive fields
        label = table.index([grid.index(tile) for tile in tiles])  # slot k holds tile permutations[y][k]
        terms.append(-math.log(math.exp(bias[label]) / sum(math.exp(c) for c in bias.tolist())))  # eq. 13
        hits.append(label == 23)
    assert result.loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    assert result.accuracy.item() == pytest.approx(sum(hits) / len(hits))
    assert result.chance == 1 / 24


def test_maps_too_small_for_the_samples_are_errors() -> None:
    with pytest.raises(ConfigError, match="cannot hold a 2x2 grid of tiles 8 apart: it needs at least 9x9"):
        jigsaw_loss(torch.rand(1, 4, 8, 20), JigsawClassifier(num_features=4, hidden_features=8), SEPARATION)
    with pytest.raises(ValueError, match="2 context positions"):
        contrastive_prediction_loss(
            torch.rand(1, 4, 20, 20), ContrastivePredictor(num_features=4), context_offsets("c", 8), 8
        )


@pytest.mark.parametrize(("task", "sampling"), [("contrastive", "h"), ("contrastive", "c"), ("jigsaw", "h")])
def test_pretext_loss_trains_extractor_and_head(task: str, sampling: str) -> None:
    model = PretextModel(task=task, sampling=sampling, **TINY)
    images = torch.rand(2, 3, 72, 72)  # 18x18 features: room for the cross and for negatives beyond it
    result = pretext_loss(model, images, temperature=64.0, targets_per_image=4)
    assert 0.0 <= result.accuracy.item() <= 1.0
    assert result.loss.item() > 0
    assert 0 < result.chance <= 1
    assert_trains(model, result.loss)
    assert all(p.grad.abs().sum() > 0 for p in model.extractor.parameters())


def test_contrastive_logits_stay_float32_under_bf16_autocast() -> None:
    model = PretextModel(task="contrastive", **TINY)
    images = torch.rand(2, 3, 48, 72)
    torch.manual_seed(3)
    reference = pretext_loss(model, images, temperature=64.0, targets_per_image=8)
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = pretext_loss(model, images, temperature=64.0, targets_per_image=8)
    assert mixed.loss.dtype == torch.float32
    assert mixed.chance == reference.chance  # the same draws
    assert abs(mixed.loss.item() - reference.loss.item()) <= 0.05 * reference.loss.item()
