"""Errors a user can cause: each message is one sentence naming the input and the fix."""

from __future__ import annotations


class SplError(Exception):
    """Base class for user-facing errors; the CLI prints str(err) and exits non-zero."""


class ImageError(SplError):
    """An image file that cannot be read, or has the wrong size or content."""


class ConfigError(SplError):
    """A configuration value outside its allowed range, or an unreadable config file."""


class PluginError(SplError):
    """A plug-in that failed to load, a misspelt hook, or a name registered twice."""


class UnknownComponentError(PluginError):
    """A component name that no installed plug-in registers."""


class ModelNotFoundError(SplError):
    """Model weights that are neither cached, nor reachable, nor in a local folder."""


class PromptError(SplError):
    """A prompt that is too long, or a mask word that is not in its prompt."""


class HarmonizerError(SplError):
    """A harmonizer that could not produce valid prompts (no key, no valid answer)."""


class OutputExistsError(SplError):
    """An output path that already exists and may not be overwritten."""


class Canceled(SplError):
    """A run stopped on request from a progress callback."""


Cancelled = Canceled  # 0.1's spelling, for code that catches it; removed in 0.3 (docs/upgrading.md)


class IncompatibleError(SplError):
    """Components that cannot work together, e.g. an edit method the backbone cannot serve."""


class SplWarning(UserWarning):
    """Base class of warnings meant for the user; the CLI prints them as one 'Warning:' line."""


class EmptyMaskWarning(SplWarning):
    """A mask that selects no pixel, so the losses restricted to it do nothing."""


class UnsafeWeightsError(ModelNotFoundError):
    """Model weights stored only as pickle files, which can run code when loaded."""


class AlignmentError(ImageError):
    """An edit that cannot be registered onto its source (unrelated images, too little overlap)."""
