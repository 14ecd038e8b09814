"""Image files in and out: safe loading, tensors in [-1, 1], atomic writes with run metadata.

Loading accepts whatever Pillow decodes (PNG, JPEG, WebP and TIFF are tested)
and always returns 8-bit RGB with the EXIF orientation applied. Transparent
images are composited on white (what viewers show), 16-bit images are rescaled
to 8 bits rather than clipped. Any file Pillow refuses, including decompression
bombs over ``PIL.Image.MAX_IMAGE_PIXELS``, raises :class:`ImageError` naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageOps, PngImagePlugin

from spl_sdk.errors import ImageError, OutputExistsError
from spl_sdk.lazy import numpy as np
from spl_sdk.lazy import torch

METADATA_KEY = "spl_sdk"  # PNG text chunk holding the run's JSON metadata
_IMAGE_DESCRIPTION = 0x010E  # EXIF/TIFF tag used for the metadata of non-PNG outputs
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {}, "TIFF": {}}


def _open(path: str | Path, transpose: bool = True) -> Image.Image:
    """Decode the whole file (EXIF-transposed unless told not to) or raise ImageError."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"'{path}' is a folder, not an image file; give the path of an image.")
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"image file '{path}' is empty; give a PNG, JPEG, WebP or TIFF image.")
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return ImageOps.exif_transpose(img) if transpose else img
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"image file '{path}' does not exist; check the path.") from None
    except PermissionError:
        raise ImageError(f"image file '{path}' cannot be read (permission denied).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image '{path}' is too large to open safely ({exc}); "
                         f"downscale it first.") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"'{path}' is not an image Pillow can read; give a PNG, JPEG, WebP "
                         f"or TIFF image.") from None
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError...
        raise ImageError(f"image file '{path}' is damaged or truncated ({exc}); "
                         f"re-export or re-download it.") from None


def _to_8bit(img: Image.Image) -> Image.Image:
    """Rescale 16/32-bit integer and float single-channel images to mode "L" without clipping."""
    a = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        scale = 1.0 if a.size == 0 or a.max() <= 1.0 else max(a.max(), 1.0)
    elif img.mode.startswith("I;16") or (a.size and a.max() > 255):
        scale = 65535.0  # 16-bit data ("I;16" or 16-bit values stored in "I")
    else:
        scale = 255.0
    return Image.fromarray(np.clip(np.rint(a / scale * 255.0), 0, 255).astype(np.uint8), "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited on white."""
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        img = _to_8bit(img)
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB, EXIF orientation applied, alpha composited on white."""
    return _to_rgb(_open(path))


def alpha_of(img: Image.Image) -> Image.Image | None:
    """The image's alpha channel as mode "L", or None when it has none or it is fully opaque."""
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if "A" not in img.getbands():
        return None
    alpha = img.getchannel("A")
    return alpha if alpha.getextrema()[0] < 255 else None


def mask_image(img: Image.Image) -> Image.Image:
    """Mode "L" mask of an image: its alpha when it has a non-opaque one, else its luminance."""
    alpha = alpha_of(img)
    if alpha is not None:
        return alpha
    return img if img.mode == "L" else _to_rgb(img).convert("L")


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """Read a mask (white or opaque = inside) as mode "L", resized to ``size`` = (W, H) when given."""
    mask = mask_image(_open(path))
    if size is not None and mask.size != tuple(size):
        mask = mask.resize(tuple(size), Image.Resampling.BILINEAR)
    return mask


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 in [-1, 1] from a PIL image (converted to RGB)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(a / 127.5 - 1.0).permute(2, 0, 1).unsqueeze(0).contiguous()


def mask_to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, 1, H, W) float32 in [0, 1] from a mask image (converted to "L")."""
    a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(a)[None, None].contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """RGB PIL image from a (1, 3, H, W) or (3, H, W) tensor in [-1, 1] (clamped, rounded)."""
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    a = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"output '{path}' must end in .png, .jpg, .webp or .tiff "
                         f"(the suffix picks the format).")
    return fmt


def check_output(path: str | Path, force: bool = False) -> Path:
    """Validate an output path before any work: a known suffix, a writable folder, no clobbering."""
    path = Path(path)
    _format_of(path)
    return check_writable(path, force)


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Check before any work that ``path`` can be created: not a folder, not taken, folder writable.

    The nearest existing folder is probed by creating (and removing) a hidden
    file in it, which also catches read-only file systems and root-owned folders.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"output '{path}' is a folder; give a file name such as {path / 'out.png'}.")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputExistsError(f"output '{path}' already exists; use --force (force=True) "
                                f"to overwrite it.")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ImageError(f"cannot write output '{path}': '{folder}' is a file, not a folder; "
                         f"choose another path.")
    probe = folder / f".spl-probe-{secrets.token_hex(6)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ImageError(f"cannot write output '{path}': folder '{folder}' is not writable "
                         f"({exc.strerror}); choose another folder.") from None
    return path


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when two paths name one file: equal once resolved (symlinks, '..') or hard links of one inode."""
    a, b = Path(a), Path(b)
    if os.path.normcase(a.resolve()) == os.path.normcase(b.resolve()):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def check_distinct(outputs: dict[str, str | Path | None]) -> None:
    """Refuse, before any work, two outputs of one command that would be the same file.

    ``outputs`` maps a label the user recognizes (e.g. '-o', '--save-mask') to a path.
    """
    given = [(label, Path(p)) for label, p in outputs.items() if p is not None]
    for i, (label_a, a) in enumerate(given):
        for label_b, b in given[i + 1:]:
            if same_file(a, b):
                raise ImageError(f"{label_a} '{a}' and {label_b} '{b}' are the same file, so one "
                                 f"result would overwrite the other; give them different names.")


