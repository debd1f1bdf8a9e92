"""F of the structure loss: a pretrain-nse checkpoint, a random NSE, or ImageNet VGG19 / ResNet18 (paper 000
sec. 4.3, Appendix C)."""

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet18, vgg

from srtk.errors import CheckpointError, ConfigError, SrtkError
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.nse import NeuralStructureExtractor, PretextModel
from srtk.models.pretrained import IMAGENET_MEAN, IMAGENET_STD
from srtk.models.registry import build_model
from srtk.models.structure_extractors import StructureExtractor, build_structure_extractor

TINY = {"num_features": 8, "out_features": 4, "hidden_features": 8}
TINY_NSE = {"num_features": 8, "out_features": 4}


@pytest.fixture(autouse=True)
def empty_torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torchvision cache at an empty folder: no test may see (or fetch) real weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def saved_pretext(tmp_path: Path, task: str, name: str = "nse") -> tuple[Path, PretextModel]:
    model = PretextModel(task=task, sampling="h", **TINY)
    path = tmp_path / f"{name}.safetensors"
    save_model(path, model, ModelCard(architecture="nse-pretext", config=model.card_config(), scale=1))
    return path, model


def assert_frozen(extractor: nn.Module, *, stays_in_eval: bool = True) -> None:
    assert not any(m.training for m in extractor.modules())
    assert not any(p.requires_grad for p in extractor.parameters())
    if stays_in_eval:  # an owner switching to training mode must not move batch-norm statistics
        extractor.train()
        assert not any(m.training for m in extractor.modules())


@pytest.mark.parametrize(("kind", "channels"), [("vgg19", 512), ("resnet18", 256)])
def test_imagenet_extractors_have_stride_16_and_the_same_map_size(kind: str, channels: int) -> None:
    extractor = build_structure_extractor(kind, allow_random=True)
    assert isinstance(extractor, StructureExtractor)
    assert (extractor.out_channels, extractor.stride) == (channels, 16)
    assert_frozen(extractor)
    img = torch.rand(1, 3, 64, 96, requires_grad=True)
    feats = extractor(img)
    assert feats.shape == (1, channels, 64 // 16, 96 // 16)  # Appendix C: "the same spatial resolutions"
    feats.square().mean().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0  # gradients reach the SR image, not F


def test_vgg_tap_is_the_4th_conv_after_the_4th_pool_before_its_relu() -> None:
    extractor = build_structure_extractor("vgg19", allow_random=True)
    layers = list(extractor.network)
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    assert len(pools) == 4
    assert sum(isinstance(layer, nn.Conv2d) for layer in layers[pools[-1] :]) == 4
    assert isinstance(layers[-1], nn.Conv2d)  # conv5_4 itself: no ReLU after it
    assert (extractor(torch.rand(1, 3, 32, 32)) < 0).any()


def test_vgg_loads_torchvisions_vgg19_features_from_the_cache(empty_torch_cache: Path) -> None:
    features = vgg.make_layers(vgg.cfgs["E"])  # the layout (and keys) of torchvision's vgg19().features
    empty_torch_cache.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, empty_torch_cache / "vgg19-dcbb9e9d.pth")
    extractor = build_structure_extractor("vgg19")
    img = torch.rand(1, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(extractor(img), features[:35]((img - mean) / std), rtol=1e-5, atol=1e-5)


def test_resnet_tap_is_layer3_block_2_of_torchvisions_resnet18(empty_torch_cache: Path) -> None:
    reference = resnet18(weights=None).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics: eval mode must use them
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    empty_torch_cache.mkdir(parents=True)
    torch.save(state, empty_torch_cache / "resnet18-f37072fd.pth")  # as torchvision's old files: no counters
    extractor = build_structure_extractor("resnet18")
    img = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1((img - mean) / std))))
        x = reference.layer3[1](reference.layer3[0](reference.layer2(reference.layer1(x))))
        torch.testing.assert_close(extractor(img), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "file_name"), [("vgg19", "vgg19-dcbb9e9d.pth"), ("resnet18", "resnet18-f37072fd.pth")]
)
def test_missing_imagenet_weights_are_one_line_naming_the_file(
    empty_torch_cache: Path, kind: str, file_name: str
) -> None:
    with pytest.raises(SrtkError) as error:
        build_structure_extractor(kind)
    message = str(error.value)
    assert str(empty_torch_cache / file_name) in message and "\n" not in message


