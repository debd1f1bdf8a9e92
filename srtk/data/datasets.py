"""Paired SR data from folders of HR images, and the registry of benchmark datasets.

LR images are never read from disk: they are made from HR with MATLAB-compatible bicubic downscaling and rounded
to 8-bit levels (shared/reference protocol), then cached. Papers 000 sec. 5.1 and 001 sec. 4.1 say "bicubic
interpolation", paper 003 sec. 4.1.1 "bicubic (BI)"; only paper 002 sec. 3.1 names "MATLAB bicubic kernel", and
paper 004 sec. IV-A states no degradation. None of them mentions the 8-bit rounding.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from srtk.data.io import image_size, list_images, quantize, read_image, write_image
from srtk.data.resize import imresize, modcrop
from srtk.errors import DatasetNotFoundError, SrtkError, SrtkWarning
from srtk.paths import cache_folder

DATA_ENV = "SRTK_DATA"
HR_SUBFOLDERS = ("HR", "hr", "GTmod12", "original", "image_SRF_4/HR")  # layouts of common mirrors


@dataclass(frozen=True)
class Benchmark:
    """A dataset srtk knows by name: the folder it lives in under a data root and where it can come from."""

    folder: str
    num_images: int | None
    description: str
    url: str | None = None
    sha256: str | None = None  # download is refused without a checksum (pinned here or given by the user)


BENCHMARKS: dict[str, Benchmark] = {
    "set5": Benchmark("Set5", 5, "Bevilacqua et al. 2012"),
    "set14": Benchmark("Set14", 14, "Zeyde et al. 2010"),
    "bsd100": Benchmark("BSD100", 100, "Berkeley segmentation test images (Martin et al. 2001)"),
    "urban100": Benchmark("Urban100", 100, "Huang et al. 2015, regular urban structures"),
    "general100": Benchmark("General100", 100, "Dong et al. 2016 (FSRCNN)"),
    "manga109": Benchmark("Manga109", 109, "Matsui et al. 2017 (licence: research use, request from the authors)"),
    "div2k": Benchmark(
        "DIV2K_train_HR",
        800,
        "Agustsson & Timofte 2017, the papers' training set (800 HR images)",
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
    ),
    "div2k-valid": Benchmark(
        "DIV2K_valid_HR",
        100,
        "DIV2K validation set (100 HR images)",
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
    ),
}


def cache_root() -> Path:
    """srtk's own data cache: $XDG_CACHE_HOME/srtk/datasets (default ~/.cache/srtk/datasets)."""
    return cache_folder("datasets")


def search_roots(data_root: Path | None = None) -> list[Path]:
    """Where datasets are looked for, in order: --data-root, then $SRTK_DATA, then the cache."""
    roots = [data_root] if data_root is not None else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    roots.append(cache_root())
    return roots


def _child_folder(parent: Path, name: str) -> Path | None:
    """`parent/name`, matched case-insensitively."""
    if not parent.is_dir():
        return None
    exact = parent / name
    if exact.is_dir():
        return exact
    lowered = name.lower()
    return next((p for p in sorted(parent.iterdir()) if p.is_dir() and p.name.lower() == lowered), None)


def _image_folder(folder: Path) -> Path | None:
    """The folder holding the HR images: `folder` itself or one of the usual HR subfolders."""
    if list_images(folder):
        return folder
    for sub in HR_SUBFOLDERS:
        candidate = folder / sub
        if candidate.is_dir() and list_images(candidate):
            return candidate
    return None


def benchmark(name: str) -> Benchmark:
    key = name.lower()
    if key not in BENCHMARKS:
        raise DatasetNotFoundError(f"unknown dataset {name!r}; choose one of: {', '.join(BENCHMARKS)} or a folder")
    return BENCHMARKS[key]


