"""Heavy modules imported on first use, so ``spl --help`` and ``spl plugins`` never load torch.

Rule for code on the plug-in discovery path (``spl_sdk`` and every plug-in package's modules):
write ``from spl_sdk.lazy import torch`` instead of ``import torch``,
``from spl_sdk.lazy import functional as F`` instead of ``import torch.nn.functional as F`` and
``from spl_sdk.lazy import numpy as np`` instead of ``import numpy as np``,
and evaluate nothing of torch at import time: no module constants built from torch, no
``@torch.no_grad()`` decorator (use :func:`no_grad`), and type aliases naming torch types as
strings (``Injector: TypeAlias = "Callable[[torch.Tensor], torch.Tensor]"``). Type checkers
see the real modules.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class LazyModule(types.ModuleType):
    """Stands for a module and imports it on the first attribute access; sys.modules is untouched until then."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def no_grad(function: T) -> T:
    """Decorator: run ``function`` under ``torch.no_grad()`` without importing torch at definition time."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


if TYPE_CHECKING:
    import numpy
    import torch
    import torch.nn.functional as functional
else:
    torch = LazyModule("torch")
    functional = LazyModule("torch.nn.functional")
    numpy = LazyModule("numpy")

__all__ = ["LazyModule", "functional", "no_grad", "numpy", "torch"]
