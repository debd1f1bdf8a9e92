"""The models that ship inside srtk (srtk/bundled/NAME.safetensors + NAME.json): `--model spsr-p` works offline.

Each was trained by srtk's own CLI (scripts/train_bundled_models.sh) and packed by scripts/bundle_models.py; its
card records the training (data, iterations, hardware, wall time, active loss terms and why) and the metrics
measured on the shipped weights. A name of this folder wins over a training method or architecture of the same
name wherever a model is expected (upscale, evaluate, compare, export, info, load_model); a file of that name in
the working folder wins over both.
"""

from pathlib import Path

from srtk.models.checkpoint import ModelCard, read_card

BUNDLED_FOLDER = Path(__file__).resolve().parent.parent / "bundled"


def bundled_folder() -> Path:
    """Where the bundled models live (a function, so that tests can point it at stand-ins)."""
    return BUNDLED_FOLDER


def bundled_models() -> dict[str, Path]:
    """Name -> weights file of every bundled model (those with a card), sorted by name."""
    folder = bundled_folder()
    if not folder.is_dir():
        return {}
    weights = sorted(folder.glob("*.safetensors"))
    return {path.stem: path for path in weights if path.with_suffix(".json").is_file()}


def bundled_path(name: str) -> Path | None:
    """The weights of the bundled model `name`; None when no bundled model has that name."""
    return bundled_models().get(name)


def bundled_cards() -> dict[str, ModelCard]:
    """Name -> model card of every bundled model (`srtk models`)."""
    return {name: read_card(path) for name, path in bundled_models().items()}
