"""The pretext losses that train the neural structure extractor (paper 000 sec. 4.2, eqs. 11-13, Appendix B).

Contrastive prediction (SPSR-P): P predicts the feature of a target position from its context positions; InfoNCE
(eq. 11) with h = exp(tau * cos) (eq. 12) picks the target's own feature out of every position of the same map
whose receptive field overlaps neither the target's nor the context's. Jigsaw (SPSR-J): J classifies which of
the 24 permutations shuffled the features of a 2x2 grid of non-overlapping positions, cross-entropy (eq. 13).
Both report their top-1 accuracy (Appendix B.2, Fig. 6) and its chance level. Every random draw (targets,
grids, permutation labels) comes from the global torch CPU generator, which the training engine checkpoints.
Convention: structure features (N, C, h, w) from F; images RGB, NCHW, float in [0, 1].
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.errors import ConfigError
from srtk.models.nse import ContrastivePredictor, JigsawClassifier, PretextModel, jigsaw_offsets, negative_mask


class PretextResult(NamedTuple):
    """A pretext loss with the accuracy it measures on the same draws."""

    loss: Tensor  # scalar, to minimise
    accuracy: Tensor  # scalar in [0, 1], detached: top-1 (positive ranked first / right permutation)
    chance: float  # that accuracy's chance level for these inputs: mean 1/(1 + #negatives) per target; 1/24


def _valid_targets(height: int, width: int, offsets: tuple[tuple[int, int], ...]) -> tuple[int, int, int, int]:
    """(top, left, rows, cols): the block of target positions whose every context position lies in the map."""
    top, left = max(0, -min(dy for dy, _ in offsets)), max(0, -min(dx for _, dx in offsets))
    rows = height - top - max(0, max(dy for dy, _ in offsets))
    cols = width - left - max(0, max(dx for _, dx in offsets))
    if rows < 1 or cols < 1:  # the patch is too small for the layout: a configuration error, not a bug
        need_rows, need_cols = height - rows + 1, width - cols + 1
        raise ConfigError(
            f"a {height}x{width} feature map has no target position with context at {offsets}: the layout needs "
            f"at least {need_rows}x{need_cols} structure features (F's stride times that in pixels)"
        )
    return top, left, rows, cols


def contrastive_prediction_loss(
    feats: Tensor,
    predictor: ContrastivePredictor,
    offsets: tuple[tuple[int, int], ...],
    separation: int,
    *,
    temperature: float = 64.0,  # tau of eq. 12: "set to 64 for stable convergence" (sec. 5.1)
    targets_per_image: int | None = 64,  # not stated in the paper; None: every valid target position
) -> PretextResult:
    """L^Pred of eq. 11 with h of eq. 12, over `targets_per_image` targets drawn uniformly per image.

    feats: F(I), (N, C, H, W). A target is drawn (without replacement) among the positions whose context at
    `offsets` lies in the map; its positive is its own feature f_{X_t}, its negatives every position of the same
    map `separation` or more away (Chebyshev, in feature positions) from the target and from each context
    position (negative_mask). The loss averages over all N * T targets.
    """
    if len(offsets) != predictor.num_context:
        raise ValueError(f"P was built for {predictor.num_context} context positions, got {len(offsets)} offsets")
    batch, channels, height, width = feats.shape
    top, left, rows, cols = _valid_targets(height, width, offsets)
    num_valid = rows * cols
    num_targets = num_valid if targets_per_image is None else min(targets_per_image, num_valid)
    # Uniform draws without replacement, one row of keys per image: a random permutation of the valid positions.
    drawn = torch.rand(batch, num_valid).argsort(dim=1)[:, :num_targets].to(feats.device)  # (N, T)
    target_rc = torch.stack((top + drawn // cols, left + drawn % cols), dim=-1)  # (N, T, 2) (row, col)

    # Gather the target and its context: (N, T, M+1) flat indices into the H*W map, target first.
    claimed = torch.tensor(((0, 0), *offsets), device=feats.device)  # (M+1, 2)
    claimed_rc = target_rc[:, :, None, :] + claimed  # (N, T, M+1, 2)
    flat = (claimed_rc[..., 0] * width + claimed_rc[..., 1]).reshape(batch, 1, -1)  # (N, 1, T*(M+1))
    feats_flat = feats.reshape(batch, channels, height * width)
    picked = feats_flat.gather(2, flat.expand(-1, channels, -1))  # (N, C, T*(M+1))
    picked = picked.reshape(batch, channels, num_targets, -1).permute(0, 2, 3, 1)  # (N, T, M+1, C)
    context = picked[:, :, 1:].flatten(2)  # (N, T, M*C): concatenated in `offsets` order, as predict_map
    predicted = predictor(context)  # p_t: (N, T, C)

    # Cosine similarity of each prediction to every position of its map, in float32 even under autocast:
    # tau = 64 turns a bf16 rounding of the cosine (~4e-3) into a logit error of ~0.25.
    with torch.autocast(feats.device.type, enabled=False):
        unit_pred = F.normalize(predicted.float(), dim=-1)
        unit_feats = F.normalize(feats_flat.float(), dim=1)
        logits = temperature * torch.einsum("ntc,nch->nth", unit_pred, unit_feats)  # log h(f, p_t): (N, T, H*W)

    negatives = negative_mask(target_rc.reshape(-1, 2), offsets, height, width, separation)
    negatives = negatives.reshape(batch, num_targets, height * width)
    positive_index = flat.reshape(batch, num_targets, -1)[..., :1]  # (N, T, 1): the target's own position
    positive = logits.gather(2, positive_index).squeeze(-1)  # (N, T)
    is_positive = torch.zeros_like(negatives).scatter_(2, positive_index, True)
    # eq. 11: -log(h_pos / (h_pos + sum_n h_n)) = logsumexp over S minus the positive logit, S = positive + negatives
    in_set = negatives | is_positive
    denominator = logits.masked_fill(~in_set, float("-inf")).logsumexp(dim=-1)
    loss = (denominator - positive).mean()

    with torch.no_grad():
        # Top-1 (Appendix B.2): right when the positive is strictly the most similar; a tie is a miss, or a
        # collapsed F (all features parallel) would score 100%.
        best_negative = logits.masked_fill(~negatives, float("-inf")).amax(dim=-1)
        accuracy = (positive > best_negative).float().mean()
        chance = (1.0 / (1.0 + negatives.sum(dim=-1).double())).mean().item()
    return PretextResult(loss, accuracy, chance)


def jigsaw_loss(
    feats: Tensor, classifier: JigsawClassifier, separation: int, *, grids_per_image: int = 1
) -> PretextResult:
    """L^Jig of eq. 13 over `grids_per_image` random 2x2 grids per image, each shuffled by a random permutation.

    feats: F(I), (N, C, H, W). A grid's tiles sit at jigsaw_offsets(separation) from its corner (disjoint
    receptive fields, sec. 4.2), the corner uniform over the positions that keep the whole grid in the map.
    """
    batch, channels, height, width = feats.shape
    offsets = torch.tensor(jigsaw_offsets(separation))  # (4, 2) row-major: the order J's labels refer to
    span_rows, span_cols = (offsets.amax(dim=0) + 1).tolist()
    if height < span_rows or width < span_cols:  # the patch is too small: a configuration error, not a bug
        raise ConfigError(
            f"a {height}x{width} feature map cannot hold a 2x2 grid of tiles {separation} apart: it needs at "
            f"least {span_rows}x{span_cols} structure features (F's stride times that in pixels)"
        )
    corners = torch.stack(
        (
            torch.randint(height - span_rows + 1, (batch, grids_per_image)),
            torch.randint(width - span_cols + 1, (batch, grids_per_image)),
        ),
        dim=-1,
    )  # (N, G, 2)
    labels = torch.randint(len(classifier.permutations), (batch * grids_per_image,))  # y of eq. 13
    tile_rc = corners[:, :, None, :] + offsets  # (N, G, 4, 2)
    flat = (tile_rc[..., 0] * width + tile_rc[..., 1]).reshape(batch, 1, -1).to(feats.device)  # (N, 1, G*4)
    tiles = feats.reshape(batch, channels, -1).gather(2, flat.expand(-1, channels, -1))  # (N, C, G*4)
    tiles = tiles.reshape(batch, channels, -1, len(offsets)).permute(0, 2, 3, 1).flatten(0, 1)  # (N*G, 4, C)
    labels = labels.to(feats.device)
    logits = classifier(classifier.shuffle(tiles, labels))  # c of eq. 13: (N*G, 24)
    loss = F.cross_entropy(logits.float(), labels)
    accuracy = (logits.detach().argmax(dim=-1) == labels).float().mean()
    return PretextResult(loss, accuracy, 1.0 / len(classifier.permutations))


def pretext_loss(
    model: PretextModel, images: Tensor, *, temperature: float, targets_per_image: int | None
) -> PretextResult:
    """The pretext loss of `model.task` on a batch of images (RGB, NCHW, [0, 1]): F, then eq. 11 or eq. 13."""
    feats = model(images)  # (N, C, ceil(H/4), ceil(W/4))
    if isinstance(model.head, ContrastivePredictor):  # task "contrastive": the head follows the task
        return contrastive_prediction_loss(
            feats,
            model.head,
            model.offsets,
            model.separation,
            temperature=temperature,
            targets_per_image=targets_per_image,
        )
    return jigsaw_loss(feats, model.head, model.separation)
