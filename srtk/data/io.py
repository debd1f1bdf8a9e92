"""Image and result-file I/O: decoding to RGB float tensors, validation, atomic writes.

Every image enters srtk as RGB, CHW, float32 in [0, 1]:
- 8-bit images are divided by 255, 16-bit by 65535;
- grayscale (and grayscale + alpha) is replicated to three channels;
- palette images are expanded through their palette;
- alpha is dropped: SR restores the colour data as stored, and the papers' benchmarks have no alpha.
  (Composite over a background yourself first if you need a flattened result.)
`srtk upscale` reads and writes through read_source_image / write_image_as instead, which keep what read_image
drops: the mode (gray, alpha), the bit depth, the EXIF orientation and the ICC profile (SourceImage).
Every file srtk writes goes to a temporary file in the same folder first and is renamed into place, so an
interrupted run never leaves a half-written output.
"""

import io
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageChops, UnidentifiedImageError
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
    try:
        yield tmp
        # mkstemp makes the file 0600 whatever the umask, and some writers (safetensors, torch.save) replace the
        # file with their own: the output gets the mode a plain open() would give it, set last.
        os.chmod(tmp, 0o666 & ~current_umask())
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


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# `srtk upscale` reads and writes through the pair below, so that the kind of image you gave comes back: see
# SourceImage for the table of modes. read_image above stays the RGB-only reader of training and evaluation.

EXIF_ORIENTATION = 0x0112
# Formats whose files cannot hold an alpha channel: writing an RGBA result there would destroy the alpha.
NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".ppm", ".pgm")
# ITU-R BT.601 luma, the weights Pillow's RGB -> L uses: a model's RGB output of a grayscale input becomes gray.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class SourceImage:
    """An image as `srtk upscale` reads it: its colour as RGB for the model, and what it takes to write it back.

    source mode (Pillow)                 -> colour, alpha, bit depth of the output
    1, L, I;16*, I (values < 65536)      -> L (8 bits; 16 for I;16*/I)
    LA, La, L with a PNG colour key      -> L + alpha
    P, PA (palette)                      -> RGB, + alpha when the palette has transparency
    RGB, RGBX, YCbCr                     -> RGB
    RGBA, RGBa, RGB with a colour key    -> RGB + alpha
    CMYK (plain or Adobe-inverted JPEG)  -> RGB, through its ICC profile when it has one
    16-bit PNG (gray, gray+alpha, RGB, RGBA) -> the same, 16 bits
    EXIF orientation is applied; the ICC profile is kept (except CMYK's, which the conversion uses up).
    """

    rgb: Tensor  # (3, H, W) float32 in [0, 1]; grayscale replicated to three channels
    alpha: Tensor | None  # (1, H, W) float32 in [0, 1]
    color: str  # "L" or "RGB": the colour channels the output gets
    bit_depth: int  # 8 or 16
    icc_profile: bytes | None
    source_mode: str  # Pillow's name for what the file held, e.g. "P", "CMYK", "I;16"

    @property
    def mode(self) -> str:
        """The output's mode: L, LA, RGB or RGBA."""
        return self.color + ("A" if self.alpha is not None else "")


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HW or HWC array: the pixels as the camera meant them to be seen."""
    swapped = array.swapaxes(0, 1)
    oriented = {
        2: array[:, ::-1],  # mirrored left-right
        3: array[::-1, ::-1],  # rotated 180
        4: array[::-1],  # mirrored top-bottom
        5: swapped,  # transposed
        6: swapped[:, ::-1],  # rotated 90 clockwise
        7: swapped[::-1, ::-1],  # transversed
        8: swapped[::-1],  # rotated 90 counter-clockwise
    }.get(orientation, array)
    return np.ascontiguousarray(oriented)


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """A CMYK image -> RGB, with the ink polarity fixed and the file's ICC profile used when it has one."""
    icc = image.info.get("icc_profile")
    if "adobe" not in image.info:
        # Pillow decodes every CMYK JPEG as Adobe's inverted CMYK; without Adobe's APP14 marker the file holds
        # plain CMYK (0 = no ink), which that inversion turns into a negative.
        image = ImageChops.invert(image)
    if icc:
        from PIL import ImageCms

        try:
            return ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):  # a broken profile: the plain conversion below
            pass
    return image.convert("RGB")


