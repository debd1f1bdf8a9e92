import os
import stat

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from srtk.data.io import read_image, write_image, write_json
from srtk.errors import ImageReadError, SrtkError


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
    finally:
        os.umask(previous)
    for path in (image, record):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (path, oct(path.stat().st_mode))
