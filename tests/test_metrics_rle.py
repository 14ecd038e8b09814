"""PIE-Bench's run-length masks, checked against masks drawn by hand."""

from __future__ import annotations

import numpy as np
import pytest

from spl_sdk.metrics.rle import decode_mask, encode_mask

# drawn by hand; its runs in the row-major flattening (index = row * 6 + column) are
# (2, 2) on row 0, (7, 4) on row 1, none on row 2, (18, 1) and (23, 1) on row 3
DRAWN = np.array([[0, 0, 1, 1, 0, 0],
                  [0, 1, 1, 1, 1, 0],
                  [0, 0, 0, 0, 0, 0],
                  [1, 0, 0, 0, 0, 1]], dtype=bool)
RUNS = [2, 2, 7, 4, 18, 1, 23, 1]


def test_runs_decode_to_the_drawn_mask():
    assert np.array_equal(decode_mask(RUNS, (4, 6), border=False), DRAWN)
    assert encode_mask(DRAWN) == RUNS


def test_pie_bench_sets_the_border_and_clips_runs_at_the_end():
    with_border = decode_mask([8, 2], (4, 6))
    expected = np.ones((4, 6), dtype=bool)
    expected[1:3, 1:5] = False
    expected[1, 2:4] = True  # the run: flat indices 8 and 9 are row 1, columns 2 and 3
    assert np.array_equal(with_border, expected)
    clipped = decode_mask([22, 10], (4, 6), border=False)
    assert clipped.sum() == 2 and clipped[3, 4] and clipped[3, 5]


def test_the_default_shape_is_pie_benchs_512_square():
    mask = decode_mask([512 * 100 + 50, 10])
    assert mask.shape == (512, 512)
    assert mask[100, 50:60].all() and not mask[100, 60] and not mask[101, 50]
    assert mask[0].all() and mask[:, -1].all()  # the border PIE-Bench adds


def test_a_random_mask_survives_a_round_trip():
    mask = np.random.default_rng(0).random((33, 17)) > 0.6
    assert np.array_equal(decode_mask(encode_mask(mask), mask.shape, border=False), mask)
    with pytest.raises(ValueError, match="start/length pairs"):
        decode_mask([1, 2, 3], (4, 6))