def _pillow_array(image: Image.Image, path: Path) -> tuple[np.ndarray, int, bytes | None]:
    """(HW / HWC uint8 or uint16 array in one of the modes L, LA, RGB, RGBA, bit depth, ICC profile)."""
    icc = image.info.get("icc_profile") or None
    mode = image.mode
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(image)), 8, None  # the profile is used up: now sRGB
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16), 16, icc
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ImageReadError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return values.astype(np.uint16), 16, icc
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or image.info.get("transparency") is not None
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB")), 8, icc
    conversions = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}
    if mode in ("L", "RGB") and image.info.get("transparency") is not None:  # a PNG colour key: alpha 0 there
        image = image.convert(f"{mode}A")
    elif mode in conversions:
        image = image.convert(conversions[mode])
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(f"{path}: unsupported image mode {mode}")
    return np.asarray(image), 8, icc


def read_source_image(path: str | Path) -> SourceImage:
    """Read one image for `srtk upscale`, keeping its mode, bit depth, alpha and ICC profile (SourceImage).

    ImageReadError names the file and the problem.
    """
    path = Path(path)
    image_size(path)  # reject bad files before decoding anything
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise ImageReadError(f"{path}: multi-frame images are not supported")
            source_mode = image.mode
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
            if _is_16bit_png(path):  # Pillow would reduce 16-bit RGB(A) to 8 bits
                icc = image.info.get("icc_profile") or None
                array, bit_depth = _read_png16(path), 16
                source_mode = f"{source_mode} (16-bit)"
            else:
                image.load()
                array, bit_depth, icc = _pillow_array(image, path)
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError, struct.error) as error:
        raise ImageReadError(f"{path}: corrupt or truncated image ({error})") from None
    array = _orient(array, orientation)
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: unsupported number of channels ({channels})")
    scaled = torch.from_numpy(array.astype(np.float32) / (255.0 if bit_depth == 8 else 65535.0)).permute(2, 0, 1)
    color_channels = 1 if channels <= 2 else 3
    rgb = scaled[:color_channels].expand(3, -1, -1).contiguous()
    alpha = scaled[color_channels:].contiguous() if channels in (2, 4) else None
    return SourceImage(rgb, alpha, "L" if color_channels == 1 else "RGB", bit_depth, icc, source_mode)


def _png_with_icc(data: bytes, icc_profile: bytes) -> bytes:
    """PNG bytes with an iCCP chunk right after IHDR (pypng writes none)."""
    body = b"icc\x00\x00" + zlib.compress(icc_profile)  # profile name, NUL, compression method 0 (deflate)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4  # length, type, 13 bytes of header, CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def write_image_as(
    path: str | Path,
    rgb: Tensor,
    *,
    color: str = "RGB",
    alpha: Tensor | None = None,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
) -> Path:
    """Write (3, H, W) `rgb` and optional (1, H, W) `alpha` in [0, 1] as `color` ("L"/"RGB") + alpha, atomically.

    8 bits go through Pillow (the suffix picks the format), 16 bits need .png. The ICC profile is embedded
    where the format holds one (PNG, JPEG, TIFF, WebP).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if color not in ("L", "RGB"):
        raise SrtkError(f"{path}: colour must be L or RGB, not {color}")
    if bit_depth not in (8, 16):
        raise SrtkError(f"{path}: bit depth must be 8 or 16, not {bit_depth}")
    if bit_depth == 16 and suffix != ".png":
        raise SrtkError(f"{path}: 16-bit output needs a .png file")
    if alpha is not None and suffix in NO_ALPHA_SUFFIXES:
        raise SrtkError(f"{path}: {suffix} cannot hold the image's alpha channel; use --suffix .png, .tif or .webp")
    planes = rgb.detach().float().cpu()
    if color == "L":
        planes = torch.tensordot(torch.tensor(LUMA_WEIGHTS), planes, dims=1).unsqueeze(0)
    if alpha is not None:
        planes = torch.cat([planes, alpha.detach().float().cpu()])
    levels = 255 if bit_depth == 8 else 65535
    array = (quantize(planes, levels=levels) * levels).round().to(torch.int32).permute(1, 2, 0).numpy()
    array = array.astype(np.uint8 if bit_depth == 8 else np.uint16)
    with atomic_path(path) as tmp:
        try:
            if bit_depth == 16:
                import png

                buffer = io.BytesIO()
                height, width, channels = array.shape
                writer = png.Writer(width, height, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=16)
                writer.write(buffer, array.reshape(height, width * channels))
                data = buffer.getvalue()
                tmp.write_bytes(_png_with_icc(data, icc_profile) if icc_profile else data)
            else:
                image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
                extra = {"icc_profile": icc_profile} if icc_profile else {}
                image.save(tmp, **extra)
        except (OSError, ValueError, KeyError) as error:
            raise SrtkError(f"{path}: cannot write image ({error})") from None
    return path
