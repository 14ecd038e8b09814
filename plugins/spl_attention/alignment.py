"""Global token alignment of two prompts (docs/method.md section 4): which source token each target token refines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from spl_sdk.lazy import torch

# Needleman-Wunsch scores of docs/method.md section 4: a gap costs nothing, so a substituted
# token is never "aligned" with the token it replaces: both become gaps.
MATCH, MISMATCH, GAP = 1, -1, 0
# What the traceback takes when several moves give the same score (docs/method.md section 10):
# "diagonal" (ours) pairs tokens first; "gap" is Prompt-to-Prompt's aligner, used by the paper's
# code: a target gap first, then a source gap, a pair last. The two differ only when a token run
# repeats ("a photo of a cat" -> "a photo of a photo of a cat").
Ties = Literal["diagonal", "gap"]


@dataclass(frozen=True)
class TokenAlignment:
    """Per target position: the source position it copies (``mapping``) and its weight (``alpha``, 0 or 1)."""

    mapping: torch.Tensor  # (length,) long
    alpha: torch.Tensor  # (length,) float

    def refine(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``A_t[..., j] = alpha[j] A_s[..., map[j]] + (1 - alpha[j]) A_t[..., j]`` over the last axis."""
        alpha = self.alpha.to(target.device, target.dtype)
        return alpha * source[..., self.mapping.to(source.device)] + (1 - alpha) * target


def needleman_wunsch(source: Sequence[int], target: Sequence[int],
                     ties: Ties = "diagonal") -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of source/target indices aligned by a global alignment, in order."""
    n, m = len(source), len(target)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = i * GAP
    for j in range(1, m + 1):
        score[0][j] = j * GAP
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            pair = MATCH if source[i - 1] == target[j - 1] else MISMATCH
            score[i][j] = max(score[i - 1][j - 1] + pair, score[i - 1][j] + GAP, score[i][j - 1] + GAP)
    order = ("pair", "target-gap", "source-gap") if ties == "diagonal" else ("target-gap", "source-gap", "pair")
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        pair = MATCH if source[i - 1] == target[j - 1] else MISMATCH
        came_from = {"pair": score[i - 1][j - 1] + pair, "target-gap": score[i][j - 1] + GAP,
                     "source-gap": score[i - 1][j] + GAP}
        move = next(k for k in order if came_from[k] == score[i][j])
        if move == "pair":
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move == "target-gap":
            j -= 1  # target token j-1 has no partner
        else:
            i -= 1  # source token i-1 has no partner
    return pairs[::-1]


def align_tokens(source_ids: Sequence[int], target_ids: Sequence[int], length: int,
                 ties: Ties = "diagonal") -> TokenAlignment:
    """Alignment of two unpadded id sequences, extended to ``length`` with padding mapped to itself."""
    mapping = torch.arange(length)
    alpha = torch.ones(length)
    alpha[: min(len(target_ids), length)] = 0.0
    for i, j in needleman_wunsch(source_ids[:length], target_ids[:length], ties):
        mapping[j] = i
        alpha[j] = 1.0
    return TokenAlignment(mapping, alpha)


def identity_alignment(length: int) -> TokenAlignment:
    """Every target position copies the same source position (Prompt-to-Prompt word swap)."""
    return TokenAlignment(torch.arange(length), torch.ones(length))