def resolve_dataset(name: str, data_root: Path | None = None) -> Path:
    """A benchmark name (case-insensitive) or a folder path -> the folder of its HR images."""
    as_path = Path(name).expanduser()
    if name.lower() not in BENCHMARKS:
        if as_path.is_dir():
            found = _image_folder(as_path)
            if found is None:
                raise DatasetNotFoundError(f"{as_path}: folder holds no images")
            return found
        benchmark(name)  # raises with the list of valid names
    info = benchmark(name)
    roots = search_roots(data_root)
    for root in roots:
        folder = _child_folder(root, info.folder)
        if folder is not None and (images := _image_folder(folder)) is not None:
            return images
    looked = ", ".join(str(r / info.folder) for r in roots)
    hint = f"put its HR images in {roots[0] / info.folder}/ (or pass --data-root DIR, or set ${DATA_ENV})"
    fetch = f"; or run: srtk download {name.lower()}" if info.url else ""
    raise DatasetNotFoundError(f"dataset {name!r} not found (looked in {looked}): {hint}{fetch}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_dataset(name: str, *, root: Path | None = None, sha256: str | None = None) -> Path:
    """Download and unpack a registry dataset into `root` (default: the cache), verifying its SHA-256.

    The only network access srtk makes. A checksum is required: the registry's, or `sha256` from the user (the
    publishers of these datasets post none that srtk could pin without having downloaded the file itself).
    """
    info = benchmark(name)
    if info.url is None:
        raise DatasetNotFoundError(f"dataset {name!r} has no public download; put its HR images in a folder yourself")
    expected = (sha256 or info.sha256 or "").lower()
    if not expected:
        raise SrtkError(
            f"no checksum for {info.url}: pass --sha256 HEX (the SHA-256 of the archive, e.g. from a copy you trust)"
        )
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise SrtkError(f"--sha256 {expected}: not a SHA-256 (64 hexadecimal digits)")
    target_root = root or cache_root()
    if (target_root / info.folder).exists():  # never replace images a user already has
        raise SrtkError(f"{target_root / info.folder}: already there; move it away to download {name} again")
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=".download-") as tmp:
        archive = Path(tmp) / Path(info.url).name
        try:
            with urllib.request.urlopen(info.url, timeout=60) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise SrtkError(f"{info.url}: download failed ({error}); no network? put the images in a folder") from None
        actual = _sha256(archive)
        if actual != expected:
            raise SrtkError(f"{archive.name}: SHA-256 {actual} does not match the expected {expected}")
        unpacked = Path(tmp) / "unpacked"
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(unpacked, filter="data")
        else:
            raise SrtkError(f"{archive.name}: not a zip or tar archive")
        source = next((p for p in unpacked.rglob(info.folder) if p.is_dir()), unpacked)
        destination = target_root / info.folder
        os.replace(source, destination)  # the folder appears whole or not at all
    return destination


def make_lr(hr: Tensor, scale: int) -> Tensor:
    """srtk's degradation: MATLAB bicubic downscale of (..., H, W) by 1/scale, rounded to 8-bit levels."""
    return quantize(imresize(hr, 1 / scale))


@dataclass(frozen=True)
class EvalPair:
    name: str
    hr: Tensor  # (3, H, W), modcropped, 8-bit levels
    lr: Tensor  # (3, H/scale, W/scale)


def evaluation_pairs(folder: Path, scale: int) -> Iterator[EvalPair | tuple[str, Exception]]:
    """HR/LR pairs of a benchmark folder, in file order; a bad file yields (name, error) and the rest go on."""
    for path in list_images(folder):
        try:
            hr = modcrop(read_image(path), scale)
        except SrtkError as error:
            yield path.name, error
            continue
        yield EvalPair(path.name, hr, make_lr(hr.unsqueeze(0), scale)[0])


