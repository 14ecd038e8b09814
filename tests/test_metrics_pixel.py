"""Background PSNR, MSE and SSIM against scikit-image, and the unedited-region logic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from spl_sdk.metrics import pixel


def _pair(shape=(64, 48, 3), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, shape), 0, 255).astype(np.uint8)
    return a, b


def _skimage(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    a, b = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    return (peak_signal_noise_ratio(a, b, data_range=1), mean_squared_error(a, b),
            structural_similarity(a, b, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False))


@pytest.mark.parametrize("masked", [False, True])
def test_psnr_mse_ssim_agree_with_scikit_image(masked):
    a, b = _pair()
    keep = None
    if masked:
        keep = np.ones(a.shape[:2], dtype=bool)
        keep[10:30, 5:25] = False
        # PIE-Bench zeroes the region outside the one compared, in both images
        a_ref, b_ref = a * keep[..., None], b * keep[..., None]
    else:
        a_ref, b_ref = a, b
    ref_psnr, ref_mse, ref_ssim = _skimage(a_ref, b_ref)
    assert pixel.psnr(a, b, keep) == pytest.approx(ref_psnr, rel=1e-5)
    assert pixel.mse(a, b, keep) == pytest.approx(ref_mse, rel=1e-5)
    # the SSIM maps are equal inside; torchmetrics' mean also counts the 5-pixel border (reflect
    # padded) that scikit-image crops, which moves the mean by ~1e-3 on a 64 x 48 image
    assert pixel.ssim(a, b, keep) == pytest.approx(ref_ssim, abs=2e-3)


@pytest.mark.filterwarnings("ignore::UserWarning")  # lpips passes torchvision a deprecated keyword
def test_only_the_edited_region_changes_so_the_background_is_perfect():
    import lpips

    a, _ = _pair(seed=1)
    edited = a.copy()
    region = np.zeros(a.shape[:2], dtype=bool)
    region[20:40, 10:30] = True
    edited[region] = 255 - edited[region]  # the edit
    keep = ~region
    net = lpips.LPIPS(net="squeeze", pnet_rand=True, verbose=False)
    assert pixel.mse(a, edited, keep) == 0.0 and math.isinf(pixel.psnr(a, edited, keep))
    assert pixel.ssim(a, edited, keep) == pytest.approx(1.0)
    assert pixel.lpips_distance(net, a, edited, keep) == pytest.approx(0.0, abs=1e-6)
    # the whole frame, or the edited region, sees the change
    assert pixel.mse(a, edited) > 0.01 and pixel.mse(a, edited, region) > 0.01
    assert pixel.lpips_distance(net, a, edited) > 0
