import torch

from srtk.models.bicubic import Bicubic

# --- srtk.upscale, the Python API: the kind of image given comes back ---


def _bicubic_of(planes: torch.Tensor, scale: int = 4) -> torch.Tensor:
    return Bicubic(scale=scale)(planes.unsqueeze(0).double())[0].clamp(0, 1)


def test_api_returns_a_uint8_array_for_a_uint8_array():
    import numpy as np

    import srtk

    pixels = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    sr = srtk.upscale(pixels, progress=False)
    expected = _bicubic_of(torch.from_numpy(pixels).permute(2, 0, 1) / 255)
    assert sr.dtype == np.uint8 and sr.shape == (20, 16, 3)
    np.testing.assert_array_equal(sr, (expected * 255).round().byte().permute(1, 2, 0).numpy())


def test_api_keeps_gray_uint16_and_float_rgba_layouts():
    import numpy as np

    import srtk

    gray = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    sr = srtk.upscale(gray, scale=2, progress=False)
    assert sr.dtype == np.uint16 and sr.shape == (6, 8)
    expected = _bicubic_of(torch.from_numpy(gray.astype(np.float32)).unsqueeze(0) / 65535, 2)[0]
    # float32 work: a value half a level from a step may round the other way (1 of 65535)
    assert np.abs(sr.astype(np.int64) - (expected * 65535).round().numpy()).max() <= 1
    rgba = np.random.default_rng(1).random((4, 4, 4)).astype(np.float32)
    sr = srtk.upscale(rgba, outscale=1.5, progress=False)
    assert sr.dtype == np.float32 and sr.shape == (6, 6, 4)
    # alpha: MATLAB bicubic straight from 4x4 to 6x6; colour: x4 by the model, then bicubic down to 6x6
    from srtk.data.resize import imresize

    alpha = imresize(torch.from_numpy(rgba[..., 3]).double().unsqueeze(0), size=(6, 6)).clamp(0, 1)[0]
    np.testing.assert_allclose(sr[..., 3], alpha.numpy(), atol=1e-6)


def test_api_tensor_in_tensor_out_equals_the_model_and_reports_progress():
    import srtk

    lr = torch.rand(2, 3, 6, 5)
    calls = []
    sr = srtk.upscale(lr, model=Bicubic(scale=3), tile=4, progress=lambda *a, **k: calls.append(a))
    assert sr.shape == (2, 3, 18, 15) and sr.dtype == lr.dtype
    torch.testing.assert_close(sr, Bicubic(scale=3)(lr).clamp(0, 1), atol=1e-5, rtol=0)
    assert calls[0] == ("upscale", 0, 1) and calls[-1][1] == calls[-1][2] > 1  # one step per tile
    single = srtk.upscale(lr[0], model=Bicubic(scale=3), progress=False)
    assert single.shape == (3, 18, 15)


def test_api_reads_a_path_in_its_own_mode(tmp_path):
    import numpy as np
    from PIL import Image

    import srtk

    Image.fromarray(np.full((3, 2, 2), 100, np.uint8), mode="LA").save(tmp_path / "la.png")
    sr = srtk.upscale(tmp_path / "la.png", scale=2, progress=False)
    assert sr.dtype == np.uint8 and sr.shape == (6, 4, 2) and (sr == 100).all()


def test_plan_outputs_falls_back_to_numbers_and_never_names_an_input(tmp_path):
    from pathlib import Path

    from srtk.infer import InputFile, plan_outputs

    files = [
        InputFile(tmp_path / "a" / "imgs" / "x.png", tmp_path / "a" / "imgs", Path("x.png")),
        InputFile(tmp_path / "b" / "imgs" / "x.png", tmp_path / "b" / "imgs", Path("x.png")),  # same folder name
        InputFile(tmp_path / "out" / "y.png", None, Path("y.png")),  # already in the output folder
        InputFile(tmp_path / "c" / "y_x4.png", None, Path("y_x4.png")),  # holds the tagged name of y.png
    ]
    jobs, earlier = plan_outputs(files, tmp_path / "out", suffix=".png", tag="x4")
    names = [target.relative_to(tmp_path / "out").as_posix() for _, target in jobs]
    # x: same extension, same folder name -> numbered; out/y.png is written beside itself (tagged), which is the
    # name c/y_x4.png would get: both then keep their folder's name.
    assert names == ["x.png", "x_2.png", "y_out_x4.png", "y_x4_c.png"]
    assert earlier == [] and not {target for _, target in jobs} & {file.path for file in files}