def _save_options(fmt: str, metadata: dict | None) -> dict[str, Any]:
    """Pillow save keywords; metadata goes in a PNG iTXt chunk or the EXIF ImageDescription."""
    options = dict(_SAVE_OPTIONS[fmt])
    if metadata is not None:
        text = json.dumps(metadata, default=str, sort_keys=True)
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt(METADATA_KEY, text)
            options["pnginfo"] = info
        else:
            exif = Image.Exif()
            exif[_IMAGE_DESCRIPTION] = text  # ASCII: json.dumps escapes non-ASCII characters
            options["exif"] = exif
    return options


def save_image(img: Image.Image, path: str | Path, *, metadata: dict | None = None,
               force: bool = False) -> Path:
    """Write ``img`` atomically (temp file, fsync, publish); the format follows the suffix.

    ``metadata`` (the run configuration) is stored as JSON: in the PNG text chunk
    "spl_sdk", or in the EXIF ImageDescription tag of JPEG, WebP and TIFF outputs
    (EXIF limits those to about 64 KB). An existing file is only replaced when
    ``force`` is true, even when another process creates it while we write;
    missing folders are created. On any error, Ctrl-C or SIGTERM the temp file is
    removed and an existing output is left untouched.
    """
    path = check_output(path, force)
    fmt = _format_of(path)
    options = _save_options(fmt, metadata)
    with atomic_write(path, force=force) as f:
        img.save(f, format=fmt, **options)
    return path


@contextlib.contextmanager
def atomic_write(path: str | Path, *, force: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary temp file next to ``path``; publish it as ``path`` only if the block succeeds.

    The file is flushed and fsynced, then published with :func:`publish`, so
    ``path`` either does not exist or holds the whole content. Any exception,
    KeyboardInterrupt included, removes the temp file. Reusable for any output
    (images, JSON, logs rewritten whole).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL with mode 0o666 gives a fresh file with the usual umask permissions (mkstemp: 0o600)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.spl-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ImageError(f"cannot write output '{path}' ({exc.strerror}); choose another folder.") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path, force=force)
    except BaseException as exc:  # KeyboardInterrupt and SIGTERM included: no half-written file
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ImageError(f"cannot write output '{path}' ({exc}); check free space and "
                             f"permissions.") from None
        raise


def publish(tmp: str | Path, path: str | Path, *, force: bool = False) -> Path:
    """Give the finished file ``tmp`` its final name ``path`` atomically, then remove ``tmp``'s name.

    Without ``force`` the final name is created with a hard link, which fails
    if the name exists, so of two processes racing for one name the second gets
    OutputExistsError and the first one's file stays. Where hard links are not
    supported the name is reserved with O_EXCL first. With ``force``, os.replace.
    """
    tmp, path = Path(tmp), Path(path)
    if force:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path, follow_symlinks=False)
        except FileExistsError:
            raise OutputExistsError(f"output '{path}' appeared while writing (another run?); it "
                                    f"was left untouched; use --force to overwrite it.") from None
        except OSError:  # no hard links here (FAT, some network file systems): reserve the name
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise OutputExistsError(f"output '{path}' appeared while writing (another run?); "
                                        f"it was left untouched; use --force to overwrite it.") from None
            os.replace(tmp, path)
        else:
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_metadata(path: str | Path) -> dict | None:
    """The run metadata saved by :func:`save_image`, or None when the file has none."""
    img = _open(path, transpose=False)  # a transposed copy may drop TIFF tags
    text = img.info.get(METADATA_KEY)
    if text is None:
        text = img.getexif().get(_IMAGE_DESCRIPTION)
    if not text:
        return None
    from spl_sdk.parsing import ParseError, loads

    try:
        data = loads(str(text), "json", f"the metadata of '{path}'")
    except ParseError:  # not ours, damaged, or nested too deep: no usable metadata
        return None
    return data if isinstance(data, dict) else None
