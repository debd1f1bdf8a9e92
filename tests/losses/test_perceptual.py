from pathlib import Path

import pytest
import torch
from torchvision.models import vgg

from srtk.errors import CheckpointError, ConfigError, SrtkError
from srtk.losses.perceptual import (
    DEFAULT_VGG_LAYERS,
    SRGAN_VGG_LAYERS,
    VGG_CONTENT_LOSSES,
    LPIPSLoss,
    VGGPerceptualLoss,
    vgg19_layer_indices,
)
from srtk.models.pretrained import hub_checkpoint_path

SIZE = 32  # keeps VGG19 cheap: conv5_4 works on 2x2 maps


@pytest.fixture(autouse=True)
def empty_torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torchvision cache at an empty folder: no test may see (or fetch) real weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def random_vgg() -> VGGPerceptualLoss:
    """A randomly initialised VGG19 loss at conv2_2, shared: cheap, and deep random features say little."""
    return VGGPerceptualLoss(layers=(("conv2_2", 1.0),), allow_random=True)


@pytest.fixture(scope="module")
def random_lpips() -> LPIPSLoss:
    """One randomly initialised LPIPS for the module: building its AlexNet takes seconds on a busy CPU."""
    return LPIPSLoss(allow_random=True)


def sgd_descends(loss_fn: torch.nn.Module, *, learning_rate: float, steps: int = 3) -> tuple[float, float]:
    """Loss before and after a few SGD steps that move an image towards a fixed target.

    The losses average over every feature element, so their pixel gradients are tiny: the step is large.
    """
    target = torch.rand(1, 3, SIZE, SIZE)
    image = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    optimizer = torch.optim.SGD([image], lr=learning_rate)
    first = last = float("nan")
    for step in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(image, target)
        loss.backward()
        optimizer.step()
        if step == 0:
            first = loss.item()
    with torch.no_grad():
        last = loss_fn(image, target).item()
    return first, last


def test_layer_names_match_torchvision_vgg19_indices() -> None:
    names = vgg19_layer_indices(vgg.make_layers(vgg.cfgs["E"]))
    # torchvision's vgg19.features: conv1_1 at 0, conv5_4 at 34 with its ReLU at 35 (ESRGAN's layer)
    expected = {"conv1_1": 0, "relu1_1": 1, "conv2_1": 5, "conv5_4": 34, "relu5_4": 35}
    assert {name: names[name] for name in expected} == expected
    assert sum(name.startswith("conv") for name in names) == 16  # VGG19: 16 conv layers


def test_vgg_missing_weights_error_names_the_file(empty_torch_cache: Path) -> None:
    with pytest.raises(SrtkError) as error:
        VGGPerceptualLoss()
    message = str(error.value)
    assert str(empty_torch_cache / "vgg19-dcbb9e9d.pth") in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "\n" not in message


def test_vgg_loads_weights_from_the_torchvision_cache(empty_torch_cache: Path) -> None:
    saved = vgg.make_layers(vgg.cfgs["E"])  # random init, the layout of torchvision's vgg19().features
    path = hub_checkpoint_path_for_vgg19()
    assert path == empty_torch_cache / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir(parents=True)
    torch.save({f"features.{key}": value for key, value in saved.state_dict().items()}, path)
    loss = VGGPerceptualLoss(layers=(("conv2_2", 1.0),))
    loaded = loss.features.state_dict()
    assert len(loaded) == 8  # conv1_1 .. conv2_2: weights and biases of 4 convs
    for key, value in loaded.items():
        torch.testing.assert_close(value, saved.state_dict()[key], rtol=0, atol=0)


def test_vgg_unreadable_weights_are_a_checkpoint_error(empty_torch_cache: Path) -> None:
    path = hub_checkpoint_path_for_vgg19()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="vgg19-dcbb9e9d.pth"):
        VGGPerceptualLoss()


def hub_checkpoint_path_for_vgg19() -> Path:
    from torchvision.models import VGG19_Weights

    return hub_checkpoint_path(VGG19_Weights.IMAGENET1K_V1)


def test_vgg_identical_inputs_cost_nothing() -> None:
    img = torch.rand(1, 3, SIZE, SIZE)
    assert VGGPerceptualLoss(allow_random=True)(img, img.clone()).item() == 0.0


def test_vgg_loss_falls_under_sgd(random_vgg: VGGPerceptualLoss) -> None:
    # conv2_2: deep features of a *random* VGG barely depend on the input, and it is 10x cheaper
    first, last = sgd_descends(random_vgg, learning_rate=1000)
    assert last < 0.9 * first


def test_vgg_features_are_taken_before_the_activation() -> None:
    loss = VGGPerceptualLoss(layers=(("conv3_4", 1.0), ("relu3_4", 1.0)), allow_random=True)
    pre, post = loss.extract(torch.rand(1, 3, SIZE, SIZE))
    assert (pre < 0).any()  # the in-place ReLU must not have overwritten the tapped conv output
    torch.testing.assert_close(post, pre.clamp(min=0))


def test_vgg_layer_weights_combine_linearly() -> None:
    torch.manual_seed(0)
    both = VGGPerceptualLoss(layers=(("conv1_2", 1.0), ("conv2_2", 2.0)), allow_random=True)
    sr, hr = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    sr_feats, hr_feats = both.extract(sr), both.extract(hr)
    expected = (sr_feats[0] - hr_feats[0]).abs().mean() + 2 * (sr_feats[1] - hr_feats[1]).abs().mean()
    torch.testing.assert_close(both(sr, hr), expected)


