import cv2
import numpy as np
import pytest
import torch

from core.preprocess import SquarePad, canvas_to_pixels, pad_to_square, prepare_input


@pytest.mark.parametrize("h,w", [(240, 320), (321, 200), (100, 100), (1, 7)])
def test_pad_info_is_the_official_one(h, w):
    image = np.random.default_rng(0).integers(1, 255, (h, w, 3), dtype=np.uint8)
    square, pad = pad_to_square(image)
    side = max(h, w)
    assert square.shape == (side, side, 3)
    assert (pad.top, pad.left) == ((side - h) // 2, (side - w) // 2)
    np.testing.assert_array_equal(square[pad.top:pad.top + h, pad.left:pad.left + w], image)
    assert square.sum() == image.astype(np.int64).sum()  # the rest is black


def test_prepare_input_is_bit_exact_opencv():
    image = np.random.default_rng(1).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    out, pad = prepare_input(image)
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    square = np.zeros((451, 451, 3), np.uint8)
    square[75:375] = rgb
    expected = cv2.resize(square, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert out.dtype == np.uint8 and out.shape == (512, 512, 3)
    np.testing.assert_array_equal(out, expected)
    assert pad == SquarePad(top=75, left=0, height=300, width=451)


@pytest.mark.parametrize("h,w", [(240, 320), (480, 270), (333, 517)])
def test_canvas_to_pixels_round_trip(h, w):
    pad = SquarePad.of(h, w)
    pixels = torch.tensor([[[0.0, 0.0], [w - 1.0, h - 1.0], [w / 2, h / 3]]])
    side = pad.side
    canvas = torch.stack([(pixels[..., 0] + pad.left) / side * 2 - 1,
                          (pixels[..., 1] + pad.top) / side * 2 - 1], -1)
    back = canvas_to_pixels(canvas, torch.tensor([pad.as_offsets()]))
    torch.testing.assert_close(back, pixels, atol=1e-4, rtol=0)


def test_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        prepare_input(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        prepare_input(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        prepare_input(np.zeros((0, 4, 3), np.uint8))
