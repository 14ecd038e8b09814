"""The CLIP tokenizer of Stable Diffusion 1.x, built offline from the BPE merges open_clip ships."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import CLIPTokenizer


MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
# CLIP's vocabulary is 256 byte symbols + the same with "</w>" + one entry per merge
# + 2 specials = 49,408; so only the first 49,408 - 512 - 2 merge lines are used.
VOCAB_SIZE = 49408
NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 77


def merges_path() -> Path:
    """Path of open_clip's merges file, found without importing open_clip (it pulls in torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip_torch is not installed; it ships the CLIP BPE merges "
                          "(pip install open_clip_torch)")
    return Path(next(iter(spec.submodule_search_locations))) / MERGES_FILE


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2/CLIP order)."""
    # Printable Latin-1 bytes map to themselves; the other 68 bytes map to 256, 257, ... in order.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    extra = (b for b in range(256) if b not in printable)
    order = printable + list(extra)
    code = {b: b for b in printable}
    code.update({b: 256 + i for i, b in enumerate(order[len(printable):])})
    return [chr(code[b]) for b in order]


@functools.lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's token -> id vocabulary and its ranked merges (first line of the file is a header)."""
    lines = gzip.open(merges_path(), "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + NUM_MERGES]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges  # type: ignore[return-value]


def build_clip_tokenizer(pad_token: str = EOS) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` with SD 1.x ids: start 49406, end 49407, padded with the end token.

    SDXL's second tokenizer pads with ``"!"`` (id 0) instead: pass ``pad_token="!"``.
    """
    from transformers import CLIPTokenizer  # imported here: transformers costs seconds to import

    vocab, merges = clip_vocab_and_merges()
    # transformers 5 ignores vocab_file=/merges_file=; pass the tables themselves.
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), bos_token=BOS, eos_token=EOS,
                         unk_token=EOS, pad_token=pad_token, model_max_length=MODEL_MAX_LENGTH)
