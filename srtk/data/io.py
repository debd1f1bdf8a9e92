"""Image and result-file I/O: decoding to RGB float tensors, validation, atomic writes.

Every image enters srtk as RGB, CHW, float32 in [0, 1]:
- 8-bit images are divided by 255, 16-bit by 65535;
- grayscale (and grayscale + alpha) is replicated to three channels;
- palette images are expanded through their palette;
- alpha is dropped: SR restores the colour data as stored, and the papers' benchmarks have no alpha.
  (Composite over a background yourself first if you need a flattened result.)
Every file srtk writes goes to a temporary file in the same folder first and is renamed into place, so an
interrupted run never leaves a half-written output.
"""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from srtk.errors import ImageReadError, SrtkError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Larger than any photograph (a 16k x 16k image is 3 GiB as float RGB); a header that declares more is
# either corrupt or a decompression bomb.
MAX_PIXELS = 16384 * 16384


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header alone; ImageReadError for empty, unknown and absurdly large files."""
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        # Pillow reads only the header here; its own bomb check would warn, ours decides.
        with Image.open(path) as header:
            width, height = header.size
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"{path}: declared size is absurdly large") from None
    except OSError as error:
        raise ImageReadError(f"{path}: unreadable image header ({error})") from None
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{path}: declared size {width}x{height} is empty")
    if width * height > MAX_PIXELS:
        raise ImageReadError(f"{path}: declared size {width}x{height} exceeds the {MAX_PIXELS} pixel limit")
    return width, height


def _to_rgb_float(array: np.ndarray, path: Path) -> np.ndarray:
    """HW / HWC array of any integer or float dtype -> HWC float32 RGB in [0, 1]."""
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        scaled = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        scaled = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        scaled = np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    if scaled.ndim != 3:
        raise ImageReadError(f"{path}: unsupported image layout with shape {array.shape}")
    channels = scaled.shape[2]
    if channels in (1, 2):  # gray, gray + alpha: alpha dropped (module docstring)
        return np.repeat(scaled[..., :1], 3, axis=2)
    if channels in (3, 4):  # RGB, RGBA: alpha dropped
        return np.ascontiguousarray(scaled[..., :3])
    raise ImageReadError(f"{path}: unsupported number of channels ({channels})")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_16bit_png(path: Path) -> bool:
    """Whether a PNG's IHDR declares 16 bits per sample (Pillow would reduce 16-bit RGB to 8 bits)."""
    with path.open("rb") as handle:
        head = handle.read(26)
    return head[:8] == PNG_SIGNATURE and len(head) == 26 and head[24] == 16


def _read_png16(path: Path) -> np.ndarray:
    import png  # pypng: the one reader here that keeps 16-bit RGB(A)

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)


def _write_png16(path: Path, array: np.ndarray) -> None:
    import png

    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16)
    with path.open("wb") as handle:
        writer.write(handle, array.reshape(height, width * planes))


def read_image(path: str | Path) -> Tensor:
    """Read one image file as RGB, CHW, float32 in [0, 1]; ImageReadError names the file and the problem."""
    path = Path(path)
    image_size(path)  # reject bad files before decoding anything
    try:
        if _is_16bit_png(path):
            return torch.from_numpy(_to_rgb_float(_read_png16(path), path)).permute(2, 0, 1).contiguous()
        with Image.open(path) as probe:
            palette = probe.mode in ("P", "PA")
        # Palette images are expanded through their palette; everything else keeps its bit depth.
        array = iio.imread(path, mode="RGBA" if palette else None)
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError) as error:
        raise ImageReadError(f"{path}: corrupt or truncated image ({error})") from None
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[2] > 4:
        raise ImageReadError(f"{path}: multi-frame images are not supported")
    return torch.from_numpy(_to_rgb_float(np.asarray(array), path)).permute(2, 0, 1).contiguous()


def quantize(img: Tensor, *, levels: int = 255) -> Tensor:
    """Round [0, 1] values to the nearest of `levels` steps, halves away from zero as MATLAB's im2uint8."""
    return torch.floor(img.clamp(0, 1) * levels + 0.5) / levels


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it: set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    # mkstemp makes the file 0600 whatever the umask; the output gets the mode a plain open() would give it.
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: str | Path, img: Tensor, *, bit_depth: int = 8) -> Path:
    """Write RGB CHW (or 1xCHW) [0, 1] as 8- or 16-bit, atomically; the suffix picks the format."""
    path = Path(path)
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise SrtkError(f"{path}: cannot write a batch of {img.shape[0]} images to one file")
        img = img[0]
    if bit_depth not in (8, 16):
        raise SrtkError(f"{path}: bit depth must be 8 or 16, not {bit_depth}")
    if bit_depth == 16 and path.suffix.lower() != ".png":
        raise SrtkError(f"{path}: 16-bit output needs a .png file")
    levels = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    array = (quantize(img.detach().float().cpu(), levels=levels) * levels).round().to(torch.int32)
    array_np = array.permute(1, 2, 0).numpy().astype(dtype)
    with atomic_path(path) as tmp:
        try:
            if bit_depth == 16:
                _write_png16(tmp, array_np)
            else:
                iio.imwrite(tmp, array_np, extension=path.suffix.lower())
        except (OSError, ValueError, KeyError) as error:
            raise SrtkError(f"{path}: cannot write image ({error})") from None
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path
