import io
import os
import stat

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from srtk.data.io import read_image, read_source_image, write_image, write_image_as, write_json
from srtk.errors import ImageReadError, SrtkError
from srtk.models.checkpoint import ModelCard, save_model


def _rgb8(h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_8bit_png_round_trips_exactly(tmp_path):
    pixels = _rgb8()
    iio.imwrite(tmp_path / "a.png", pixels)
    img = read_image(tmp_path / "a.png")
    assert img.shape == (3, 6, 5) and img.dtype == torch.float32
    torch.testing.assert_close(img, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    write_image(tmp_path / "b.png", img)
    np.testing.assert_array_equal(iio.imread(tmp_path / "b.png"), pixels)


def test_16bit_png_keeps_its_depth(tmp_path):
    import png

    pixels = np.random.default_rng(1).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    with (tmp_path / "a.png").open("wb") as handle:
        png.Writer(5, 4, greyscale=False, bitdepth=16).write(handle, pixels.reshape(4, 15))
    img = read_image(tmp_path / "a.png")
    torch.testing.assert_close(img, torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1) / 65535)
    write_image(tmp_path / "b.png", img, bit_depth=16)
    _, _, rows, info = png.Reader(filename=str(tmp_path / "b.png")).asDirect()
    assert info["bitdepth"] == 16
    np.testing.assert_array_equal(np.vstack([np.asarray(r) for r in rows]).reshape(4, 5, 3), pixels)
    gray16 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    with (tmp_path / "g.png").open("wb") as handle:
        png.Writer(4, 3, greyscale=True, bitdepth=16).write(handle, gray16)
    torch.testing.assert_close(read_image(tmp_path / "g.png")[1], torch.from_numpy(gray16.astype(np.float32)) / 65535)


def test_grayscale_is_replicated_to_rgb(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    iio.imwrite(tmp_path / "g.png", gray)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (3, 4, 5)
    for channel in img:
        torch.testing.assert_close(channel, torch.from_numpy(gray).float() / 255)


def test_rgba_and_gray_alpha_drop_alpha(tmp_path):
    rgba = np.concatenate([_rgb8(), np.full((6, 5, 1), 7, np.uint8)], axis=2)
    iio.imwrite(tmp_path / "a.png", rgba)
    torch.testing.assert_close(
        read_image(tmp_path / "a.png") * 255, torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float()
    )
    Image.fromarray(np.full((3, 3, 2), 100, np.uint8), mode="LA").save(tmp_path / "la.png")
    assert torch.allclose(read_image(tmp_path / "la.png"), torch.full((3, 3, 3), 100 / 255))


def test_palette_image_is_expanded_through_its_palette(tmp_path):
    palette_img = Image.new("P", (4, 4))
    palette_img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_img.putpixel((1, 2), 1)
    palette_img.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    torch.testing.assert_close(img[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(img[:, 2, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_jpeg_reads_as_rgb(tmp_path):
    iio.imwrite(tmp_path / "a.jpg", np.full((8, 8, 3), 128, np.uint8), quality=95)
    img = read_image(tmp_path / "a.jpg")
    assert img.shape == (3, 8, 8) and abs(float(img.mean()) - 128 / 255) < 2 / 255


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image file"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, problem):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError) as error:
        read_image(bad)
    message = str(error.value)
    assert str(bad) in message and problem in message and "\n" not in message


def test_truncated_png_is_reported(tmp_path):
    iio.imwrite(tmp_path / "full.png", _rgb8(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png: corrupt or truncated"):
        read_image(tmp_path / "cut.png")


def test_absurd_declared_size_is_refused_before_decoding(tmp_path):
    # A valid PNG signature and IHDR claiming 100000 x 100000 pixels, and no data.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    (tmp_path / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    with pytest.raises(ImageReadError, match="huge.png: declared size"):
        read_image(tmp_path / "huge.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_failed_write_leaves_existing_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(SrtkError, match="batch of 2"):
        write_image(target, torch.rand(2, 3, 4, 4))  # a batch of two cannot go to one file

    def crash_midway(tmp, *args, **kwargs):
        tmp.write_bytes(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr("srtk.data.io.iio.imwrite", crash_midway)
    with pytest.raises(SrtkError, match="out.png: cannot write image"):
        write_image(target, torch.rand(3, 4, 4))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_json_is_atomic_and_readable(tmp_path):
    import json

    path = write_json(tmp_path / "sub" / "r.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask):
    # The atomic writes go through mkstemp (always 0600): the final file must look as if open() had made it.
    previous = os.umask(umask)
    try:
        image = write_image(tmp_path / "out.png", torch.rand(3, 4, 4))
        record = write_json(tmp_path / "out.json", {"a": 1})
        # safetensors writes a file of its own in place of the temporary one: checkpoints too
        card = ModelCard(architecture="bicubic", config={"scale": 2}, scale=2)
        weights = save_model(tmp_path / "m.safetensors", torch.nn.Conv2d(1, 1, 1), card)
    finally:
        os.umask(previous)
    for path in (image, record, weights, weights.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (path, oct(path.stat().st_mode))


def _png16(path, array: np.ndarray) -> None:
    import png

    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16)
    with path.open("wb") as handle:
        writer.write(handle, array.reshape(height, width * planes))


def _png_pixels(path) -> tuple[np.ndarray, int]:
    """(H, W, planes) pixels and bit depth of a PNG as pypng reads it (independent of srtk's reader)."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    return np.vstack([np.asarray(r) for r in rows]).reshape(height, width, info["planes"]), info["bitdepth"]


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_source_image_keeps_mode_and_depth_and_writes_them_back_exactly(tmp_path, mode, channels, bit_depth):
    rng = np.random.default_rng(channels + bit_depth)
    pixels = rng.integers(0, 2**bit_depth, (5, 4, channels), dtype=np.uint16 if bit_depth == 16 else np.uint8)
    if bit_depth == 16:
        _png16(tmp_path / "in.png", pixels)
    else:
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(tmp_path / "in.png")
    source = read_source_image(tmp_path / "in.png")
    assert (source.mode, source.bit_depth, source.rgb.shape) == (mode, bit_depth, (3, 5, 4))
    torch.testing.assert_close(source.rgb[0] * (2**bit_depth - 1), torch.from_numpy(pixels[..., 0].astype(np.float32)))
    if channels in (2, 4):
        torch.testing.assert_close(
            source.alpha[0] * (2**bit_depth - 1), torch.from_numpy(pixels[..., -1].astype(np.float32))
        )
    color = source.rgb[:1] if channels <= 2 else source.rgb
    write_image_as(tmp_path / "out.png", source.rgb, color=source.color, alpha=source.alpha, bit_depth=bit_depth)
    written, depth = _png_pixels(tmp_path / "out.png")
    assert depth == bit_depth and color.shape[0] + (source.alpha is not None) == channels
    np.testing.assert_array_equal(written, pixels)


def test_palette_becomes_rgb_and_its_transparency_alpha(tmp_path):
    image = Image.new("P", (3, 2))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.save(tmp_path / "p.png")
    source = read_source_image(tmp_path / "p.png")
    assert source.mode == "RGB" and source.source_mode == "P"
    torch.testing.assert_close(source.rgb[:, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    image.save(tmp_path / "t.png", transparency=1)  # palette entry 1 fully transparent
    source = read_source_image(tmp_path / "t.png")
    assert source.mode == "RGBA" and source.alpha[0].tolist() == [[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    from PIL import ImageOps

    stored = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 13
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    source = read_source_image(tmp_path / "o.png")
    np.testing.assert_array_equal((source.rgb * 255).round().byte().permute(1, 2, 0).numpy(), upright)


@pytest.mark.parametrize("adobe", [True, False])
def test_cmyk_jpeg_of_either_polarity_reads_as_its_colour(tmp_path, adobe):
    cmyk = np.empty((8, 8, 4), np.uint8)
    cmyk[:] = (30, 200, 90, 40)  # C, M, Y, K in ink amounts: 0 = none
    if adobe:
        Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=100)  # Pillow writes Adobe's inverse
    else:
        buffer = io.BytesIO()
        Image.fromarray(255 - cmyk, mode="CMYK").save(buffer, "JPEG", quality=100)  # stored: the plain values
        data = buffer.getvalue()
        start = data.index(b"\xff\xee")  # drop the APP14 'Adobe' segment
        data = data[:start] + data[start + 2 + int.from_bytes(data[start + 2 : start + 4], "big") :]
        (tmp_path / "c.jpg").write_bytes(data)
    source = read_source_image(tmp_path / "c.jpg")
    expected = torch.tensor([(255 - c) * (255 - 40) / 255 / 255 for c in (30, 200, 90)])  # R = (1 - C)(1 - K)
    assert source.mode == "RGB" and source.source_mode == "CMYK"
    torch.testing.assert_close(source.rgb[:, 4, 4], expected, atol=2 / 255, rtol=0)


@pytest.mark.parametrize(("suffix", "bit_depth"), [(".png", 8), (".png", 16), (".jpg", 8), (".webp", 8), (".tif", 8)])
def test_icc_profile_is_carried_where_the_format_holds_one(tmp_path, suffix, bit_depth):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = write_image_as(tmp_path / f"a{suffix}", torch.rand(3, 4, 5), bit_depth=bit_depth, icc_profile=icc)
    with Image.open(path) as image:
        assert image.info["icc_profile"] == icc
    source = read_source_image(path)
    assert source.icc_profile == icc and source.bit_depth == bit_depth


def test_alpha_into_jpeg_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(SrtkError, match=r"a.jpg: .jpg cannot hold the image's alpha channel"):
        write_image_as(tmp_path / "a.jpg", torch.rand(3, 4, 4), alpha=torch.rand(1, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_gray_output_is_the_luma_of_the_models_rgb(tmp_path):
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
    write_image_as(tmp_path / "g.png", rgb, color="L")
    pixels, _ = _png_pixels(tmp_path / "g.png")
    assert pixels.shape == (2, 2, 1) and (pixels == 76).all()  # round(0.299 * 255)


def _half_a_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_rgb8(32, 32)).save(buffer, "PNG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty file"), (_half_a_png(), "corrupt or truncated"), (b"plain text", "not an image file")],
)
def test_source_reader_names_the_file_and_the_problem(tmp_path, content, problem):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError) as error:
        read_source_image(bad)
    assert str(bad) in str(error.value) and problem in str(error.value) and "\n" not in str(error.value)


def test_png_colour_key_becomes_alpha(tmp_path):
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = (10, 20, 30)
    Image.fromarray(pixels).save(tmp_path / "key.png", transparency=(10, 20, 30))
    source = read_source_image(tmp_path / "key.png")
    assert source.mode == "RGBA" and source.alpha[0].tolist() == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
