"""`srtk upscale` on real folders: every mode comes back, nothing is lost, batches finish, errors are one line."""

import io
import json

import numpy as np
import png
import pytest
import torch
from PIL import Image, ImageCms
from torch import nn

from srtk.config import EvalConfig, UpscaleConfig
from srtk.data.io import read_source_image
from srtk.data.resize import imresize
from srtk.errors import ConfigError
from tests.test_cli import run_cli

HEIGHT, WIDTH = 16, 12
# Bicubic x4 then MATLAB bicubic /4 of a smooth image is near the identity: the round trip measured 52-59 dB on
# these images (JPEGs saved at quality 100 without chroma subsampling); a wrong mode, a lost or swapped channel, a
# negative CMYK or an unrotated image is far below.
ROUND_TRIP_PSNR = 45.0


def smooth(channels: int, seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(H, W, C) float in [0.1, 0.9]: a different smooth pattern per channel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = [
        0.5
        + 0.4 * np.sin(x / rng.uniform(2.5, 4) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 5) + rng.uniform(0, 6))
        for _ in range(channels)
    ]
    return np.stack(planes, axis=2)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] images of any number of channels."""
    return float(10 * torch.log10(1 / (a.double() - b.double()).square().mean()))


def as8(values: np.ndarray) -> np.ndarray:
    return np.round(values * 255).astype(np.uint8)


def as16(values: np.ndarray) -> np.ndarray:
    return np.round(values * 65535).astype(np.uint16)


def write_png16(path, array: np.ndarray) -> None:
    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16)
    with path.open("wb") as handle:
        writer.write(handle, array.reshape(height, width * planes))


def without_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG with its APP14 'Adobe' segment removed: a plain CMYK JPEG, as some cameras and scanners write."""
    start = jpeg.index(b"\xff\xee")
    length = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    return jpeg[:start] + jpeg[start + 2 + length :]


def cmyk_of(rgb8: np.ndarray) -> Image.Image:
    """CMYK with no black ink whose RGB (Pillow: R = 255 - C when K = 0) is `rgb8`."""
    return Image.fromarray(np.concatenate([255 - rgb8, np.zeros_like(rgb8[..., :1])], axis=2), mode="CMYK")


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_mode_folder(folder) -> dict[str, tuple[str, int, np.ndarray]]:
    """Every kind of image `upscale` must give back, and the broken files it must name.

    Returns {file name: (expected output mode, bit depth, expected content as float HxWxC)}.
    """
    folder.mkdir()
    expected: dict[str, tuple[str, int, np.ndarray]] = {}

    gray = as8(smooth(1, 1))
    Image.fromarray(gray[..., 0]).save(folder / "gray.png")
    expected["gray.png"] = ("L", 8, gray / 255)

    gray_alpha = as8(smooth(2, 2))
    Image.fromarray(gray_alpha, mode="LA").save(folder / "gray_alpha.png")
    expected["gray_alpha.png"] = ("LA", 8, gray_alpha / 255)

    rgba = as8(smooth(4, 3))
    Image.fromarray(rgba).save(folder / "rgba.png")
    expected["rgba.png"] = ("RGBA", 8, rgba / 255)

    rgb = as8(smooth(3, 4))
    Image.fromarray(rgb).save(folder / "rgb_icc.png", icc_profile=SRGB_ICC)
    expected["rgb_icc.png"] = ("RGB", 8, rgb / 255)

    palette = Image.fromarray(as8(smooth(3, 5))).quantize(colors=200, dither=Image.Dither.NONE)
    palette.save(folder / "palette.png")
    expected["palette.png"] = ("RGB", 8, np.asarray(palette.convert("RGB")) / 255)

    gray16 = as16(smooth(1, 6))
    write_png16(folder / "gray16.png", gray16)
    expected["gray16.png"] = ("L", 16, gray16 / 65535)

    rgb16 = as16(smooth(3, 7))
    write_png16(folder / "rgb16.png", rgb16)
    expected["rgb16.png"] = ("RGB", 16, rgb16 / 65535)

    cmyk_rgb = as8(smooth(3, 8))
    cmyk_of(cmyk_rgb).save(folder / "cmyk_adobe.jpg", quality=100)  # Pillow writes Adobe's inverted CMYK
    expected["cmyk_adobe.jpg"] = ("RGB", 8, cmyk_rgb / 255)
    plain = io.BytesIO()
    # Pillow inverts on writing; inverting first stores the plain values, and without the marker they read as such.
    Image.fromarray(255 - np.asarray(cmyk_of(cmyk_rgb)), mode="CMYK").save(plain, "JPEG", quality=100)
    (folder / "cmyk_plain.jpg").write_bytes(without_adobe_marker(plain.getvalue()))
    expected["cmyk_plain.jpg"] = ("RGB", 8, cmyk_rgb / 255)

    upright = as8(smooth(3, 9))  # as the camera meant it: 16 x 12; stored turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(
        folder / "rotated.jpg", quality=100, subsampling=0, exif=exif
    )
    expected["rotated.jpg"] = ("RGB", 8, upright / 255)

    Image.fromarray(np.array([[[200, 30, 90]]], np.uint8)).save(folder / "one_pixel.png")
    expected["one_pixel.png"] = ("RGB", 8, np.array([[[200, 30, 90]]]) / 255)

    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"this is not an image at all")
    whole = (folder / "rgb_icc.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    whole = (folder / "rotated.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "huge.png").write_bytes(huge_png_header())
    return expected


