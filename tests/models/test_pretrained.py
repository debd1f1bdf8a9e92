from pathlib import Path

import pytest
from torchvision.models import AlexNet_Weights

from srtk.errors import SrtkError
from srtk.models.pretrained import hub_checkpoint_path, require_hub_checkpoint


def test_hub_checkpoint_path_follows_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert hub_checkpoint_path(AlexNet_Weights.IMAGENET1K_V1) == expected


def test_missing_checkpoint_is_one_line_naming_path_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SrtkError) as error:
        require_hub_checkpoint(AlexNet_Weights.IMAGENET1K_V1, "AlexNet")
    message = str(error.value)
    assert message.startswith("AlexNet weights not found: expected ")
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert AlexNet_Weights.IMAGENET1K_V1.url in message and "\n" not in message


def test_present_checkpoint_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = hub_checkpoint_path(AlexNet_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert require_hub_checkpoint(AlexNet_Weights.IMAGENET1K_V1, "AlexNet") == path
