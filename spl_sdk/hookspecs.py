"""Hook specifications: the seven component kinds a plug-in can add to spl-sdk.

Every hook receives a ``register`` callback and calls it once per component class::

    from spl_sdk import hookimpl

    @hookimpl
    def spl_register_loss_terms(register):
        register(MyLoss)

The class must subclass the matching base class in :mod:`spl_sdk.components`
and set a unique ``name``; the first line of its docstring is shown by
``spl plugins`` and in the app. See ``docs/plugins.md`` for a worked example
of each hook.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "spl_sdk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type], None]


@hookspec
def spl_register_backbones(register: Register) -> None:
    """Register :class:`~spl_sdk.components.Backbone` classes (text encoder, UNet, VAE, scheduler).

    Called once per plug-in manager, the first time any component is looked up.
    A backbone hides its model family from the edit method: it encodes prompts
    into a Conditioning, predicts noise or velocity for a batch, gives the
    family's timesteps, encodes and decodes images, exposes the denoiser's
    attention processors and declares its capabilities.
    """


@hookspec
def spl_register_attention_controllers(register: Register) -> None:
    """Register :class:`~spl_sdk.components.AttentionController` classes.

    A controller replaces the UNet attention processors during an edit to keep
    the source's layout (docs/method.md section 4) and stores cross-attention maps.
    """


@hookspec
def spl_register_loss_terms(register: Register) -> None:
    """Register :class:`~spl_sdk.components.LossTerm` classes.

    A loss term compares the source and the edited image (both in [-1, 1]) and
    returns ``weight * value``; it is used by loss injection, post-processing
    and ``spl refine``.
    """


@hookspec
def spl_register_mask_extractors(register: Register) -> None:
    """Register :class:`~spl_sdk.components.MaskExtractor` classes.

    A mask extractor turns attention maps, a first-pass result or a user file
    into a soft mask in [0, 1] at the image's own size (docs/method.md section 5).
    """


@hookspec
def spl_register_post_processors(register: Register) -> None:
    """Register :class:`~spl_sdk.components.PostProcessor` classes.

    A post-processor runs once on the decoded result at the source's full
    resolution, e.g. to repair detail the VAE decoder lost.
    """


@hookspec
def spl_register_harmonizers(register: Register) -> None:
    """Register :class:`~spl_sdk.components.Harmonizer` classes.

    A harmonizer writes source and target prompts for a composite image and its
    foreground mask (docs/method.md section 6).
    """


@hookspec
def spl_register_edit_methods(register: Register) -> None:
    """Register :class:`~spl_sdk.components.EditMethod` classes.

    An edit method turns the source latent and the two prompts into the edited
    clean latent with the backbone's denoiser (InfEdit's virtual inversion is
    the built-in ``infedit``); it owns its batch layout, drives the attention
    controller and calls the editor's injection and step callbacks.
    """
