import pytest
import torch
from torchvision.models import AlexNet_Weights

from srtk.errors import SrtkError
from srtk.losses.perceptual import hub_checkpoint_path
from srtk.metrics.lpips import build_lpips, lpips_distance


def test_missing_backbone_weights_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SrtkError) as error:
        build_lpips("alex")
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert hub_checkpoint_path(AlexNet_Weights.IMAGENET1K_V1) == expected
    assert str(expected) in str(error.value) and "\n" not in str(error.value)


def test_lpips_with_stand_in_backbone_is_zero_on_identical_images(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_lpips("alex", allow_random_backbone=True)
    img = torch.rand(2, 3, 32, 32)
    distance = lpips_distance(model, img, img)
    torch.testing.assert_close(distance, torch.zeros(2, dtype=torch.float64))
    assert float(lpips_distance(model, img, torch.rand(2, 3, 32, 32)).min()) > 0
