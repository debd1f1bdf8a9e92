"""The registry, srtk's checkpoint format and official-checkpoint loading through load_model."""

import pytest
import torch

from srtk.errors import CheckpointError, SrtkError
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.registry import AUXILIARY, MODELS, build_model, convert_official_to_srtk, load_model
from tests.reference import official_state_dict, parity_io

# One tiny configuration per registry entry: a new entry without one fails test_every_entry_has_a_tiny_config.
TINY: dict[str, dict] = {
    "bicubic": {"scale": 2},
    "rrdbnet": {"scale": 2, "num_features": 8, "num_blocks": 2, "growth_channels": 4},
    "srresnet": {"scale": 2, "num_features": 8, "num_blocks": 2},
    "srresnet-bn": {"scale": 2, "num_features": 8, "num_blocks": 2},
    "edsr": {"scale": 2, "num_features": 8, "num_blocks": 2},
    "edsr-baseline": {"scale": 2, "num_features": 8, "num_blocks": 2},
    "edsr-large": {"scale": 2, "num_features": 8, "num_blocks": 2},
    "rcan": {"scale": 2, "num_features": 16, "num_groups": 2, "blocks_per_group": 1, "reduction": 4},
    "han": {"scale": 2, "num_features": 16, "num_groups": 2, "blocks_per_group": 1, "reduction": 4},
    "nlsn": {"scale": 2, "num_features": 8, "num_blocks": 2, "attention_interval": 1, "chunk_size": 16},
    "spsr": {"scale": 2, "num_features": 8, "num_blocks": 4, "growth_channels": 4},
    "spsr-around": {
        "backbone": "edsr",
        "backbone_options": {"num_features": 8, "num_blocks": 4},
        "scale": 2,
        "growth_channels": 4,
    },
    "ugsr": {"scale": 2, "num_features": 8, "num_blocks": 4, "growth_channels": 4, "num_gradient_blocks": 4},
    "gpsr": {"scale": 4, "num_features": 4, "num_modules": 1, "num_residual_blocks": 1},
    "gpsr-x8": {"num_features": 2, "num_modules": 1, "num_residual_blocks": 1},
}


def test_every_entry_has_a_tiny_config():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(TINY))
def test_registry_entry_upscales_and_trains(name):
    model = build_model(name, **TINY[name])
    lr = torch.rand(1, 3, 16, 16)
    out = model(lr)
    sr = out if isinstance(out, torch.Tensor) else out.sr
    assert sr.shape == (1, 3, 16 * model.scale, 16 * model.scale) and torch.isfinite(sr).all()
    params = list(model.parameters())
    if params:  # every output (SR, gradient maps) takes part, as in training
        outputs = [out] if isinstance(out, torch.Tensor) else [t for field in out for t in _tensors(field)]
        sum(t.square().mean() for t in outputs).backward()
        # SPSR around an RGB backbone drops its reconstruction layer (paper 000 sec. 3.2): no gradient there.
        unused = "backbone.reconstruction" if name == "spsr-around" else None
        assert all(p.grad is not None for n, p in model.named_parameters() if unused is None or unused not in n)


def _tensors(value):
    return [value] if isinstance(value, torch.Tensor) else [t for item in value for t in _tensors(item)]


def test_spsr_around_rrdbnet_is_the_papers_generator():
    options = {"num_features": 8, "num_blocks": 4, "growth_channels": 4}
    around = build_model("spsr-around", backbone="rrdbnet", backbone_options=options, scale=2, growth_channels=4)
    plain = build_model("spsr", scale=2, **options)
    assert around.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(SrtkError, match="not one"):
        build_model("spsr-around", backbone="gpsr")


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(SrtkError, match="unknown model 'esrgan2'.*rrdbnet"):
        build_model("esrgan2")
    assert {"vgg-128", "srgan-critic", "unet-sn", "nse", "nse-pretext", "pcl-embedding", "spsr-structure"} == set(
        AUXILIARY
    )


def test_srtk_checkpoint_round_trip(tmp_path):
    config = TINY["spsr"]
    model = build_model("spsr", **config).eval()
    card = ModelCard(architecture="spsr", config=config, scale=2, method="spsr-g", metrics={"psnr_y": 1.0})
    save_model(tmp_path / "m.safetensors", model, card)
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.card == card and loaded.scale == 2
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr), model(lr).sr, rtol=0, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_bad_checkpoints_are_clear_errors(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model card x.json is missing"):
        load_model(tmp_path / "x.safetensors")
    save_model(
        tmp_path / "y.safetensors",
        build_model("edsr", **TINY["edsr"]),
        ModelCard(architecture="edsr", config=TINY["edsr"], scale=2),
    )
    (tmp_path / "y.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="y.safetensors: unreadable weights"):
        load_model(tmp_path / "y.safetensors")
    with pytest.raises(CheckpointError, match="missing.pth: no such checkpoint file"):
        load_model(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="odd.pth: unknown checkpoint layout"):
        load_model(tmp_path / "odd.pth")


class Payload:
    """A pickled object: torch.load(weights_only=True) must refuse to build it."""


def test_pickled_code_is_never_executed(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth: refused, it holds pickled Python objects"):
        load_model(tmp_path / "evil.pth")


# (reference name, input scale): EDSR-PyTorch models work in [0, 255], srtk's in [0, 1].
PARITY = [
    ("rrdbnet_basicsr", 1.0),
    ("spsr_official", 1.0),
    ("edsr_baseline", 255.0),
    pytest.param("edsr_large", 255.0, marks=pytest.mark.slow),
    ("rcan", 255.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "pixel_range"), PARITY)
def test_official_checkpoint_converts_and_matches_official_output(tmp_path, name, pixel_range):
    """Official .pth -> `srtk convert` -> srtk checkpoint -> load_model reproduces the official output."""
    torch.save(official_state_dict(name), tmp_path / "official.pth")
    card = convert_official_to_srtk(tmp_path / "official.pth", tmp_path / "converted.safetensors")
    assert "converted from official.pth" in card.source
    model = load_model(tmp_path / "converted.safetensors")
    io = parity_io(name)
    with torch.no_grad():
        sr = model(torch.from_numpy(io["input"]) / pixel_range)
    expected = torch.from_numpy(io["sr"]) / pixel_range
    assert float((sr - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def test_official_pth_loads_directly_in_memory(tmp_path):
    torch.save({"params_ema": official_state_dict("edsr_baseline")}, tmp_path / "edsr.pth")  # BasicSR wrapper
    model = load_model(tmp_path / "edsr.pth")
    io = parity_io("edsr_baseline")
    with torch.no_grad():
        sr = model(torch.from_numpy(io["input"]) / 255) * 255
    assert float((sr - torch.from_numpy(io["sr"])).abs().max()) <= 1e-4 * float(abs(io["sr"]).max())
    assert model.card.architecture == "edsr" and model.card.config["num_blocks"] == 16