def test_random_nse_is_a_fresh_frozen_nse() -> None:
    extractor = build_structure_extractor("nse", random_nse=True)
    assert isinstance(extractor, NeuralStructureExtractor)  # the NSE itself: no batch norm, nothing to pin
    assert (extractor.out_channels, extractor.stride) == (32, 4)
    assert_frozen(extractor, stays_in_eval=False)
    assert extractor(torch.rand(1, 3, 30, 32)).shape == (1, 32, 8, 8)


@pytest.mark.parametrize("task", ["contrastive", "jigsaw"])
def test_nse_from_a_pretext_checkpoint_is_its_extractor(tmp_path: Path, task: str) -> None:
    path, model = saved_pretext(tmp_path, task)
    extractor = build_structure_extractor("nse", nse=path, nse_task=task)
    assert isinstance(extractor, NeuralStructureExtractor)
    assert (extractor.out_channels, extractor.stride) == (4, 4)
    assert_frozen(extractor, stays_in_eval=False)
    # Its state dict is an NSE's: a pretext run starts its own extractor from it.
    fresh = NeuralStructureExtractor(**TINY_NSE)
    fresh.load_state_dict(extractor.state_dict())
    img = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(extractor(img), model.extractor(img), rtol=0, atol=0)


def test_nse_from_a_bare_nse_card_and_from_its_json(tmp_path: Path) -> None:
    nse = build_model("nse", **TINY_NSE)
    path = save_model(tmp_path / "bare.safetensors", nse, ModelCard(architecture="nse", config=TINY_NSE, scale=1))
    for given in (path, path.with_suffix(".json")):
        extractor = build_structure_extractor("nse", nse=given, nse_task="contrastive")  # no task recorded: taken
        img = torch.rand(1, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(extractor(img), nse(img), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("trained", "wanted", "hint"),
    [
        ("jigsaw", "contrastive", "needs contrastive prediction: use the method of jigsaw NSEs"),
        ("contrastive", "jigsaw", "needs jigsaw puzzles: use the method of contrastive NSEs"),
    ],
)
def test_nse_of_the_wrong_task_says_which_fits(tmp_path: Path, trained: str, wanted: str, hint: str) -> None:
    path, _ = saved_pretext(tmp_path, trained)
    with pytest.raises(ConfigError) as error:
        build_structure_extractor("nse", nse=path, nse_task=wanted)
    message = str(error.value)
    assert str(path) in message and f"pre-trained by {trained}" in message and hint in message
    assert "\n" not in message


def test_missing_nse_says_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as error:
        build_structure_extractor("nse", nse_task="contrastive")
    message = str(error.value)
    assert "give --nse CHECKPOINT (make one with: srtk pretrain-nse --task contrastive --out runs/nse)" in message
    with pytest.raises(ConfigError, match="pretrain-nse --task jigsaw"):
        build_structure_extractor("nse", nse_task="jigsaw")


def test_missing_unreadable_or_foreign_nse_files_are_one_line_errors(tmp_path: Path) -> None:
    saved_pretext(tmp_path, "contrastive", name="garbage")
    (tmp_path / "garbage.safetensors").write_bytes(b"not safetensors")  # a real card beside broken weights
    (tmp_path / "nse.pth").write_bytes(b"")
    critic_config = {"num_features": 4, "num_stages": 3, "input_size": 32}
    save_model(
        tmp_path / "critic.safetensors", build_model("vgg-128", **critic_config), ModelCard("vgg-128", critic_config, 1)
    )
    expected = {
        "nope.safetensors": "no such NSE checkpoint",
        "garbage.safetensors": "unreadable weights",
        "nse.pth": "an NSE checkpoint is the .safetensors file written by srtk pretrain-nse",
        "critic.safetensors": "holds a vgg-128, not a neural structure extractor",
    }
    for name, reason in expected.items():
        with pytest.raises(CheckpointError) as error:
            build_structure_extractor("nse", nse=tmp_path / name)
        message = str(error.value)
        assert str(tmp_path / name) in message and reason in message and "\n" not in message, message


def test_inconsistent_requests_are_config_errors(tmp_path: Path) -> None:
    path, _ = saved_pretext(tmp_path, "contrastive")
    with pytest.raises(ConfigError, match="choose one of: nse, vgg19, resnet18"):
        build_structure_extractor("alexnet")
    with pytest.raises(ConfigError, match="takes no NSE"):
        build_structure_extractor("vgg19", nse=path, allow_random=True)
    with pytest.raises(ConfigError, match="not both"):
        build_structure_extractor("nse", nse=path, random_nse=True)
