"""tiling.read_window at fractional window corners, against the coordinates of a ramp image (issue #12).

Level-0 pixel i covers [i, i+1) and holds value i (channel 0: column, channel 1: row); output pixel j of a
window (x0, y0, size) read to ``out`` pixels covers [x0 + j/s, x0 + (j+1)/s) with s = out/size, so a bilinear
reader shows x0 + (j + 0.5)/s - 0.5 there. Placing the read at a whole output pixel may shift it by half an
output pixel at most.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgg.datasets.tiling import read_window

W = H = 256


class RampReader:
    """``RasterScene.read`` interface over a ramp image; level L is the level-0 crop area-averaged 2**L times."""

    def __init__(self):
        cols, rows = np.meshgrid(np.arange(W), np.arange(H))
        self.image = np.stack([cols, rows, np.zeros_like(cols)], axis=-1).astype(np.uint8)

    def read(self, window, level=0):
        c, r, w, h = (int(v) for v in window)
        assert 0 <= c and 0 <= r and c + w <= W and r + h <= H, window  # read_window only asks for on-image pixels
        crop = self.image[r : r + h, c : c + w]
        if level == 0:
            return crop
        t = torch.from_numpy(crop).permute(2, 0, 1).float()[None]
        size = (max(1, round(h / 2**level)), max(1, round(w / 2**level)))
        return F.interpolate(t, size=size, mode="area")[0].permute(1, 2, 0).round().byte().numpy()


@pytest.mark.parametrize(
    "window,out",
    [
        ((10.7, 20.7, 64, 64), 64),  # s = 1, corners past the half pixel (used to crash: negative offset)
        ((30.3, 40.6, 40, 40), 80),  # s = 2, upsampling
        ((12.6, 7.2, 128, 128), 64),  # s = 0.5, a coarser pyramid level
        ((-5.5, -3.25, 40, 40), 80),  # fractional corner off the top-left edge
        ((230.6, 240.4, 40, 40), 80),  # off the bottom-right edge
        ((100.5, 50.5, 10.5, 10.5), 21),  # fractional size: the read part is larger than the canvas
    ],
)
def test_read_window_fractional_corner_matches_ramp(window, out):
    x0, y0, size = window[0], window[1], window[2]
    s = out / size
    img = read_window(RampReader(), W, H, window, out)
    assert img.shape == (3, out, out)
    centre = (torch.arange(out) + 0.5) / s  # output pixel centres in level-0 px from the corner
    x, y = x0 + centre, y0 + centre
    tol = 0.5 / s + 0.05 + (0.5 if s < 1 else 0.0)  # placement rounding (+ area-average rounding when shrinking)
    # away from the image border (bilinear edge clamp, zero padding) the ramp reads back the coordinates
    ix = ((x > 1.5) & (x < W - 1.5)).nonzero().flatten()
    iy = ((y > 1.5) & (y < H - 1.5)).nonzero().flatten()
    ix, iy = ix[1:-1], iy[1:-1]  # skip the part's first/last output pixel
    got_x = img[0][iy][:, ix] * 255
    got_y = img[1][iy][:, ix] * 255
    assert torch.allclose(got_x, (x[ix] - 0.5).expand_as(got_x), atol=tol)
    assert torch.allclose(got_y, (y[iy] - 0.5)[:, None].expand_as(got_y), atol=tol)
    # off the image: zero padding
    off_x, off_y = (x < -1) | (x > W + 1), (y < -1) | (y > H + 1)
    assert img[:, :, off_x].abs().sum() == 0 and img[:, off_y, :].abs().sum() == 0


def test_read_window_integer_corner_is_the_plain_crop():
    """An integer corner at scale 1 gives exactly the level-0 pixels (the fix keeps this path bit-identical)."""
    reader = RampReader()
    img = read_window(reader, W, H, (11, 21, 64, 64), 64)
    ref = torch.from_numpy(reader.image[21:85, 11:75]).permute(2, 0, 1).float() / 255
    assert torch.equal(img, ref)
    # at scale 1 a fractional corner is the nearest whole-pixel crop
    assert torch.equal(read_window(reader, W, H, (10.7, 20.7, 64, 64), 64), img)
