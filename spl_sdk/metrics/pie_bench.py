"""PIE-Bench's mapping reader moved to :mod:`spl_sdk.pie_bench` (jobs and metrics both read it)."""

from spl_sdk.pie_bench import *  # noqa: F403 - the old import path keeps working
from spl_sdk.pie_bench import __all__  # noqa: F401
