import torch

from srtk.data.resize import cubic, imresize, modcrop, weight_matrix


def test_cubic_kernel_known_values():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], dtype=torch.float64)
    # a = -0.5: 1, 0.5625, 0, -0.0625, 0, 0
    torch.testing.assert_close(cubic(x), torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0], dtype=torch.float64))


def test_constant_images_stay_constant():
    img = torch.full((2, 3, 20, 17), 0.37, dtype=torch.float64)
    for scale in (0.25, 0.5, 1 / 3, 2, 3, 4):
        out = imresize(img, scale)
        torch.testing.assert_close(out, torch.full_like(out, 0.37))


def test_output_size_is_matlab_ceil():
    img = torch.rand(1, 1, 10, 7, dtype=torch.float64)
    assert imresize(img, 0.25).shape[-2:] == (3, 2)
    assert imresize(img, 3).shape[-2:] == (30, 21)


def test_upscale_1d_hand_computed():
    # imresize([1 2 3 4], 2): first output at u = 0.75 takes pixels -1..2 with cubic weights
    # (-0.0234375, 0.2265625, 0.8671875, -0.0703125); mirrored borders map pixels -1, 0 to 2, 1.
    row = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    out = imresize(row.view(1, 1, 1, 4), size=(1, 8))[0, 0, 0]
    assert abs(float(out[0]) - 0.90625) < 1e-12
    # flip equivariance: the reversed input gives the reversed output
    rev = imresize(row.flip(-1).view(1, 1, 1, 4), size=(1, 8))[0, 0, 0]
    torch.testing.assert_close(rev.flip(0), out)


def test_downscale_uses_antialiased_kernel():
    # Downscaling by 1/2 stretches the kernel to width 8: each output is a weighted sum over 8 inputs whose
    # weights are cubic(x/2)/2, normalised; the interior row of the matrix must equal that.
    matrix = weight_matrix(32, 16, 0.5, antialias=True, dtype=torch.float64, device=torch.device("cpu"))
    centre = 8 / 0.5 + 0.5 * (1 - 1 / 0.5)  # output 8 (1-based) sits at input 15.5
    inputs = torch.arange(1, 33, dtype=torch.float64)
    expected = cubic((centre - inputs) * 0.5) * 0.5
    expected = expected / expected.sum()
    torch.testing.assert_close(matrix[7], expected)
    assert int((matrix[7] != 0).sum()) == 8
    torch.testing.assert_close(matrix.sum(1), torch.ones(16, dtype=torch.float64))


def test_without_antialias_downscale_uses_4_taps():
    matrix = weight_matrix(32, 16, 0.5, antialias=False, dtype=torch.float64, device=torch.device("cpu"))
    assert int((matrix[7].abs() > 1e-12).sum()) == 4


def test_batched_equals_per_image_and_float32_close_to_float64():
    imgs = torch.rand(3, 3, 24, 20, dtype=torch.float64)
    batched = imresize(imgs, 0.25)
    for i in range(3):
        torch.testing.assert_close(batched[i], imresize(imgs[i], 0.25))
    torch.testing.assert_close(imresize(imgs.float(), 0.25).double(), batched, atol=1e-6, rtol=0)


def test_modcrop():
    img = torch.zeros(3, 10, 13)
    assert modcrop(img, 4).shape == (3, 8, 12)
    assert modcrop(img, 1).shape == (3, 10, 13)
