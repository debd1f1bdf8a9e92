import torch

from srtk.models.gradient import GRADIENT_EPS, GradientMap


def test_gradient_map_of_horizontal_ramp() -> None:
    ramp = torch.arange(8.0).repeat(1, 3, 8, 1) / 8  # (1, 3, 8, 8), +1/8 per column
    grad = GradientMap()(ramp)
    inner = grad[..., 1:-1, 1:-1]  # the border sees zero padding
    torch.testing.assert_close(inner, torch.full_like(inner, 0.25), atol=1e-4, rtol=0)


def test_flat_image_gives_sqrt_eps_and_finite_gradients() -> None:
    flat = torch.full((1, 3, 6, 6), 0.5, requires_grad=True)
    grad = GradientMap()(flat)
    torch.testing.assert_close(grad[..., 1:-1, 1:-1], torch.full((1, 3, 4, 4), GRADIENT_EPS**0.5))
    grad.sum().backward()
    assert torch.isfinite(flat.grad).all()


def test_channels_are_independent_and_match_eq2() -> None:
    img = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    grad = GradientMap()(img)
    padded = torch.nn.functional.pad(img, (1, 1, 1, 1))
    gx = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
    gy = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    torch.testing.assert_close(grad, torch.sqrt(gx**2 + gy**2 + GRADIENT_EPS))
