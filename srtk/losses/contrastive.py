"""PCL's contrastive loss L_CL (paper 004 sec. III-D, eq. 8-10), the contrastive discriminator loss L_CLD that
trains the embedding network E_D (sec. III-C, eq. 7), and PCLObjective, which builds the embedding a
ContrastiveConfig names (Table IV: E_D on Haar / RGB / FFT input, or a fixed ImageNet VGG19; Table V: a fixed
pre-trained E_D, PCL-F) and draws the samples (srtk.losses.contrastive_samples).

Convention: images RGB, NCHW, float in [0, 1]; features (N, C, H, W), sample sets (K, N, C, H, W); the losses
are computed in float32 whatever the features' dtype.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from srtk.config.train import ContrastiveConfig
from srtk.errors import CheckpointError, ConfigError
from srtk.losses.contrastive_samples import SampleGenerator
from srtk.losses.perceptual import IMAGENET_MEAN, IMAGENET_STD, frozen_vgg19_trunk
from srtk.models.embedding import EmbeddingNetwork
from srtk.models.registry import build_model, load_network_with_card

COSINE_EPS = 1e-8  # a zero feature vector has no direction: its cosine is taken as 0
# reading: Table IV config 1 does not name VGG19's layers. "The first 4 intermediate layers" (sec. III-D) of the
# VGG19 used by contrastive SR losses ([13], and the authors' release, whose VGG19 slices end at these) are the
# first ReLU of each of its first four blocks.
VGG_EMBEDDING_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def mean_cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """s of eq. 9: the cosine of the C-vectors at each pixel, averaged over the H x W pixels.

    (..., C, H, W) x (..., C, H, W) -> (...), broadcasting the leading dimensions; float32 at least.
    """
    a, b = (x if x.dtype == torch.float64 else x.float() for x in (a, b))
    a_unit = a / a.norm(dim=-3, keepdim=True).clamp_min(COSINE_EPS)
    b_unit = b / b.norm(dim=-3, keepdim=True).clamp_min(COSINE_EPS)
    return (a_unit * b_unit).sum(dim=-3).mean(dim=(-2, -1))


def contrastive_loss(
    sr: Sequence[Tensor], positives: Sequence[Tensor], negatives: Sequence[Tensor], temperature: float
) -> Tensor:
    """L_CL of eq. 10: L_{i,l} of eq. 8 averaged over the N images and the L layers.

    Per layer l: sr[l] (N, C, H, W), positives[l] (K_P, N, C, H, W), negatives[l] (K_N, N, C, H, W). For each
    positive j, -log(exp(s_j / tau) / (exp(s_j / tau) + sum_k exp(s_k / tau))), averaged over the K_P positives.
    """
    if not len(sr) == len(positives) == len(negatives) or not sr:
        raise ValueError(f"need the same number (>= 1) of layers, got {len(sr)}, {len(positives)}, {len(negatives)}")
    if temperature <= 0:
        raise ConfigError(f"the temperature tau of eq. 8 must be positive, got {temperature}")
    per_layer = []
    for sr_feats, pos_feats, neg_feats in zip(sr, positives, negatives, strict=True):
        if pos_feats.shape[0] == 0 or neg_feats.shape[0] == 0:
            raise ValueError("eq. 8 needs at least one positive and one negative sample")
        pos_logits = mean_cosine_similarity(sr_feats[None], pos_feats) / temperature  # (K_P, N)
        neg_logits = mean_cosine_similarity(sr_feats[None], neg_feats) / temperature  # (K_N, N)
        # -log(e^p / (e^p + sum_k e^n_k)) = log(e^p + e^logsumexp(n)) - p, stable for any tau
        per_positive = torch.logaddexp(pos_logits, torch.logsumexp(neg_logits, dim=0)) - pos_logits
        per_layer.append(per_positive.mean(dim=0))  # L_{i,l}: (N,)
    return torch.stack(per_layer).mean()  # 1/(NL) sum_i sum_l


def _one_against_a_batch(anchors: Tensor, others: Tensor) -> Tensor:
    """mean_i -log(e^{a_i} / (e^{a_i} + sum_j e^{o_j})): softmax cross-entropy of each anchor against the batch."""
    return (torch.logaddexp(anchors, torch.logsumexp(others, dim=0)) - anchors).mean()


def contrastive_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """L_CLD of eq. 7 as a loss to minimise: each HR score against all SR scores of the batch, plus each negated
    SR score against all negated HR scores.

    reading: eq. 7 is garbled (it prints the log-likelihoods without their minus sign, I^LR under a sum over SR
    images, H_w on some scores only). It is the "one-against-a-batch" loss of its ref. [51] (Yu et al., dual
    contrastive loss), which E_D maximises as a likelihood: srtk minimises its negative; the scores are E_D's
    logits of H_w(HR) and H_w(SR). (N, 1) or (N,) scores; real and fake batches may differ in size.
    """
    real, fake = real_scores.float().flatten(), fake_scores.float().flatten()
    return _one_against_a_batch(real, fake) + _one_against_a_batch(-fake, -real)


class VGGEmbedding(nn.Module):
    """Table IV config 1: a fixed ImageNet VGG19 whose first L ReLU-after-block-start activations embed RGB images."""

    def __init__(self, *, num_layers: int = 4, allow_random: bool = False) -> None:
        super().__init__()  # num_layers: "the first 4 intermediate layers" (sec. III-D)
        if not 1 <= num_layers <= len(VGG_EMBEDDING_LAYERS):
            raise ConfigError(f"the VGG embedding has {len(VGG_EMBEDDING_LAYERS)} layers, not {num_layers}")
        self.layer_names = VGG_EMBEDDING_LAYERS[:num_layers]
        self.trunk, self.layer_indices = frozen_vgg19_trunk(self.layer_names, allow_random=allow_random)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGEmbedding":
        super().train(mode)
        self.trunk.eval()  # a fixed measuring stick, whatever the method does
        return self

    def features(self, img: Tensor, num_layers: int | None = None) -> tuple[Tensor, ...]:
        """The activations of the first `num_layers` embedding layers, shallow to deep."""
        count = len(self.layer_names) if num_layers is None else num_layers
        if not 1 <= count <= len(self.layer_names):
            raise ConfigError(f"this VGG embedding was built with {len(self.layer_names)} layers, not {count}")
        # The ImageNet weights expect normalised inputs (the release feeds its VGG unnormalised images).
        x = (img - self.mean.to(img.dtype)) / self.std.to(img.dtype)
        wanted = self.layer_indices[:count]
        taken = []
        for index, layer in enumerate(self.trunk[: wanted[-1] + 1]):
            x = layer(x)
            if index in wanted:
                taken.append(x)
        return tuple(taken)


def load_embedding_checkpoint(path: Path) -> EmbeddingNetwork:
    """A saved E_D (srtk .safetensors + card, or the authors' .pth) for PCL-F; anything else is a CheckpointError."""
    network, card = load_network_with_card(path)
    if not isinstance(network, EmbeddingNetwork):
        raise CheckpointError(
            f"{path}: holds {card.architecture!r}, not a PCL embedding network (pcl-embedding); PCL-F needs an E_D "
            "saved by a pcl run or converted from the authors' release"
        )
    return network


@contextmanager
def _evaluated(module: nn.Module) -> Iterator[None]:
    """Run `module` in eval mode, then give every submodule back its own mode."""
    modes = [(sub, sub.training) for sub in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for sub, mode in modes:
            sub.training = mode


class PCLObjective(nn.Module):
    """PCL's loss side: the embedding (E_D, VGG19 or a fixed E_D), the sample generator, L_CL and L_CLD.

    `trains_embedding` is True only for a learnable E_D built here (no checkpoint): the caller trains it as a
    critic with `embedding_loss` and freezes it (requires_grad_(False)) for `generator_loss`.
    """

    embedding: nn.Module

    def __init__(self, cfg: ContrastiveConfig, *, hr_patch_size: int, allow_random_vgg: bool = False) -> None:
        super().__init__()
        if cfg.num_layers < 1:
            raise ConfigError(f"contrastive.num_layers must be >= 1, got {cfg.num_layers}")
        if cfg.temperature <= 0:
            raise ConfigError(f"contrastive.temperature must be positive, got {cfg.temperature}")
        self.samples = SampleGenerator(cfg)
        self.temperature = cfg.temperature
        self.num_layers = cfg.num_layers
        options = dict(cfg.embedding_options)
        if cfg.embedding_checkpoint is not None:
            if cfg.embedding == "vgg" or options:
                raise ConfigError(
                    "contrastive.embedding_checkpoint is a fixed E_D with its own input and sizes: it takes no "
                    f"embedding=vgg or embedding_options (got embedding={cfg.embedding!r}, options={options})"
                )
            network = load_embedding_checkpoint(cfg.embedding_checkpoint)
            if network.input_transform != cfg.embedding:
                raise ConfigError(
                    f"{cfg.embedding_checkpoint}: this E_D takes {network.input_transform} input, but "
                    f"contrastive.embedding={cfg.embedding!r}: set it to {network.input_transform!r}"
                )
            if cfg.num_layers > len(network.blocks):
                raise ConfigError(f"contrastive.num_layers={cfg.num_layers}: this E_D has {len(network.blocks)} blocks")
            self.embedding = network.requires_grad_(False).eval()  # PCL-F: "a fixed embedding network" (Table V)
            self.trains_embedding = False
        elif cfg.embedding == "vgg":
            if options:
                raise ConfigError(f"contrastive.embedding_options {options} configure E_D, not the fixed VGG19")
            self.embedding = VGGEmbedding(num_layers=cfg.num_layers, allow_random=allow_random_vgg)
            self.trains_embedding = False
        else:
            owned = sorted({"input_transform", "input_size", "num_feature_layers"} & set(options))
            if owned:
                raise ConfigError(
                    f"contrastive.embedding_options may not set {', '.join(owned)}: contrastive.embedding, the "
                    "HR patch size and contrastive.num_layers do"
                )
            self.embedding = build_model(
                "pcl-embedding",
                input_transform=cfg.embedding,
                input_size=hr_patch_size,  # E_D's dense head scores whole HR patches
                num_feature_layers=cfg.num_layers,
                **options,
            )
            self.trains_embedding = True

    def generator_loss(self, sr: Tensor, hr: Tensor, lr: Tensor) -> Tensor:
        """L_CL of eq. 10 for a batch: samples drawn here; gradients reach `sr` only (the caller freezes E_D).

        reading: "When training the SR network, the embedding network is frozen" (sec. III-E): E_D runs in eval
        mode here, so its batch norm uses its running statistics (no update from generator batches) and every
        image's features depend on that image alone, whichever batch (SR, a positive, a negative) it sits in.
        """
        samples = self.samples(hr, lr)
        with _evaluated(self.embedding):
            with torch.no_grad():  # the samples are targets: all of them in one batch (eval mode: per image)
                stacked = torch.cat([samples.positives, samples.negatives])  # (K_P + K_N, N, 3, H, W)
                sample_feats = self.embedding.features(stacked.flatten(0, 1), self.num_layers)
            sr_feats = self.embedding.features(sr, self.num_layers)
        split = len(samples.positives)
        unflat = [feats.unflatten(0, stacked.shape[:2]) for feats in sample_feats]  # per layer (K, N, C, h, w)
        positives, negatives = [f[:split] for f in unflat], [f[split:] for f in unflat]
        return contrastive_loss(sr_feats, positives, negatives, self.temperature)

    def embedding_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        """L_CLD of eq. 7 on E_D's scores of HR (real) and SR (fake; the caller passes it detached)."""
        if not self.trains_embedding:
            raise ConfigError("this PCL embedding is fixed (VGG19 or a checkpoint): it has no discriminator loss")
        real_scores = self.embedding(hr).score
        fake_scores = self.embedding(sr).score
        return contrastive_discriminator_loss(real_scores, fake_scores)
