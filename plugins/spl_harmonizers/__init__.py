"""Built-in harmonizers (docs/method.md section 6): ``openai`` (vision model) and ``offline`` (statistics)."""

from __future__ import annotations

from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register


@hookimpl
def spl_register_harmonizers(register: Register) -> None:
    """Register the OpenAI and the offline harmonizer."""
    from spl_harmonizers.offline import OfflineHarmonizer
    from spl_harmonizers.openai_harmonizer import OpenAIHarmonizer

    register(OpenAIHarmonizer)
    register(OfflineHarmonizer)
