"""Shared fixtures: the ../shared folder (datasets, references) and seeding."""

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skip outside CI when absent, fail under CI=true (the brief's rule)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"{path} not available (outside CI)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """srtk's caches (ONNX exports of `srtk upscale`, datasets) go to a folder of this test run, not the user's;
    set in the environment, so that subprocesses of the tests inherit it."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
