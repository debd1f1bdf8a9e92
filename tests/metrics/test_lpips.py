import pytest
import torch

from srtk.errors import ConfigError, SrtkError
from srtk.metrics.lpips import LPIPS, build_lpips, lpips_distance


def test_missing_backbone_weights_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SrtkError) as error:
        build_lpips("alex")
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert str(error.value).startswith("LPIPS alex trunk weights not found: expected ")
    assert str(expected) in str(error.value) and "\n" not in str(error.value)


def test_lpips_with_stand_in_backbone_is_zero_on_identical_images(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_lpips("alex", allow_random_backbone=True)
    img = torch.rand(2, 3, 32, 32)
    distance = lpips_distance(model, img, img)
    torch.testing.assert_close(distance, torch.zeros(2, dtype=torch.float64))
    assert float(lpips_distance(model, img, torch.rand(2, 3, 32, 32)).min()) > 0


def test_lpips_distances_are_the_packages_on_minus_one_one_images(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = LPIPS(allow_random=True)
    sr, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.network(sr, hr, normalize=True).flatten()  # lpips's own [0, 1] -> [-1, 1] switch
        torch.testing.assert_close(model.distances(sr, hr), expected)
    torch.testing.assert_close(lpips_distance(model, sr, hr), expected.double())


def test_lpips_stays_frozen_and_in_eval_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = LPIPS(allow_random=True).train()
    assert not model.network.training  # dropout in its linear layers stays off
    assert all(not param.requires_grad for param in model.parameters())
    sr = torch.rand(1, 3, 32, 32, requires_grad=True)
    model.distances(sr, torch.rand(1, 3, 32, 32)).sum().backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0  # differentiable in sr: the loss needs that


def test_lpips_unknown_network_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown LPIPS network 'squeeze'; choose one of: alex, vgg"):
        LPIPS(network="squeeze", allow_random=True)  # type: ignore[arg-type]
