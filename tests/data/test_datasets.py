import imageio.v3 as iio
import numpy as np
import pytest
import torch

from srtk.data.datasets import (
    BENCHMARKS,
    PairedPatchDataset,
    download_dataset,
    make_lr,
    resolve_dataset,
)
from srtk.data.io import read_image
from srtk.errors import DatasetNotFoundError, SrtkError, SrtkWarning


def _write_images(folder, count=2, size=(48, 40)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        iio.imwrite(folder / f"img_{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return folder


@pytest.fixture(autouse=True)
def _isolated_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("SRTK_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_names_resolve_case_insensitively_under_data_root(tmp_path):
    folder = _write_images(tmp_path / "root" / "Set5")
    assert resolve_dataset("SET5", tmp_path / "root") == folder
    assert resolve_dataset("set5", tmp_path / "root") == folder


def test_lowercase_folder_and_hr_subfolder_layouts(tmp_path):
    hr = _write_images(tmp_path / "root" / "urban100" / "HR")
    assert resolve_dataset("Urban100", tmp_path / "root") == hr


def test_search_order_data_root_then_env_then_cache(tmp_path, monkeypatch):
    in_cache = _write_images(tmp_path / "cache" / "srtk" / "datasets" / "Set14")
    assert resolve_dataset("set14") == in_cache
    in_env = _write_images(tmp_path / "env" / "Set14")
    monkeypatch.setenv("SRTK_DATA", str(tmp_path / "env"))
    assert resolve_dataset("set14") == in_env
    in_root = _write_images(tmp_path / "root" / "Set14")
    assert resolve_dataset("set14", tmp_path / "root") == in_root


def test_missing_dataset_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        resolve_dataset("bsd100", tmp_path / "root")
    message = str(error.value)
    assert str(tmp_path / "root" / "BSD100") in message and "--data-root" in message and "SRTK_DATA" in message
    assert "\n" not in message


def test_unknown_name_lists_valid_ones(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="set5, set14"):
        resolve_dataset("set6", tmp_path)


def test_plain_folder_path_is_accepted(tmp_path):
    folder = _write_images(tmp_path / "mine")
    assert resolve_dataset(str(folder)) == folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no images"):
        resolve_dataset(str(tmp_path / "empty"))


def test_download_needs_a_checksum_and_a_source(tmp_path):
    with pytest.raises(SrtkError, match="--sha256"):
        download_dataset("div2k", root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no public download"):
        download_dataset("set5", root=tmp_path)
    assert {"set5", "set14", "bsd100", "urban100", "general100", "manga109", "div2k"} <= set(BENCHMARKS)


def test_patches_are_aligned_deterministic_and_cached(tmp_path):
    folder = _write_images(tmp_path / "train", count=2, size=(64, 56))
    data = PairedPatchDataset([folder], scale=4, lr_patch_size=6, augment=False, seed=3, cache_dir=tmp_path / "lr")
    item = data[1]
    assert item["lr"].shape == (3, 6, 6) and item["hr"].shape == (3, 24, 24)
    # Aligned: the LR patch is the bicubic downscale of the whole image at the HR patch's position.
    hr, lr = data.pair(1)
    assert torch.equal(lr, make_lr(hr.unsqueeze(0), 4)[0])
    matches = [
        (t, left)
        for t in range(lr.shape[1] - 5)
        for left in range(lr.shape[2] - 5)
        if torch.equal(lr[:, t : t + 6, left : left + 6], item["lr"])
    ]
    assert any(torch.equal(hr[:, 4 * t : 4 * t + 24, 4 * left : 4 * left + 24], item["hr"]) for t, left in matches)
    # Deterministic given (seed, epoch, index); another epoch draws other patches.
    again = PairedPatchDataset([folder], scale=4, lr_patch_size=6, augment=False, seed=3, cache_dir=tmp_path / "lr")
    assert torch.equal(again[1]["lr"], item["lr"])
    again.set_epoch(1)
    assert not all(torch.equal(again[i]["hr"], data[i]["hr"]) for i in range(2))
    # The LR cache on disk holds exactly the computed LR images.
    cached = sorted((tmp_path / "lr").glob("*.png"))
    assert len(cached) == 2 and any(torch.equal(read_image(p), lr) for p in cached)


def test_augmentation_keeps_pairs_consistent(tmp_path):
    folder = _write_images(tmp_path / "train", count=1, size=(64, 64))
    data = PairedPatchDataset([folder], scale=2, lr_patch_size=8, augment=True, repeat=16)
    for i in range(16):
        item = data[i]
        # Downscaling the HR patch by 2 is close to the LR patch whatever flip/rotation was applied.
        assert (make_lr(item["hr"].unsqueeze(0), 2)[0] - item["lr"])[:, 2:-2, 2:-2].abs().mean() < 0.08
    orientations = {tuple(data[i]["lr"][0, 0, :2].tolist()) for i in range(16)}
    assert len(orientations) > 2


def test_too_small_and_broken_images_are_reported_before_any_work(tmp_path):
    # Every header is read when the dataset is made: one error listing each unusable file, no batch needed.
    folder = _write_images(tmp_path / "train", count=3, size=(40, 24))
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SrtkError) as error:
        PairedPatchDataset([folder], scale=4, lr_patch_size=8)
    message = str(error.value)
    assert "4 of 4 training images cannot give a 32 px HR patch" in message
    assert "img_0.png is 24x40" in message and "broken.png" in message and "\n" not in message
    (folder / "broken.png").unlink()
    assert len(PairedPatchDataset([folder], scale=4, lr_patch_size=6)) == 3  # 24 px patches fit all three


def test_unusable_images_are_left_out_with_one_warning_when_asked(tmp_path):
    folder = _write_images(tmp_path / "train", count=2, size=(40, 40))
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.warns(SrtkWarning, match="1 of 3 training images cannot give a 32 px HR patch"):
        dataset = PairedPatchDataset([folder], scale=4, lr_patch_size=8, skip_unusable=True)
    assert [p.name for p in dataset.paths] == ["img_0.png", "img_1.png"]
    (folder / "img_0.png").unlink()
    (folder / "img_1.png").unlink()
    with pytest.raises(SrtkError, match="--skip-bad-images"):  # nothing usable left: still an error
        PairedPatchDataset([folder], scale=4, lr_patch_size=8, skip_unusable=True)
