"""Deprecated spelling of :mod:`spl_sdk.optimizer` (0.1's name); removed in 0.3.

0.2.0 moved the code to one spelling family (optimize, color, harmonizer): this module
keeps library callers of 0.1 working, with a DeprecationWarning naming the new import.
"""

import warnings

from spl_sdk.optimizer import OptimizeResult, optimize_image

warnings.warn("spl_sdk.optimiser is deprecated; import optimize_image and OptimizeResult from "
              "spl_sdk.optimizer (removed in 0.3).", DeprecationWarning, stacklevel=2)

optimise_image = optimize_image
OptimiseResult = OptimizeResult

__all__ = ["OptimiseResult", "OptimizeResult", "optimise_image", "optimize_image"]
