import torch
from torch import nn

from srtk.models.bicubic import Bicubic
from srtk.tiling import self_ensemble, upscale_tiled


class TinySR(nn.Module):
    """Two 3x3 convs and a pixel shuffle: a receptive field of 5 LR pixels."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale**2, 3, padding=1))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lr):
        return self.shuffle(self.body(lr))


def test_tiled_equals_untiled_for_bicubic_and_a_network():
    lr = torch.rand(1, 3, 37, 29)
    for model, scale in ((Bicubic(scale=4), 4), (TinySR(2).eval(), 2)):
        whole = upscale_tiled(model, lr, scale=scale)
        tiled = upscale_tiled(model, lr, scale=scale, tile=10, overlap=4)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < 1e-5  # far inside the 1/255 the issue allows


def test_too_little_overlap_shows_seams():
    lr = torch.rand(1, 3, 32, 32)
    model = TinySR(2).eval()
    whole = upscale_tiled(model, lr, scale=2)
    seams = upscale_tiled(model, lr, scale=2, tile=8, overlap=0)
    assert (seams - whole).abs().max() > 1e-3  # the test above could fail if tiling were wrong


def test_tiles_are_reported():
    calls = []
    upscale_tiled(
        Bicubic(scale=2), torch.rand(1, 3, 20, 20), scale=2, tile=8, on_tile=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i, 9) for i in range(1, 10)]


def test_self_ensemble_of_bicubic_is_bicubic():
    # MATLAB bicubic is equivariant to flips and transposition: the 8-fold ensemble changes nothing.
    lr = torch.rand(1, 3, 12, 9, dtype=torch.float64)
    model = Bicubic(scale=3)
    torch.testing.assert_close(self_ensemble(model, lr), model(lr))
