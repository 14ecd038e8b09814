"""Find model weights (local folder, Hugging Face cache, Hub) and turn failures into one clear sentence."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from spl_sdk.errors import ModelNotFoundError, SplWarning, UnsafeWeightsError
from spl_sdk.weights import PICKLE_SUFFIXES, pickle_allowed

T = TypeVar("T")

DIFFUSERS_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
PROBE_TIMEOUT_S = 5.0  # used unless HF_HUB_ETAG_TIMEOUT is set


def looks_like_path(model: str) -> bool:
    """True for an existing path or a string that can only be a path (not an ``owner/name`` Hub id)."""
    if os.path.exists(model):
        return True
    return (model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model
            or model.count("/") > 1 or (len(model) > 1 and model[1] == ":"))


def how_to_get(model: str) -> str:
    """The shared tail of every missing-weights message: download elsewhere, copy, point --model at it."""
    folder = model.rstrip("/").split("/")[-1]
    return (f"download it on a machine with network access with `hf download {model} "
            f"--local-dir {folder}` (or copy its Hugging Face cache folder), copy that folder here "
            f"and pass `--model /path/to/{folder}` (model= in Python)")


def check_folder(folder: Path, subfolders: Sequence[str] = DIFFUSERS_SUBFOLDERS,
                 example: str = "SimianLuo/LCM_Dreamshaper_v7") -> Path:
    """The folder itself if it holds every subfolder of a diffusers layout, else ModelNotFoundError."""
    folder = folder.expanduser()
    if not folder.is_dir():
        layout = f" in diffusers layout ({', '.join(s + '/' for s in subfolders)})" if subfolders else ""
        raise ModelNotFoundError(
            f"model folder '{folder}' does not exist; pass an existing folder{layout} or a "
            f"Hugging Face Hub id such as {example}.")
    missing = [s for s in subfolders if not (folder / s).is_dir()]
    if missing:
        raise ModelNotFoundError(
            f"model folder '{folder}' lacks the subfolder(s) {', '.join(missing)}; it must be a "
            f"complete diffusers-layout copy of a model ({', '.join(s + '/' for s in subfolders)}), "
            f"e.g. written by `hf download {example} --local-dir {folder.name}`.")
    return folder


def offline() -> bool:
    """True when HF_HUB_OFFLINE (or its transformers/diffusers aliases) forbids any network access."""
    import huggingface_hub

    if huggingface_hub.is_offline_mode():
        return True
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def hub_reachable() -> bool:
    """One HEAD request to the Hub endpoint with a short timeout and no retries (proxies honored)."""
    import huggingface_hub
    from huggingface_hub import constants

    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT", PROBE_TIMEOUT_S))
    try:
        huggingface_hub.get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # any transport failure (DNS, refused, timeout, proxy) means unreachable
        return False
    return True


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-file "Loading weights" bars (the CLI shows its own); downloads still show."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def is_gated(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it came from says the Hub repository is gated."""
    from huggingface_hub.errors import GatedRepoError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, GatedRepoError) or "gated repo" in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def gated_message(model: str) -> str:
    """The one sentence for a gated repository: accept the license, set a token."""
    return (f"model '{model}' is gated on the Hugging Face Hub: accept its license on "
            f"https://huggingface.co/{model} while logged in, then set HF_TOKEN to an access token "
            f"of that account (or run `hf auth login`) and try again.")


def weights_kwargs(where: Path | None) -> dict[str, Any]:
    """``from_pretrained`` keywords for weights in ``where`` (None: a Hub id): safetensors only by default.

    A local folder holding only pickle weights is refused with one sentence
    (UnsafeWeightsError); when the user allowed pickle files, it loads with a warning.
    """
    pickles = sorted(p.name for p in where.rglob("*") if p.suffix in PICKLE_SUFFIXES) \
        if where is not None and where.is_dir() else []
    safe = where is not None and where.is_dir() and any(where.rglob("*.safetensors"))
    if pickle_allowed():
        if pickles and not safe:
            warnings.warn(SplWarning(
                f"loading pickle weights from '{where}' ({', '.join(pickles[:3])}): pickle files can "
                f"run code when loaded; use this only for files you trust."), stacklevel=2)
        return {}
    if pickles and not safe:
        raise UnsafeWeightsError(
            f"'{where}' holds only pickle weights ({', '.join(pickles[:3])}), which can run code when "
            f"loaded; convert them to safetensors, or pass --allow-pickle (SPL_ALLOW_PICKLE=1) if you "
            f"trust these files.")
    return {"use_safetensors": True}


