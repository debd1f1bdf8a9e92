"""The shape of the code as a checked contract: method names live in the presets alone, the engine stays small."""

import ast
from pathlib import Path

import srtk
from srtk.models.registry import MODELS
from srtk.presets import PRESETS

PACKAGE = Path(srtk.__file__).parent


def _sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py") if path.name != "presets.py"}


def test_no_code_outside_the_presets_compares_a_method_name() -> None:
    offenders = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                names = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in PRESETS]
                if names:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} compares {names}")
    assert not offenders, offenders


# Files that name presets as data, never comparing them (the test above still scans them): the published ablation
# tables of `srtk ablate` say which preset each variant trains.
METHOD_NAMES_AS_DATA = {Path("studies/paper_tables.py")}


def test_method_only_names_appear_in_the_presets_alone() -> None:
    # Names that are methods and nothing else (ugsr/gpsr are networks too, psnr a metric).
    method_only = set(PRESETS) - set(MODELS) - {"psnr"}
    assert method_only == {"srgan", "esrgan", "spsr-g", "spsr-p", "spsr-j", "spsr-r", "spsr-vgg", "spsr-resnet", "pcl"}
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
        for path, tree in _sources().items()
        if path.relative_to(PACKAGE) not in METHOD_NAMES_AS_DATA
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in method_only
    ]
    assert not offenders, offenders


def test_engine_reads_top_to_bottom_in_under_350_lines() -> None:
    lines = (PACKAGE / "train" / "engine.py").read_text().splitlines()
    assert len(lines) < 350, len(lines)
