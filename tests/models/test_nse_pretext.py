"""The NSE's pretext model and the no-overlap rules of its samples (paper 000 sec. 4.2, Appendix B).

The overlap rules are checked in *pixel* coordinates: feature (i, j) sees the receptive_field-sized window centred
on pixel (stride*i, stride*j) (tests/models/test_nse.py proves that window), and two features overlap iff their
windows intersect along both axes. That is a different computation from negative_mask's Chebyshev distance in
feature positions, so the two agreeing is evidence, not a tautology.
"""

import itertools
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from srtk.models.checkpoint import ModelCard, load_srtk_checkpoint, save_model
from srtk.models.nse import (
    ContrastivePredictor,
    JigsawClassifier,
    NeuralStructureExtractor,
    PretextModel,
    context_offsets,
    jigsaw_offsets,
    min_separation,
    negative_mask,
    receptive_field,
)
from srtk.models.registry import build_model

WINDOW, STRIDE = receptive_field(NeuralStructureExtractor())  # 31 px, 4 px: the NSE's own numbers
SEPARATION = min_separation(WINDOW, STRIDE)
TINY = {"num_features": 8, "out_features": 4, "hidden_features": 8}


def pixel_window(row: int, col: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the input pixels feature (row, col) sees."""
    half = WINDOW // 2
    return STRIDE * row - half, STRIDE * row + half, STRIDE * col - half, STRIDE * col + half


def windows_overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    top_a, bottom_a, left_a, right_a = pixel_window(*a)
    top_b, bottom_b, left_b, right_b = pixel_window(*b)
    return top_a <= bottom_b and top_b <= bottom_a and left_a <= right_b and left_b <= right_a


def test_separation_is_the_fewest_positions_with_disjoint_windows() -> None:
    assert (WINDOW, STRIDE, SEPARATION) == (31, 4, 8)
    assert not windows_overlap((0, 0), (0, SEPARATION))  # 32 px apart: pixels -15..15 and 17..47
    assert windows_overlap((0, 0), (0, SEPARATION - 1))  # 28 px apart: they share pixels 13..15
    assert not windows_overlap((0, 0), (SEPARATION, SEPARATION - 1))  # one axis apart is enough


@pytest.mark.parametrize("layout", ["h", "v", "c", "jigsaw"])
def test_samples_of_one_draw_never_overlap_each_other(layout: str) -> None:
    offsets = jigsaw_offsets(SEPARATION) if layout == "jigsaw" else ((0, 0), *context_offsets(layout, SEPARATION))
    assert len(offsets) == {"h": 3, "v": 3, "c": 5, "jigsaw": 4}[layout]
    for a, b in itertools.combinations(offsets, 2):
        assert not windows_overlap(a, b), (a, b)
    if layout == "jigsaw":  # the 2x2 grid is as tight as disjoint windows allow
        tighter = jigsaw_offsets(SEPARATION - 1)
        assert any(windows_overlap(a, b) for a, b in itertools.combinations(tighter, 2))


@st.composite
def map_and_target(draw: st.DrawFn) -> tuple[int, int, str, tuple[int, int]]:
    layout = draw(st.sampled_from(["h", "v", "c"]))
    offsets = context_offsets(layout, SEPARATION)
    height = draw(st.integers(1, 28))
    width = draw(st.integers(1, 28))
    rows = [r for r in range(height) if all(0 <= r + dy < height for dy, _ in offsets)]
    cols = [c for c in range(width) if all(0 <= c + dx < width for _, dx in offsets)]
    if not rows or not cols:  # no target of this layout fits: the mask must still hold for any position
        return height, width, layout, (draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1)))
    return height, width, layout, (draw(st.sampled_from(rows)), draw(st.sampled_from(cols)))


@settings(max_examples=60, deadline=None)
@given(map_and_target())
def test_negatives_are_exactly_the_positions_whose_windows_overlap_no_sample(
    case: tuple[int, int, str, tuple[int, int]],
) -> None:
    height, width, layout, (row, col) = case
    offsets = context_offsets(layout, SEPARATION)
    mask = negative_mask(torch.tensor([[row, col]]), offsets, height, width, SEPARATION)[0]
    claimed = [(row, col)] + [(row + dy, col + dx) for dy, dx in offsets]
    for y, x in itertools.product(range(height), range(width)):
        overlaps = any(windows_overlap((y, x), c) for c in claimed)
        assert mask[y, x].item() == (not overlaps), (y, x)
        if mask[y, x]:  # and in feature positions: >= separation from each sample (Chebyshev)
            assert all(max(abs(y - cy), abs(x - cx)) >= SEPARATION for cy, cx in claimed)


def test_negative_mask_of_many_targets_is_each_targets_own() -> None:
    offsets = context_offsets("c", SEPARATION)
    targets = torch.tensor([[8, 8], [10, 20], [19, 9]])
    together = negative_mask(targets, offsets, 28, 30, SEPARATION)
    for t in range(len(targets)):
        torch.testing.assert_close(together[t], negative_mask(targets[t : t + 1], offsets, 28, 30, SEPARATION)[0])
    # Target (8, 8) with the cross at (8, 0), (8, 16), (0, 8), (16, 8) on a 28x30 map. Blocked (closer than 8
    # along both axes to one of them): rows 1..15 x cols 0..23 (target and side arms, 15 * 24 = 360), plus what
    # the vertical arms add, row 0 x cols 1..15 (15) and rows 16..23 x cols 1..15 (120): 495 of 840.
    free = together[0]
    assert free.sum().item() == 840 - 495
    assert free[0, 0] and free[16, 0] and free[0, 16]  # the diagonal gaps between the arms of the cross
    assert not free[1:16, :24].any() and not free[16:24, 1:16].any()


@pytest.mark.parametrize("sampling", ["h", "v", "c"])
def test_contrastive_pretext_model_layout(sampling: str) -> None:
    model = PretextModel(task="contrastive", sampling=sampling, **TINY)
    assert model.separation == 8
    assert model.offsets == context_offsets(sampling, 8)
    assert isinstance(model.head, ContrastivePredictor)
    assert model.head.num_context == {"h": 2, "v": 2, "c": 4}[sampling]
    assert sum(isinstance(m, torch.nn.Linear) for m in model.head.modules()) == 3  # predictor_layers


def test_jigsaw_pretext_model_layout_and_forward_is_the_extractor() -> None:
    model = PretextModel(task="jigsaw", **TINY)
    assert model.offsets == ((0, 0), (0, 8), (8, 0), (8, 8))
    assert isinstance(model.head, JigsawClassifier)
    img = torch.rand(2, 3, 20, 24)
    feats = model(img)
    assert feats.shape == (2, 4, 5, 6)
    torch.testing.assert_close(feats, model.extractor(img), rtol=0, atol=0)


def test_pretext_model_rejects_unknown_task_and_sampling() -> None:
    with pytest.raises(ValueError, match="choose one of: contrastive, jigsaw"):
        PretextModel(task="rotation")
    with pytest.raises(ValueError, match="choose one of: h, v, c"):
        PretextModel(sampling="diagonal")


@pytest.mark.parametrize(("task", "sampling"), [("contrastive", "c"), ("jigsaw", "v")])
def test_pretext_checkpoint_round_trip_keeps_task_and_sampling(tmp_path: Path, task: str, sampling: str) -> None:
    model = build_model("nse-pretext", task=task, sampling=sampling, predictor_layers=2, **TINY).eval()
    card = ModelCard(architecture="nse-pretext", config=model.card_config(), scale=1, method=f"pretrain-{task}")
    assert card.config["task"] == task and card.config["sampling"] == sampling
    save_model(tmp_path / "nse.safetensors", model, card)
    loaded, loaded_card = load_srtk_checkpoint(tmp_path / "nse.safetensors", build_model)
    assert isinstance(loaded, PretextModel)
    assert (loaded.task, loaded.sampling, loaded.offsets) == (task, sampling, model.offsets)
    assert loaded_card == card
    img = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(img), model(img), rtol=0, atol=0)
    assert loaded.state_dict().keys() == model.state_dict().keys()