def check_training_images(paths: list[Path], hr_patch_size: int, *, skip_unusable: bool = False) -> list[Path]:
    """The usable training images, from every header read once before any work. An image that is unreadable or
    smaller than an HR patch is an SrtkError listing each such file, instead of a failure when a batch first
    reaches it; with `skip_unusable` they are left out with one warning (an error still if none is left)."""
    usable, unusable = [], []
    for path in paths:
        try:
            width, height = image_size(path)
        except SrtkError as error:
            unusable.append(str(error))
            continue
        if min(width, height) < hr_patch_size:
            unusable.append(f"{path.name} is {width}x{height}")
        else:
            usable.append(path)
    if not unusable:
        return usable
    shown = "; ".join(unusable[:5]) + (f"; and {len(unusable) - 5} more" if len(unusable) > 5 else "")
    problem = (
        f"{paths[0].parent}: {len(unusable)} of {len(paths)} training images cannot give a {hr_patch_size} px "
        f"HR patch ({shown})"
    )
    if skip_unusable and usable:
        warnings.warn(f"{problem}: skipped (data.skip_unusable_images)", SrtkWarning, stacklevel=2)
        return usable
    raise SrtkError(f"{problem}: remove them, use smaller --patch-size, or leave them out with --skip-bad-images")


class PairedPatchDataset(Dataset):
    """Random aligned LR/HR training patches from folders of HR images, with flips and 90-degree rotations.

    Each item is deterministic given (seed, epoch, index), so a resumed run sees the same patches. LR images are
    made once per HR image and cached in memory, and on disk when `cache_dir` is given.
    """

    def __init__(
        self,
        folders: list[Path],
        *,
        scale: int,
        lr_patch_size: int,
        augment: bool = True,
        repeat: int = 1,
        seed: int = 0,
        cache_dir: Path | None = None,
        skip_unusable: bool = False,
    ) -> None:
        found = [p for folder in folders for p in list_images(folder)]
        if not found:
            raise DatasetNotFoundError(f"no training images in {', '.join(map(str, folders))}")
        self.scale, self.lr_patch_size, self.augment = scale, lr_patch_size, augment
        self.paths = check_training_images(found, lr_patch_size * scale, skip_unusable=skip_unusable)
        self.repeat, self.seed, self.epoch = repeat, seed, 0
        self.cache_dir = cache_dir
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cached_lr_path(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|x{self.scale}".encode()).hexdigest()
        return self.cache_dir / f"{key}.png"

    def pair(self, image_index: int) -> tuple[Tensor, Tensor]:
        """(HR, LR) of one image, modcropped, LR made (or fetched from the cache)."""
        if image_index not in self._cache:
            path = self.paths[image_index]
            hr = quantize(modcrop(read_image(path), self.scale))
            lr_file = self._cached_lr_path(path)
            if lr_file is not None and lr_file.exists():
                lr = read_image(lr_file)
            else:
                lr = make_lr(hr.unsqueeze(0), self.scale)[0]
                if lr_file is not None:
                    write_image(lr_file, lr)
            if min(lr.shape[-2:]) < self.lr_patch_size:
                raise SrtkError(f"{path}: LR size {tuple(lr.shape[-2:])} is smaller than the patch size")
            self._cache[image_index] = (hr, lr)
        return self._cache[image_index]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        hr, lr = self.pair(index % len(self.paths))
        rng = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
        p, s = self.lr_patch_size, self.scale
        top = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=rng))
        left = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=rng))
        lr_patch = lr[:, top : top + p, left : left + p]
        hr_patch = hr[:, top * s : (top + p) * s, left * s : (left + p) * s]
        if self.augment:
            hflip, vflip, transpose = (torch.rand(3, generator=rng) < 0.5).tolist()
            lr_patch, hr_patch = (_augment(t, hflip, vflip, transpose) for t in (lr_patch, hr_patch))
        return {"lr": lr_patch.contiguous(), "hr": hr_patch.contiguous()}


def _augment(img: Tensor, hflip: bool, vflip: bool, transpose: bool) -> Tensor:
    """The 8 dihedral transforms: flips and a transpose give every 90-degree rotation."""
    if hflip:
        img = img.flip(-1)
    if vflip:
        img = img.flip(-2)
    if transpose:
        img = img.transpose(-1, -2)
    return img