def _broken(where: object, exc: BaseException) -> ModelNotFoundError:
    """One sentence for a model file that exists but fails to load (truncated, corrupt, hostile)."""
    return ModelNotFoundError(
        f"model files in '{where}' could not be loaded ({type(exc).__name__}: {_first_line(exc)}); "
        f"they are damaged or not in diffusers format: copy the complete folder again (e.g. with "
        f"`hf download ... --local-dir`) and pass it with --model.")


def load_from_hub(loader: Callable[..., T], model: str, subfolder: str | None,
                  hint: str | None = None, gated: bool = False, **kwargs: Any) -> T:
    """``loader(model, subfolder=...)`` from the cache first, then the Hub only if it is reachable.

    Trying ``local_files_only=True`` first makes a cached model load without any
    request and a missing one fail in a fraction of a second when offline,
    instead of after huggingface_hub's retries (about 25 s per file).
    """
    sub = {"subfolder": subfolder} if subfolder else {}
    try:
        return loader(model, local_files_only=True, **sub, **kwargs)
    except (OSError, ValueError):
        pass  # not (completely) cached
    except (MemoryError, ImportError):
        raise
    except Exception as exc:  # a cached file that is damaged: one sentence, not a traceback
        raise _broken(f"the cache of {model}", exc) from None
    what = f"'{model}'" + (f" (its {subfolder}/ part)" if subfolder else "")
    hint = hint or how_to_get(model)
    if offline():
        raise ModelNotFoundError(
            f"model {what} is not in the Hugging Face cache and HF_HUB_OFFLINE forbids downloading "
            f"it; unset HF_HUB_OFFLINE on a machine with network access, or {hint}."
        ) from None
    if not hub_reachable():
        raise ModelNotFoundError(
            f"model {what} is not in the Hugging Face cache and the Hub cannot be reached from "
            f"here; {hint}.") from None
    try:
        return loader(model, **sub, **kwargs)
    except (OSError, ValueError) as exc:
        # a gated repo without an accepted license answers 401/403 ("gated repo" in the message)
        if is_gated(exc) or (gated and any(c in str(exc) for c in ("401", "403"))):
            raise ModelNotFoundError(gated_message(model)) from None
        raise ModelNotFoundError(
            f"model {what} could not be downloaded from the Hugging Face Hub ({_first_line(exc)}); "
            f"check the id (and `hf auth login` for a gated model), or {hint}."
        ) from None
    except (MemoryError, ImportError):
        raise
    except Exception as exc:
        raise _broken(what, exc) from None


def load_from_folder(loader: Callable[..., T], folder: Path, subfolder: str | None,
                     **kwargs: Any) -> T:
    """``loader(folder, subfolder=...)`` without network; unreadable files become ModelNotFoundError."""
    sub = {"subfolder": subfolder} if subfolder else {}
    where = folder / subfolder if subfolder else folder
    try:
        return loader(str(folder), local_files_only=True, **sub, **kwargs)
    except (MemoryError, ImportError):
        raise
    except Exception as exc:  # OSError, ValueError, SafetensorError, UnpicklingError, ...
        raise _broken(where, exc) from None


def load_part(loader: Callable[..., T], model: str | Path, subfolder: str | None,
              hint: str | None = None, gated: bool = False, **kwargs: Any) -> T:
    """Load one component from a local folder (never the network) or a Hub id (cache, then Hub).

    ``hint`` replaces the default "how to get it" part of the missing-weights message.
    """
    if isinstance(model, Path):
        return load_from_folder(loader, model, subfolder, **kwargs)
    return load_from_hub(loader, model, subfolder, hint, gated, **kwargs)


def load_weights(loader: Callable[..., T], model: str | Path, subfolder: str | None,
                 hint: str | None = None, gated: bool = False, **kwargs: Any) -> T:
    """``load_part`` for a part with weights: safetensors only unless pickle is allowed (``weights_kwargs``)."""
    where = (model / subfolder if subfolder else model) if isinstance(model, Path) else None
    return load_part(loader, model, subfolder, hint, gated=gated, **weights_kwargs(where), **kwargs)


def resolve_model(model: str, subfolders: Sequence[str] = DIFFUSERS_SUBFOLDERS,
                  example: str = "SimianLuo/LCM_Dreamshaper_v7") -> str | Path:
    """A checked local folder (``Path``) or the Hub id unchanged (``str``)."""
    if looks_like_path(model):
        return check_folder(Path(model), subfolders, example)
    return model
