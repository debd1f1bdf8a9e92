"""NLSN (Mei et al. 2021): spherical-LSH bucketed attention, its dense limit, and the published model size."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.models.nlsn import NLSN, NonLocalSparseAttention
from tests.models.checks import check_channels_last_and_autocast, check_smoke, parameter_count

TINY = {"num_blocks": 2, "num_features": 16, "attention_interval": 1, "chunk_size": 16}
EDSR_LARGE_X4 = 43_089_923  # tests/models/test_edsr.py, parity-checked


def test_parameter_count() -> None:
    # EDSR-large plus 5 NLSAs, each a 3x3 conv 256 -> 64 (matching) and a 1x1 conv 256 -> 256 (assembly).
    per_attention = (256 * 64 * 9 + 64) + (256 * 256 + 256)
    with torch.device("meta"):
        model = NLSN()
        assert len(model.attentions) == 5
        assert parameter_count(model) == EDSR_LARGE_X4 + 5 * per_attention == 44_156_483
        # Paper 003 (Table 4) lists NLSN at 46.52M: the x8 model's size (one more x2 upsampling stage).
        assert round(parameter_count(NLSN(scale=8)) / 1e6, 2) == 46.52


def _dense_attention(layer: NonLocalSparseAttention, x: Tensor) -> Tensor:
    """Plain non-local attention with the NLSA embeddings: softmax(q . k / |k|) v over all positions."""
    n, c, h, w = x.shape
    match = layer.match(x).flatten(2).transpose(1, 2)
    assembly = layer.assembly(x).flatten(2).transpose(1, 2)
    scores = match @ F.normalize(match, dim=-1, eps=5e-5).transpose(1, 2)
    out = torch.softmax(scores, dim=-1) @ assembly
    return x + layer.res_scale * out.transpose(1, 2).reshape(n, c, h, w)


def test_attention_is_dense_when_one_chunk_holds_the_image() -> None:
    layer = NonLocalSparseAttention(num_features=8, reduction=2, chunk_size=64, num_hashes=3, res_scale=1.0)
    x = torch.randn(2, 8, 6, 7)  # 42 positions < 64: every round sees everything
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _dense_attention(layer, x), atol=1e-5, rtol=1e-5)


def test_each_query_sees_only_its_chunk_and_the_adjacent_ones() -> None:
    layer = NonLocalSparseAttention(num_features=4, reduction=1, chunk_size=4, num_hashes=1)
    length = 16  # 4 chunks of 4
    match, assembly = torch.randn(1, length, 4), torch.randn(1, length, 4)
    codes = (torch.arange(length) // 4).view(1, 1, length)  # buckets in position order: chunk j = bucket j
    out = layer.attend(match, assembly, codes)

    keys = F.normalize(match, dim=-1, eps=5e-5)
    scores = match @ keys.transpose(1, 2)  # (1, L, L)
    chunk_of = torch.arange(length) // 4
    distance = (chunk_of.view(-1, 1) - chunk_of.view(1, -1)) % 4
    allowed = (distance == 0) | (distance == 1) | (distance == 3)  # itself, previous and next, cyclic
    expected = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ assembly
    torch.testing.assert_close(out, expected)


def test_rounds_are_mixed_by_their_attention_mass() -> None:
    """Two rounds, two buckets each: round weights softmax over the rounds' log-sum-exp scores."""
    layer = NonLocalSparseAttention(num_features=2, reduction=1, chunk_size=2, num_hashes=2)
    match, assembly = torch.randn(1, 4, 2), torch.randn(1, 4, 2)
    codes = torch.tensor([[[0, 0, 1, 1], [0, 1, 0, 1]]])  # round 1 pairs (0,1),(2,3); round 2 (0,2),(1,3)
    keys = F.normalize(match, dim=-1, eps=5e-5)
    scores = match @ keys.transpose(1, 2)
    results, masses = [], []
    # With 2 chunks the previous and next chunk are the same other chunk (counted twice, as in NLSN).
    for groups in ([[0, 1], [2, 3]], [[0, 2], [1, 3]]):
        multiplicity = torch.full((4, 4), 2.0)
        for group in groups:
            for i in group:
                multiplicity[i, group] = 1.0
        logits = scores + multiplicity.log()
        results.append(torch.softmax(logits, dim=-1) @ assembly)
        masses.append(torch.logsumexp(logits, dim=-1))
    weights = torch.softmax(torch.stack(masses), dim=0).unsqueeze(-1)
    expected = (torch.stack(results) * weights).sum(dim=0)
    torch.testing.assert_close(layer.attend(match, assembly, codes), expected)


def test_spherical_hash_sends_a_negated_vector_to_the_opposite_bucket() -> None:
    layer = NonLocalSparseAttention(num_features=8, reduction=1, num_hashes=3)
    vectors = torch.randn(1, 50, 8)
    torch.manual_seed(7)
    codes = layer.hash_codes(vectors, 16)
    torch.manual_seed(7)  # same rotations
    negated = layer.hash_codes(-vectors, 16)
    torch.manual_seed(7)
    scaled = layer.hash_codes(3.0 * vectors, 16)
    assert codes.shape == (1, 3, 50) and codes.min() >= 0 and codes.max() < 16
    torch.testing.assert_close(negated, (codes + 8) % 16)  # argmax([xR; -xR]) flips halves
    torch.testing.assert_close(scaled, codes)  # only the direction matters


@pytest.mark.parametrize(("length", "buckets"), [(100, 2), (144 * 16, 16), (144 * 3, 4), (10**6, 128)])
def test_bucket_count(length: int, buckets: int) -> None:
    assert NonLocalSparseAttention().num_buckets(length) == buckets


def test_output_depends_only_on_the_seed() -> None:
    model = NLSN(scale=2, **TINY).eval()
    lr = torch.rand(1, 3, 12, 12)  # 144 positions, 9 chunks of 16: buckets matter
    outputs = []
    with torch.no_grad():
        for seed in (1, 1, 2):
            torch.manual_seed(seed)
            outputs.append(model(lr))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert not torch.equal(outputs[0], outputs[2])


def test_attention_placement_and_taps() -> None:
    model = NLSN(scale=2, num_blocks=4, num_features=16, attention_interval=2, chunk_size=64).eval()
    assert len(model.attentions) == 3  # before block 1, after blocks 2 and 4
    lr = torch.rand(1, 3, 8, 8)  # 64 positions: dense attention, no randomness in the result
    with torch.no_grad():
        shallow = model.shallow(lr)
        feats = model.attentions[0](shallow)
        feats = model.blocks[0](feats)
        first = feats
        feats = model.attentions[1](model.blocks[1](feats))
        second = feats
        feats = model.attentions[2](model.blocks[3](model.blocks[2](feats)))
        trunk, tapped = model.trunk(shallow, taps=(1, 2, 4))
        torch.testing.assert_close(tapped, [first, second, feats])
        torch.testing.assert_close(trunk, model.trunk_conv(feats) + shallow)


@pytest.mark.parametrize("scale", [2, 4])
def test_smoke(scale: int) -> None:
    check_smoke(NLSN(scale=scale, **TINY), torch.rand(2, 3, 12, 12))


def test_channels_last_and_autocast() -> None:
    check_channels_last_and_autocast(NLSN(**TINY), torch.rand(1, 3, 12, 12), seed=0)
