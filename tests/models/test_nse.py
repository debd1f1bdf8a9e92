"""The neural structure extractor of SPSR-P/J (paper 000 sec. 4.1-4.2, Appendix A) and its pretext heads."""

import itertools

import pytest
import torch
from torch import nn

from srtk.models.nse import (
    ContrastivePredictor,
    JigsawClassifier,
    NeuralStructureExtractor,
    context_offsets,
    jigsaw_offsets,
    min_separation,
    negative_mask,
    receptive_field,
)
from tests.models.checks import assert_trains

TINY_NSE = {"num_features": 8, "out_features": 4}


def test_nse_receptive_field_is_31_with_stride_4() -> None:
    nse = NeuralStructureExtractor()
    assert receptive_field(nse) == (31, 4)  # Appendix A: 31x31; sec. 4.1: stride 4
    assert sum(isinstance(m, nn.Conv2d) for m in nse.modules()) == 6  # "6 convolutional layers"


def test_receptive_field_walks_kernel_stride_and_dilation() -> None:
    chain = nn.Sequential(
        nn.Conv2d(1, 1, 3, dilation=2),  # effective 5x5: 5
        nn.Conv2d(1, 1, 3, stride=2),  # +2: 7, jump 2
        nn.Conv2d(1, 1, 3),  # +2*2: 11
        nn.Conv2d(1, 1, 5, stride=3),  # +4*2: 19, jump 6
    )
    assert receptive_field(chain) == (19, 6)
    with pytest.raises(ValueError, match="square"):
        receptive_field(nn.Conv2d(1, 1, (1, 3)))


def test_nse_feature_sees_exactly_the_31x31_window_centred_on_4i_4j() -> None:
    nse = NeuralStructureExtractor()
    with torch.no_grad():
        for param in nse.parameters():
            param.abs_()  # positive weights and input keep every ReLU open: the support is the full window
    img = torch.rand(1, 3, 64, 64, requires_grad=True)
    feats = nse(img)
    assert feats.shape == (1, 32, 16, 16)
    feats[0, :, 8, 5].sum().backward()
    rows, cols = torch.nonzero(img.grad[0].abs().sum(0), as_tuple=True)
    assert (rows.min().item(), rows.max().item()) == (32 - 15, 32 + 15)
    assert (cols.min().item(), cols.max().item()) == (20 - 15, 20 + 15)
    assert rows.numel() == 31 * 31


def test_nse_parameter_count() -> None:
    # Hand count of the layer list in srtk/models/nse.py (3x3 convs with bias).
    expected = (3 * 64 * 9 + 64) + 2 * (64 * 64 * 9 + 64) + (64 * 32 * 9 + 32) + 2 * (32 * 32 * 9 + 32)
    assert sum(p.numel() for p in NeuralStructureExtractor().parameters()) == expected == 112_608


def test_nse_smoke_and_output_size() -> None:
    nse = NeuralStructureExtractor(**TINY_NSE)
    feats = nse(torch.rand(2, 3, 16, 18))
    assert feats.shape == (2, 4, 4, 5)  # ceil(H/4), ceil(W/4)
    assert (feats >= 0).all()  # the last layer is followed by ReLU (Appendix A)
    assert_trains(nse, feats.mean())


def test_nse_channels_last_and_bf16_autocast_agree() -> None:
    nse = NeuralStructureExtractor(**TINY_NSE)
    img = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        reference = nse(img)
        torch.testing.assert_close(nse(img.to(memory_format=torch.channels_last)), reference, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = nse(img)
    torch.testing.assert_close(low.float(), reference, atol=0.03 * reference.abs().max().item(), rtol=0.03)


def test_non_overlap_separation_and_sampling_offsets() -> None:
    assert min_separation(31, 4) == 8  # 8 * 4 = 32 > 31 > 7 * 4
    assert context_offsets("h", 8) == ((0, -8), (0, 8))
    assert context_offsets("v", 8) == ((-8, 0), (8, 0))
    assert context_offsets("c", 8) == ((0, -8), (0, 8), (-8, 0), (8, 0))
    assert jigsaw_offsets(8) == ((0, 0), (0, 8), (8, 0), (8, 8))
    with pytest.raises(ValueError, match="choose one of"):
        context_offsets("diagonal", 8)


def test_negative_mask_matches_a_brute_force_count() -> None:
    height, width, sep = 20, 30, 8
    offsets = context_offsets("h", sep)
    targets = torch.tensor([[10, 15], [0, 8]])
    mask = negative_mask(targets, offsets, height, width, sep)
    assert mask.shape == (2, height, width)
    for t, (ty, tx) in enumerate(targets.tolist()):
        claimed = [(ty, tx)] + [(ty + dy, tx + dx) for dy, dx in offsets]
        for y, x in itertools.product(range(height), range(width)):
            free = all(max(abs(y - cy), abs(x - cx)) >= sep for cy, cx in claimed)
            assert mask[t, y, x].item() == free
    # Target (10, 15): rows 3..17 are blocked across columns 0..29 (15 - 8 - 7 .. 15 + 8 + 7): only rows
    # 0-2 and 18-19 are free, 5 rows x 30 columns.
    assert mask[0].sum().item() == 5 * 30


def test_contrastive_predictor_predicts_each_target_from_its_shifted_context() -> None:
    head = ContrastivePredictor(num_features=4, num_context=2, hidden_features=16)
    feats = torch.randn(2, 4, 5, 9)
    offsets = context_offsets("h", 3)
    out = head.predict_map(feats, offsets)
    assert out.origin == (0, 3)
    assert out.predicted.shape == out.target.shape == (2, 4, 5, 3)  # columns 3..5 have both neighbours
    row, col = 2, 4  # absolute position (2, 4): context at columns 1 and 7
    direct = head(torch.cat([feats[:, :, row, col - 3], feats[:, :, row, col + 3]], dim=1))
    torch.testing.assert_close(out.predicted[:, :, row, col - 3], direct)
    torch.testing.assert_close(out.target[:, :, row, col - 3], feats[:, :, row, col])
    assert_trains(head, out.predicted.square().mean())
    with pytest.raises(ValueError, match="2 context positions"):
        head.predict_map(feats, context_offsets("c", 1))


def test_jigsaw_permutation_table_has_24_distinct_permutations() -> None:
    table = JigsawClassifier().permutations
    assert table.shape == (24, 4)
    assert len({tuple(row) for row in table.tolist()}) == 24
    assert all(sorted(row) == [0, 1, 2, 3] for row in table.tolist())
    assert table[0].tolist() == [0, 1, 2, 3]  # label 0 is the unshuffled grid
    assert "permutations" not in JigsawClassifier().state_dict()  # a constant, not checkpoint state


def test_jigsaw_classifier_on_a_tiny_input() -> None:
    head = JigsawClassifier(num_features=2, hidden_features=8)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == 3  # "three fully connected layers"
    tiles = torch.arange(16.0).reshape(2, 4, 2)  # tile k of image n holds (8n + 2k, 8n + 2k + 1)
    labels = torch.tensor([0, 23])  # identity and the last permutation, (3, 2, 1, 0)
    shuffled = head.shuffle(tiles, labels)
    assert shuffled[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert shuffled[1].tolist() == [14, 15, 12, 13, 10, 11, 8, 9]
    logits = head(shuffled)
    assert logits.shape == (2, 24)
    assert_trains(head, torch.nn.functional.cross_entropy(logits, labels))  # eq. 13
