"""NLSN: non-local sparse attention network (Mei, Fan and Zhou, CVPR 2021, sec. 3-4), one of the backbones
PCL-SR retrains (paper 004, Table II).

An EDSR-large trunk (32 residual blocks, 256 features, residual scaling 0.1) with a non-local sparse
attention (NLSA) layer before the first block and after every 8th block (5 in all). NLSA (sec. 3):
- embed: a 3x3 conv to C / 4 channels gives the matching embedding, a 1x1 conv gives the assembled values;
- spherical LSH (sec. 3.2): h(x) = argmax([x R; -x R]) with a fresh random Gaussian R of c x m/2 per
  forward, m buckets; r = 4 independent hashing rounds;
- attention bucket: positions are sorted by bucket and cut into chunks of k = 144; each query attends, with
  a softmax over dot products with L2-normalised keys, to its own chunk and the two adjacent ones;
- the r rounds are mixed with weights softmax over rounds of each round's log-sum-exp score (sec. 3.3);
- out = x + res_scale * attention.
The paper leaves the bucket count and padding open; srtk uses the authors' rule (m = L / k rounded up to
even, at most 128) and pads a chunk by repeating the sorted sequence's tail, as their code does. Inputs too
small for one full chunk use a single chunk of all L positions, which is exact dense attention.
RGB, NCHW, float in [0, 1] in and out. About 44.2M parameters at x4 (EDSR-large's 43.1M + 5 x 213k).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.models.backbone import check_taps
from srtk.models.blocks import (
    conv2d,
)
from srtk.models.edsr import EDSR

MATCH_KERNEL_SIZE = 3  # matching embedding conv (authors' code; the paper only calls it an embedding)
ASSEMBLY_KERNEL_SIZE = 1
MIN_BUCKETS = 2  # spherical LSH needs m / 2 >= 1 rotations
MAX_BUCKETS = 128  # the authors' cap on m for large images
NORMALIZE_EPS = 5e-5  # floor of the key norm in the L2 normalisation (authors' code)
ADJACENT_CHUNKS = 3  # each chunk attends to itself, the previous and the next chunk


class NonLocalSparseAttention(nn.Module):
    """NLSA: attention restricted to LSH buckets, multi-round (NLSN sec. 3). (N, C, H, W) -> same shape.

    The hash draws fresh random rotations from torch's global generator on every forward (as in the
    paper): seed it for reproducible outputs.
    """

    def __init__(
        self,
        *,
        num_features: int = 256,  # NLSN sec. 4.1 (EDSR-large width)
        reduction: int = 4,  # matching embedding has C / 4 channels
        chunk_size: int = 144,  # k, NLSN sec. 4.1
        num_hashes: int = 4,  # r hashing rounds, NLSN sec. 4.1
        res_scale: float = 0.1,  # same scaling as the residual blocks (EDSR-large)
    ) -> None:
        super().__init__()
        if num_features % reduction:
            raise ValueError(f"num_features {num_features} is not divisible by reduction {reduction}")
        self.chunk_size = chunk_size
        self.num_hashes = num_hashes
        self.res_scale = res_scale
        self.match = conv2d(num_features, num_features // reduction, MATCH_KERNEL_SIZE)
        self.assembly = conv2d(num_features, num_features, ASSEMBLY_KERNEL_SIZE)

    def num_buckets(self, length: int) -> int:
        """m: about one bucket per chunk, even (m/2 rotations), within [MIN_BUCKETS, MAX_BUCKETS]."""
        chunks = length // self.chunk_size
        return max(MIN_BUCKETS, min(chunks + chunks % 2, MAX_BUCKETS))

    def hash_codes(self, match: Tensor, num_buckets: int) -> Tensor:
        """Spherical LSH: (N, L, c) embeddings -> (N, r, L) bucket ids in [0, num_buckets)."""
        # Codes are discrete: a bfloat16 rounding could flip an argmax, so hash in float32. The norm of x
        # does not change the argmax: no need to normalise first.
        with torch.autocast(device_type=match.device.type, enabled=False):
            shape = (match.shape[-1], self.num_hashes, num_buckets // 2)
            rotations = torch.randn(shape, device=match.device, dtype=torch.float32)
            rotated = torch.einsum("nlc,crb->nrlb", match.detach().float(), rotations)  # (N, r, L, m/2)
            return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)

    def attend(self, match: Tensor, assembly: Tensor, codes: Tensor) -> Tensor:
        """Bucketed attention: (N, L, c) keys/queries, (N, L, C) values, (N, r, L) codes -> (N, L, C)."""
        n, length, _ = match.shape
        channels = assembly.shape[-1]
        positions = torch.arange(length, device=codes.device)
        # Sort each round by bucket; the position breaks ties so the order is deterministic.
        order = (codes * length + positions).argsort(dim=-1)  # (N, r, L)
        undo = order.argsort(dim=-1)

        def sort(seq: Tensor) -> Tensor:  # (N, L, D) -> (N, r, L, D) in each round's bucket order
            seq = seq.unsqueeze(1).expand(n, self.num_hashes, length, seq.shape[-1])
            return seq.gather(2, order.unsqueeze(-1).expand(*order.shape, seq.shape[-1]))

        queries, values = sort(match), sort(assembly)
        chunk = min(self.chunk_size, length)
        padding = -length % chunk  # repeat the sorted tail to fill the last chunk (authors' code)
        if padding:
            queries = torch.cat([queries, queries[:, :, -padding:]], dim=2)
            values = torch.cat([values, values[:, :, -padding:]], dim=2)
        queries = queries.unflatten(2, (-1, chunk))  # (N, r, K, k, c)
        values = values.unflatten(2, (-1, chunk))  # (N, r, K, k, C)
        keys = F.normalize(queries, dim=-1, eps=NORMALIZE_EPS)

        def with_adjacent(seq: Tensor) -> Tensor:  # chunk j sees chunks j, j-1, j+1 (cyclic): (.., 3k, D)
            return torch.cat([seq, seq.roll(1, dims=2), seq.roll(-1, dims=2)], dim=3)

        scores = torch.einsum("nrkic,nrkjc->nrkij", queries, with_adjacent(keys))  # (N, r, K, k, 3k)
        bucket_score = torch.logsumexp(scores, dim=-1, keepdim=True)  # each query's log partition sum
        attended = torch.exp(scores - bucket_score) @ with_adjacent(values)  # (N, r, K, k, C)

        attended = attended.flatten(2, 3)[:, :, :length]  # (N, r, L, C), padding dropped
        bucket_score = bucket_score.flatten(2, 4)[:, :, :length]  # (N, r, L)
        attended = attended.gather(2, undo.unsqueeze(-1).expand(n, self.num_hashes, length, channels))
        bucket_score = bucket_score.gather(2, undo)
        # Multi-round NLSA: rounds weighted by how much attention mass each found (softmax over rounds).
        round_weights = torch.softmax(bucket_score, dim=1).unsqueeze(-1)
        return (attended * round_weights).sum(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        n, channels, height, width = x.shape
        match = self.match(x).flatten(2).transpose(1, 2)  # (N, L, c)
        assembly = self.assembly(x).flatten(2).transpose(1, 2)  # (N, L, C)
        codes = self.hash_codes(match, self.num_buckets(height * width))
        attended = self.attend(match, assembly, codes)  # (N, L, C)
        return x + self.res_scale * attended.transpose(1, 2).reshape(n, channels, height, width)


class NLSN(EDSR):
    """NLSN backbone. Taps (1-based) are the outputs of residual block i, after the NLSA that follows it."""

    def __init__(
        self,
        *,
        scale: int = 4,
        num_blocks: int = 32,  # NLSN sec. 4.1 (EDSR-large trunk)
        num_features: int = 256,  # NLSN sec. 4.1
        res_scale: float = 0.1,  # EDSR-large residual scaling, also applied to the NLSA output
        attention_interval: int = 8,  # an NLSA after every 8th block, plus one before the first (5 in all)
        chunk_size: int = 144,  # k, NLSN sec. 4.1
        num_hashes: int = 4,  # r, NLSN sec. 4.1
        reduction: int = 4,  # matching embedding channels C / 4
        kernel_size: int = 3,
    ) -> None:
        super().__init__(
            scale=scale,
            num_blocks=num_blocks,
            num_features=num_features,
            res_scale=res_scale,
            kernel_size=kernel_size,
        )  # EDSR's head, residual blocks, trunk conv, upsampler and reconstruction
        self.attention_interval = attention_interval
        # attentions[0] runs before the first block; attentions[j] after block j * attention_interval.
        self.attentions = nn.ModuleList(
            NonLocalSparseAttention(
                num_features=num_features,
                reduction=reduction,
                chunk_size=chunk_size,
                num_hashes=num_hashes,
                res_scale=res_scale,
            )
            for _ in range(1 + num_blocks // attention_interval)
        )

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        check_taps(taps, self.num_blocks)
        feats, tapped = self.attentions[0](shallow), {}
        for index, block in enumerate(self.blocks, start=1):
            feats = block(feats)
            if index % self.attention_interval == 0:
                feats = self.attentions[index // self.attention_interval](feats)
            if index in taps:
                tapped[index] = feats
        trunk_feats = self.trunk_conv(feats) + shallow  # global residual, as EDSR
        return trunk_feats, [tapped[tap] for tap in taps]
