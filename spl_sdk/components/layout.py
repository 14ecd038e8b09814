"""Which rows of a denoiser batch belong to which branch of an edit method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Half = Literal["uncond", "cond"]


@dataclass(frozen=True)
class BatchLayout:
    """The row order of a method's denoiser batch, set by the method and read by controllers.

    With ``guided`` the batch is ``[uncond of each branch..., cond of each branch...]``
    (classifier-free guidance); without it, one row per branch. A batch may hold
    ``k`` images per row (``batch = size * k``), each branch's images contiguous.
    """

    branches: tuple[str, ...]
    guided: bool = True

    @property
    def size(self) -> int:
        """Rows per image: one per branch, twice that with guidance."""
        return len(self.branches) * (2 if self.guided else 1)

    def branch(self, name: str) -> int:
        """Position of branch ``name`` within one half."""
        try:
            return self.branches.index(name)
        except ValueError:
            raise KeyError(f"branch '{name}' is not in the layout {self.branches}") from None

    def rows(self, branch: str, half: Half = "cond") -> int:
        """Row index of ``branch`` in the given half (for one image per row)."""
        offset = len(self.branches) if (self.guided and half == "cond") else 0
        if half == "uncond" and not self.guided:
            raise KeyError("an unguided layout has no unconditional rows")
        return offset + self.branch(name=branch)

    def fits(self, batch: int) -> bool:
        """True when a batch of ``batch`` rows has this layout (k images per row)."""
        return batch > 0 and batch % self.size == 0