def test_vgg_l2_criterion_is_the_mean_squared_feature_difference() -> None:
    torch.manual_seed(0)
    loss = VGGPerceptualLoss(layers=(("conv1_2", 0.5),), criterion="l2", allow_random=True)
    sr, hr = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    (sr_feat,), (hr_feat,) = loss.extract(sr), loss.extract(hr)
    torch.testing.assert_close(loss(sr, hr), 0.5 * (sr_feat - hr_feat).square().mean())


def test_srgan_vgg_loss_is_the_rescaled_mse_of_relu5_4_by_hand() -> None:
    # Ledig et al. sec. 2.2.1 / 3.2: phi_{5,4} after its ReLU, squared difference times 1/12.75^2 (~0.006).
    assert SRGAN_VGG_LAYERS == (("relu5_4", 1 / 12.75**2),)
    assert abs(SRGAN_VGG_LAYERS[0][1] - 0.006) < 2e-4
    torch.manual_seed(0)
    loss = VGG_CONTENT_LOSSES["vgg-srgan"](allow_random=True)
    assert loss.layer_names == ("relu5_4",) and loss.criterion == "l2"
    sr, hr = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # torchvision's ImageNet statistics
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def by_hand(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (img - mean) / std
        outputs = []
        for layer in loss.features:  # torchvision's VGG19 up to index 35 = relu5_4
            x = layer(x)
            outputs.append(x)
        return outputs[34], outputs[35]  # conv5_4, relu5_4

    (sr_conv, sr_relu), (_, hr_relu) = by_hand(sr), by_hand(hr)
    assert len(loss.features) == 36 and (sr_conv < 0).any()
    torch.testing.assert_close(sr_relu, sr_conv.clamp(min=0))  # after the activation
    expected = (sr_relu - hr_relu).square().mean() / 12.75**2
    torch.testing.assert_close(loss(sr, hr), expected)


def test_vgg_content_losses_name_the_papers_settings() -> None:
    esrgan = VGG_CONTENT_LOSSES["vgg"](layers=(("conv1_1", 1.0),), allow_random=True)  # shallow: cheap
    assert esrgan.criterion == "l1" and DEFAULT_VGG_LAYERS == (("conv5_4", 1.0),)
    assert set(VGG_CONTENT_LOSSES) == {"vgg", "vgg-srgan"}


def test_vgg_gradient_reaches_sr_only_and_the_trunk_stays_frozen(random_vgg: VGGPerceptualLoss) -> None:
    loss = random_vgg
    loss.train()
    assert not loss.features.training
    sr = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    hr = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    loss(sr, hr).backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert hr.grad is None
    assert all(not param.requires_grad for param in loss.parameters())


def test_vgg_channels_last_and_bfloat16_autocast_agree_with_fp32(random_vgg: VGGPerceptualLoss) -> None:
    loss = random_vgg
    sr, hr = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    expected = loss(sr, hr)
    channels_last = loss(sr.to(memory_format=torch.channels_last), hr.to(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, expected, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_precision = loss(sr, hr)
    torch.testing.assert_close(low_precision.float(), expected, rtol=5e-2, atol=1e-3)


def test_vgg_unknown_layer_or_criterion_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="conv5_4"):
        VGGPerceptualLoss(layers=(("conv6_1", 1.0),), allow_random=True)
    with pytest.raises(ConfigError, match="l1, l2, charbonnier"):
        VGGPerceptualLoss(criterion="cosine", allow_random=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("network", "file_name"), [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")]
)
def test_lpips_missing_trunk_error_names_the_file(network: str, file_name: str, empty_torch_cache: Path) -> None:
    with pytest.raises(SrtkError) as error:
        LPIPSLoss(network=network)  # type: ignore[arg-type]
    assert str(empty_torch_cache / file_name) in str(error.value)
    assert "\n" not in str(error.value)


def test_lpips_identical_inputs_cost_nothing(random_lpips: LPIPSLoss) -> None:
    img = torch.rand(2, 3, SIZE, SIZE)
    assert random_lpips(img, img.clone()).item() == 0.0


def test_lpips_maps_zero_one_images_to_its_minus_one_one_range(random_lpips: LPIPSLoss) -> None:
    loss = random_lpips
    sr, hr = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    expected = loss.lpips.network(sr, hr, normalize=True).mean()  # lpips's own [0, 1] -> [-1, 1] switch
    torch.testing.assert_close(loss(sr, hr), expected)
    assert loss(sr, hr).item() > 0


def test_lpips_loss_falls_under_sgd_and_trains_nothing_inside(random_lpips: LPIPSLoss) -> None:
    loss = random_lpips
    loss.train()
    assert not loss.lpips.network.training  # dropout in its linear layers stays off
    assert all(not param.requires_grad for param in loss.parameters())
    first, last = sgd_descends(loss, learning_rate=50)
    assert last < 0.9 * first


def test_lpips_unknown_network_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="alex, vgg"):
        LPIPSLoss(network="squeeze", allow_random=True)  # type: ignore[arg-type]
