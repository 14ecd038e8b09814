"""PIE-Bench's run-length-encoded masks.

A mask is a flat list ``[start_0, length_0, start_1, length_1, ...]``: runs of 1s in the
row-major (C-order) flattening of a 512 x 512 array, starts counted from 0. A run
that would pass the end stops there. PIE-Bench's decoder then sets the one-pixel
border to 1 ("to avoid annotation errors in boundary"); ``border=True`` does the same,
so the decoded masks equal the ones its metrics use.
"""

from __future__ import annotations

from collections.abc import Sequence

from spl_sdk.lazy import numpy as np

PIE_SHAPE = (512, 512)


def decode_mask(encoded: Sequence[int], shape: tuple[int, int] = PIE_SHAPE, *,
                border: bool = True) -> np.ndarray:
    """A boolean (H, W) mask, True = edited region, from PIE-Bench's run-length encoding."""
    if len(encoded) % 2:
        raise ValueError(f"a run-length mask needs start/length pairs; got {len(encoded)} numbers")
    n = shape[0] * shape[1]
    flat = np.zeros(n + 1, dtype=np.int32)  # +1 sentinel for runs that end at the last pixel
    starts = np.asarray(encoded[0::2], dtype=np.int64)
    ends = np.minimum(starts + np.asarray(encoded[1::2], dtype=np.int64), n)
    keep = (starts < n) & (ends > starts)
    np.add.at(flat, starts[keep], 1)
    np.add.at(flat, ends[keep], -1)
    mask = (np.cumsum(flat[:n]) > 0).reshape(shape)
    if border:
        mask[0, :] = mask[-1, :] = True
        mask[:, 0] = mask[:, -1] = True
    return mask


def encode_mask(mask: np.ndarray) -> list[int]:
    """The run-length encoding of a boolean mask (inverse of ``decode_mask(..., border=False)``)."""
    flat = np.concatenate([[0], np.asarray(mask, dtype=bool).ravel().astype(np.int8), [0]])
    change = np.flatnonzero(np.diff(flat))
    starts, ends = change[0::2], change[1::2]
    return [int(v) for pair in zip(starts, ends - starts, strict=True) for v in pair]
