import pytest
import torch

from srtk.errors import ConfigError
from srtk.losses.adversarial import AdversarialLoss
from srtk.losses.registry import ADVERSARIAL_LOSSES, build_adversarial_loss


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_LOSSES))
def test_every_registered_loss_builds_and_gives_finite_gradients(name: str) -> None:
    loss = build_adversarial_loss(name)
    assert isinstance(loss, AdversarialLoss)
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    d_loss = loss.discriminator_loss(real, fake)
    g_loss = loss.generator_loss(fake, real)
    (d_loss + g_loss).backward()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="hinge, ragan, vanilla"):
        build_adversarial_loss("wgan")
