"""Image I/O: formats and modes in, clear errors on bad files, atomic writes with metadata."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spl_sdk import imageio
from spl_sdk.errors import ImageError, OutputExistsError


def _gradient(w: int = 24, h: int = 16) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    a = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                        np.full((h, w, 1), 60, np.float32)], axis=2)
    return Image.fromarray(a.astype(np.uint8), "RGB")


# ------------------------------------------------------------------ formats and modes
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_formats_load_as_rgb(tmp_path: Path, suffix: str) -> None:
    src = _gradient()
    path = tmp_path / f"img{suffix}"
    src.save(path)
    img = imageio.load_image(path)
    assert img.mode == "RGB" and img.size == (24, 16)
    diff = np.abs(np.asarray(img, np.int16) - np.asarray(src, np.int16))
    assert diff.mean() < 6  # lossy formats are close, PNG/TIFF exact
    if suffix in (".png", ".tiff"):
        assert diff.max() == 0


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    a = np.zeros((2, 3, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 0)      # fully transparent red -> white
    a[0, 1] = (0, 0, 255, 255)    # opaque blue stays blue
    a[0, 2] = (0, 0, 0, 128)      # half-transparent black -> mid gray
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(imageio.load_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (0, 0, 255)
    assert all(abs(int(v) - 127) <= 1 for v in out[0, 2])


def test_grayscale_and_grayscale_alpha(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 100, 255]], np.uint8), "L").save(tmp_path / "g.png")
    out = np.asarray(imageio.load_image(tmp_path / "g.png"))
    assert out.shape == (1, 3, 3) and out[0, 1].tolist() == [100, 100, 100]
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    out = np.asarray(imageio.load_image(tmp_path / "la.png"))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [50, 50, 50]


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    assert np.asarray(imageio.load_image(tmp_path / "p.png")).tolist() == [[[255, 0, 0], [0, 255, 0]]]
    pal.save(tmp_path / "pt.png", transparency=0)  # index 0 (red) transparent -> white
    assert np.asarray(imageio.load_image(tmp_path / "pt.png")).tolist() == [[[255, 255, 255], [0, 255, 0]]]


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_is_rescaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    a = np.array([[0, 1000, 32896, 65535]], np.uint16)
    img16 = Image.fromarray(a)
    assert img16.mode == "I;16"
    img16.save(tmp_path / f"d{suffix}")
    out = np.asarray(imageio.load_image(tmp_path / f"d{suffix}"))[0, :, 0]
    assert out.tolist() == [0, 4, 128, 255]  # value / 257, clipping would give 255 for 1000


def test_32bit_int_image_with_16bit_values(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 65535]], np.int32), "I").save(tmp_path / "i.tiff")
    assert np.asarray(imageio.load_image(tmp_path / "i.tiff"))[0, :, 0].tolist() == [0, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # stored: left half red, right half blue
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = imageio.load_image(tmp_path / "r.jpg")
    assert img.size == (20, 40)  # portrait after rotation
    top, bottom = np.asarray(img)[5, 10], np.asarray(img)[35, 10]
    assert top[0] > 200 and top[2] < 60  # red on top (left edge turned clockwise)
    assert bottom[2] > 200 and bottom[0] < 60


# ------------------------------------------------------------------ refusals
def _ihdr_png(width: int, height: int) -> bytes:
    """A PNG header claiming a huge size, with one tiny IDAT: a decompression-bomb signature."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {"missing": tmp_path / "nope.png", "folder": tmp_path}
    (files := files | {"empty": tmp_path / "empty.png"})["empty"].write_bytes(b"")
    files["text"] = tmp_path / "notes.png"
    files["text"].write_text("this is not an image\n")
    buf = tmp_path / "whole.png"
    _gradient(200, 150).save(buf)
    files["truncated_png"] = tmp_path / "cut.png"
    files["truncated_png"].write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])
    _gradient(200, 150).save(tmp_path / "whole.jpg", quality=90)
    files["truncated_jpg"] = tmp_path / "cut.jpg"
    files["truncated_jpg"].write_bytes((tmp_path / "whole.jpg").read_bytes()[:600])
    files["bomb_header"] = tmp_path / "bomb.png"
    files["bomb_header"].write_bytes(_ihdr_png(100_000, 100_000))
    return files


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "text", "truncated_png",
                                  "truncated_jpg", "bomb_header"])
def test_bad_files_raise_image_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        imageio.load_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("limit", [100, 300])  # 384 pixels: over twice the limit (error) / over it (warning)
def test_decompression_bomb_limit_is_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              limit: int) -> None:
    _gradient(24, 16).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError, match="too large"):
        imageio.load_image(tmp_path / "big.png")


