"""Adversarial loss registry: the names configs and the CLI accept -> loss classes (see adversarial.py)."""

from srtk.errors import ConfigError
from srtk.losses.adversarial import AdversarialLoss, HingeGANLoss, RelativisticAverageGANLoss, VanillaGANLoss

ADVERSARIAL_LOSSES: dict[str, type[AdversarialLoss]] = {
    "vanilla": VanillaGANLoss,  # SPSR eq. 5-6 as written
    "ragan": RelativisticAverageGANLoss,  # what SPSR and ugsr train with (ESRGAN's RaGAN)
    "hinge": HingeGANLoss,  # ugsr's U-Net discriminator heads, eq. 2-4
}


def build_adversarial_loss(name: str) -> AdversarialLoss:
    """The adversarial loss registered as `name`."""
    if name not in ADVERSARIAL_LOSSES:
        raise ConfigError(f"unknown adversarial loss {name!r}; choose one of: {', '.join(sorted(ADVERSARIAL_LOSSES))}")
    return ADVERSARIAL_LOSSES[name]()