BROKEN = ("empty.png", "text.jpg", "truncated.png", "truncated.jpg", "huge.png")


def huge_png_header() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def mode_and_depth(path) -> tuple[str, int]:
    """The mode and bit depth of a written PNG, read by pypng (independent of srtk's reader)."""
    _, _, _, info = png.Reader(filename=str(path)).asDirect()
    mode = ("L" if info["greyscale"] else "RGB") + ("A" if info["alpha"] else "")
    return mode, info["bitdepth"]


def test_every_mode_comes_back_in_its_own_mode_and_every_broken_file_is_named(monkeypatch, capsys, tmp_path):
    expected = make_mode_folder(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    code, out, err = run_cli(monkeypatch, capsys, "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 1
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{name.rsplit('.', 1)[0]}.png" for name in expected)  # nothing partial, no temp
    for name, (mode, depth, content) in expected.items():
        output = tmp_path / "out" / f"{name.rsplit('.', 1)[0]}.png"
        assert mode_and_depth(output) == (mode, depth), name
        sr = read_source_image(output)
        planes = sr.rgb[:1] if mode.startswith("L") else sr.rgb
        if sr.alpha is not None:
            planes = torch.cat([planes, sr.alpha])
        assert planes.shape[-2:] == (content.shape[0] * 4, content.shape[1] * 4), name
        reference = torch.from_numpy(content).permute(2, 0, 1).float()
        if name == "one_pixel.png":  # bicubic of a constant is that constant
            torch.testing.assert_close(planes, reference.expand(-1, 4, 4), atol=0.5 / 255, rtol=0)
            continue
        down = imresize(planes.double().unsqueeze(0), size=reference.shape[-2:])[0].float()
        assert psnr(down, reference) > ROUND_TRIP_PSNR, (name, psnr(down, reference))
    assert Image.open(tmp_path / "out" / "rgb_icc.png").info.get("icc_profile") == SRGB_ICC
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == len(BROKEN)
    for broken in BROKEN:
        assert sum(broken in line for line in error_lines) == 1, broken
    assert f"{len(expected)} written" in out and f"{len(BROKEN)} failed" in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before


def test_upscaling_a_folder_into_itself_loses_nothing_and_never_upscales_its_own_output(monkeypatch, capsys, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(folder / name)
    originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out, _ = run_cli(monkeypatch, capsys, "upscale", str(folder), "-o", str(folder))
    assert code == 0 and "3 written" in out
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["a.jpg", "a.png", "a_jpg_x4.png", "a_png_x4.png", "b.png", "b_x4.png"]
    assert {name: (folder / name).read_bytes() for name in originals} == originals
    outputs = {name: (folder / name).read_bytes() for name in names if name not in originals}
    assert len(set(outputs.values())) == 3  # three different images, none lost to another's name
    assert all(Image.open(folder / name).size == (20, 24) for name in outputs)
    # A second run finds its earlier outputs beside the sources: they are not upscaled again into x16 images.
    code, out, _ = run_cli(monkeypatch, capsys, "upscale", str(folder), "-o", str(folder), "--skip-existing")
    assert code == 0 and "0 written" in out and "6 skipped" in out
    assert sorted(p.name for p in folder.iterdir()) == names
    assert {name: (folder / name).read_bytes() for name in originals} == originals


def test_same_names_in_two_folders_and_two_formats_get_distinct_outputs(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(1)
    sources = [tmp_path / "one" / "x.png", tmp_path / "two" / "x.png", tmp_path / "one" / "y.png"]
    sources.append(tmp_path / "one" / "y.jpg")
    for path in sources:
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(path)
    args = ["upscale", str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out")]
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert code == 0 and "4 written" in out
    assert names == ["x_one.png", "x_two.png", "y_jpg.png", "y_png.png"]
    contents = {(tmp_path / "out" / name).read_bytes() for name in names}
    assert len(contents) == 4  # the summary's count is what is on disk


def test_recursive_mirrors_subfolders(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(2)
    for relative in ("top.png", "sub/inner.png", "sub/deeper/leaf.png", ".hidden/skip.png"):
        (tmp_path / "in" / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (3, 3), dtype=np.uint8)).save(tmp_path / "in" / relative)
    code, out, _ = run_cli(monkeypatch, capsys, "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "flat"))
    assert code == 0 and [p.name for p in (tmp_path / "flat").iterdir()] == ["top.png"]
    assert "1 subfolder(s) not searched (--recursive mirrors them)" in out  # skipped, but not in silence
    args = ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "sr"), "--recursive"]
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    written = sorted(p.relative_to(tmp_path / "in" / "sr").as_posix() for p in (tmp_path / "in" / "sr").rglob("*.png"))
    assert code == 0 and written == ["sub/deeper/leaf.png", "sub/inner.png", "top.png"]
    code, out, _ = run_cli(monkeypatch, capsys, *args)  # its own output folder inside the input is not an input
    assert code == 0 and "3 written" in out


class CountingBicubic(nn.Module):
    """Bicubic x2 that counts its calls and fails, as a model can (e.g. out of memory), on 7-pixel-high inputs."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if lr.shape[-2] == 7:
            raise RuntimeError("CUDA out of memory on this one\nsecond line of the trace")
        return imresize(lr, 2)


@pytest.fixture()
def counting_model(monkeypatch):
    model = CountingBicubic()
    monkeypatch.setattr("srtk.infer.load_model", lambda name, scale: model)
    return model


def test_a_failure_mid_batch_does_not_stop_the_others_and_skip_existing_does_no_work(
    monkeypatch, capsys, tmp_path, counting_model
):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, height in (("a.png", 5), ("b.png", 7), ("c.png", 6)):
        Image.fromarray(rng.integers(0, 256, (height, 4, 3), dtype=np.uint8)).save(folder / name)
    report = tmp_path / "report.json"
    args = ["upscale", str(folder), "-o", str(tmp_path / "out"), "--tile", "none", "--report", str(report)]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1 and counting_model.calls == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {folder / 'b.png'}: RuntimeError: CUDA out of memory on this one"
    ]
    result = json.loads(report.read_text())
    assert result["counts"] == {"written": 2, "skipped": 0, "failed": 1}
    assert [f["status"] for f in result["files"]] == ["written", "failed", "written"]
    assert all(f["seconds"] >= 0 for f in result["files"]) and result["files"][0]["mode"] == "RGB 8-bit"
    counting_model.calls = 0
    code, out, _ = run_cli(monkeypatch, capsys, *args, "--skip-existing")
    assert code == 1 and counting_model.calls == 1  # only b.png, which failed, is tried again
    assert "2 skipped" in out


def test_alpha_goes_through_the_model_only_when_asked(monkeypatch, capsys, tmp_path, counting_model):
    rgba = as8(smooth(4, 11, 6, 5))
    Image.fromarray(rgba).save(tmp_path / "a.png")
    outputs = {}
    for alpha in ("bicubic", "model"):
        counting_model.calls = 0
        args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / alpha), "--alpha", alpha, "--tile", "none"]
        code, _, _ = run_cli(monkeypatch, capsys, *args)
        assert code == 0 and counting_model.calls == (1 if alpha == "bicubic" else 2)
        outputs[alpha] = np.asarray(Image.open(tmp_path / alpha / "a.png"))
    assert outputs["model"].shape == (12, 10, 4)
    # the counting model is bicubic itself: both ways give the same alpha, up to rounding
    assert np.abs(outputs["model"].astype(int) - outputs["bicubic"].astype(int)).max() <= 1


def test_ctrl_c_leaves_no_partial_file_and_says_how_many_were_done(monkeypatch, capsys, tmp_path, counting_model):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / name)
    real_save = Image.Image.save
    saves = []

    def save_then_interrupt(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 2:  # the second output: half written, then Ctrl-C
            fp.write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_then_interrupt)
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(folder), "-o", str(tmp_path / "out"))
    assert code == 130 and "1 image(s) written before Ctrl-C" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]  # no b.png, no temporary file


def test_outscale_resizes_the_models_output_with_matlab_bicubic(monkeypatch, capsys, tmp_path):
    Image.fromarray(as8(smooth(3, 10, 7, 6))).save(tmp_path / "a.png")
    lr = torch.from_numpy(as8(smooth(3, 10, 7, 6))).permute(2, 0, 1).double().unsqueeze(0) / 255
    for outscale, size in (("2", (14, 12)), ("3.5", (25, 21))):
        out = tmp_path / outscale
        code, stdout, _ = run_cli(
            monkeypatch, capsys, "upscale", str(tmp_path / "a.png"), "-o", str(out), "--outscale", outscale
        )
        assert code == 0 and f"MATLAB bicubic then resizes to x{outscale}" in stdout
        sr = read_source_image(out / "a.png").rgb
        expected = imresize(imresize(lr, 4), size=size).clamp(0, 1)[0].float()
        assert sr.shape[-2:] == size
        assert (sr - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_a_checkpoint_asked_for_another_scale_is_an_error_naming_both(monkeypatch, capsys, tmp_path, counting_model):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--scale", "4"
    )
    assert code == 1 and err.splitlines() == [
        "error: bicubic: the model upscales x2, but --scale is 4 (--outscale 4 resizes its output to that factor)"
    ]
    assert not (tmp_path / "o").exists() and counting_model.calls == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "--scale must be a positive integer, not 0"),
        (["--outscale", "-1"], "--outscale must be in (0, 64.0], not -1.0"),
        (["--suffix", ".xyz"], "--suffix .xyz: not an image format srtk writes"),
        (["--suffix", "a/b"], "--suffix must be a file extension"),
        (["--tile", "0"], "--tile must be a positive size"),
        (["--tile", "big"], "--tile must be a size in LR pixels, 'auto' or 'none', not 'big'"),
        (["--tile-overlap", "-2"], "--tile-overlap must be >= 0, not -2"),
        (["--precision", "fp64"], "unknown precision 'fp64'"),
        (["--alpha", "nearest"], "--alpha must be one of bicubic, model, not 'nearest'"),
        (["--bit-depth", "12"], "--bit-depth must be 8 or 16, not 12"),
        (["--model", "no-such-model"], "no-such-model: no such checkpoint file"),
        (["--report", "r.txt"], "r.txt: '.txt'; the file name must end in .json"),
    ],
)
def test_bad_options_are_one_error_line_before_any_work(monkeypatch, capsys, tmp_path, args, message):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *args)
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "o").exists()


def test_output_that_is_a_file_is_one_error_line(monkeypatch, capsys, tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.png"))
    assert code == 1 and err.splitlines() == [f"error: {tmp_path / 'a.png'}: is a file; the output must be a folder"]
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.png" / "sub")
    )
    assert code == 1 and err.splitlines() == [
        f"error: {tmp_path / 'a.png' / 'sub'}: cannot be written, {tmp_path / 'a.png'} is a file, not a folder"
    ]


def test_suffix_without_a_dot_and_alpha_into_jpeg(monkeypatch, capsys, tmp_path):
    Image.fromarray(np.full((4, 4, 4), 90, np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "rgb.png")
    code, _, _ = run_cli(monkeypatch, capsys, "upscale", str(tmp_path), "-o", str(tmp_path / "w"), "--suffix", "webp")
    assert code == 0 and sorted(p.name for p in (tmp_path / "w").iterdir()) == ["rgb.webp", "rgba.webp"]
    assert Image.open(tmp_path / "w" / "rgba.webp").mode == "RGBA"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(tmp_path), "-o", str(tmp_path / "j"), "--suffix", "JPG")
    assert code == 1 and [p.name for p in (tmp_path / "j").iterdir()] == ["rgb.jpg"]
    assert [line for line in err.splitlines() if line.startswith("error")] == [
        f"error: {tmp_path / 'j' / 'rgba.jpg'}: .jpg cannot hold the image's alpha channel; "
        "use --suffix .png, .tif or .webp"
    ]


def test_evaluate_and_upscale_share_the_tile_check():
    for make in (EvalConfig, UpscaleConfig):
        with pytest.raises(ConfigError, match="--tile must be a positive size"):
            make(tile=0)
        with pytest.raises(ConfigError, match="--tile-overlap must be >= 0"):
            make(tile_overlap=-1)