# ------------------------------------------------------------------ masks and tensors
def test_load_mask_is_l_and_resized(tmp_path: Path) -> None:
    Image.new("RGB", (10, 5), (255, 255, 255)).save(tmp_path / "m.png")
    mask = imageio.load_mask(tmp_path / "m.png", size=(40, 20))
    assert mask.mode == "L" and mask.size == (40, 20)
    t = imageio.mask_to_tensor(mask)
    assert t.shape == (1, 1, 20, 40) and t.dtype == torch.float32 and float(t.min()) == 1.0


def test_tensor_round_trip_is_exact() -> None:
    img = _gradient()
    t = imageio.pil_to_tensor(img)
    assert t.shape == (1, 3, 16, 24) and t.dtype == torch.float32
    assert float(t.min()) >= -1 and float(t.max()) <= 1
    assert np.array_equal(np.asarray(imageio.tensor_to_pil(t)), np.asarray(img))
    assert imageio.tensor_to_pil(t[0] * 5).getpixel((23, 15))[0] == 255  # clamped


# ------------------------------------------------------------------ writing
def test_png_metadata_round_trip(tmp_path: Path) -> None:
    meta = {"config": {"structure_loss": "spl", "structure_weight": 10000.0}, "note": "ünïcode"}
    out = imageio.save_image(_gradient(), tmp_path / "out.png", metadata=meta)
    assert imageio.read_metadata(out) == meta
    assert Image.open(out).text["spl_sdk"]  # a real PNG text chunk other tools can read
    _gradient().save(tmp_path / "plain.png")
    assert imageio.read_metadata(tmp_path / "plain.png") is None


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".tiff"])
def test_other_formats_write_and_keep_metadata_in_exif(tmp_path: Path, suffix: str) -> None:
    out = imageio.save_image(_gradient(), tmp_path / f"out{suffix}", metadata={"seed": 3})
    assert Image.open(out).format == imageio.FORMATS[suffix]
    assert imageio.read_metadata(out) == {"seed": 3}


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    imageio.save_image(_gradient(), out)
    with pytest.raises(OutputExistsError) as info:
        imageio.save_image(Image.new("RGB", (4, 4)), out)
    assert str(out) in str(info.value) and "--force" in str(info.value)
    assert Image.open(out).size == (24, 16)  # untouched
    imageio.save_image(Image.new("RGB", (4, 4)), out, force=True)
    assert Image.open(out).size == (4, 4)


def test_unknown_suffix_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"\.bmp"):
        imageio.save_image(_gradient(), tmp_path / "out.bmp")
    out = imageio.save_image(_gradient(), tmp_path / "new" / "dir" / "out.png")
    assert out.exists()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          exc: type[BaseException]) -> None:
    out = tmp_path / "out.png"
    imageio.save_image(Image.new("RGB", (4, 4), (9, 9, 9)), out)
    before = out.read_bytes()

    def crash(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG half a file")  # type: ignore[attr-defined]
        raise exc("disk on fire")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(KeyboardInterrupt if exc is KeyboardInterrupt else ImageError):
        imageio.save_image(_gradient(), out, force=True)
    with pytest.raises(KeyboardInterrupt if exc is KeyboardInterrupt else ImageError):
        imageio.save_image(_gradient(), tmp_path / "fresh.png")
    assert out.read_bytes() == before  # the old output survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files, no fresh.png


def test_write_is_fsynced_then_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "link", lambda a, b, **kw: (calls.append("link"), real_link(a, b, **kw))[1])
    imageio.save_image(_gradient(), tmp_path / "out.png")
    assert calls[:2] == ["fsync", "link"]  # never-overwrite: the final name is created by a hard link
    imageio.save_image(_gradient(), tmp_path / "out.png", force=True)
    assert calls[-3:-1] == ["fsync", "replace"]  # --force: renamed over the old file
    assert Image.open(tmp_path / "out.png").size == (24, 16)
    assert (os.stat(tmp_path / "out.png").st_mode & 0o777) == (0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_mask_with_transparency_uses_its_alpha_channel(tmp_path):
    from spl_sdk.imageio import load_mask, mask_image

    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (0, 0, 10, 20))  # opaque black = inside, although it is dark
    path = tmp_path / "cutout.png"
    rgba.save(path)
    mask = load_mask(path, size=(80, 40))
    assert mask.mode == "L" and mask.size == (80, 40)
    assert mask.getpixel((5, 20)) == 255 and mask.getpixel((70, 20)) == 0
    opaque = Image.new("RGBA", (4, 4), (255, 255, 255, 255))
    assert mask_image(opaque).getpixel((0, 0)) == 255  # fully opaque alpha: luminance decides
