"""Base class of harmonizers (docs/method.md section 6)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from spl_sdk.components.base import Component, ComponentOptions

if TYPE_CHECKING:
    from PIL import Image

    from spl_sdk.harmonize import Harmonization

class Harmonizer(Component):
    """Writes source/target prompts for a composite image and its foreground mask."""

    kind: ClassVar[str] = "harmonizer"
    kind_label: ClassVar[str] = "harmonizer"
    register_hook: ClassVar[str] = "spl_register_harmonizers"

    def __init__(self, options: ComponentOptions | None = None, **fields: Any) -> None:
        # keyword fields (Harmonizer(model=...)) are the older spelling of options=
        self.options = self.make_options(options if not fields else
                                         {**dict(options or {}), **fields})

    @abstractmethod
    def describe(self, composite: Image.Image, mask: Image.Image,
                 object_word: str | None = None) -> Harmonization:
        """Describe the foreground object and pick style words for both regions."""
