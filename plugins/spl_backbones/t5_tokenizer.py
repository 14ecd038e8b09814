"""A T5-layout tokenizer built offline, standing in for T5's SentencePiece model in the tiny models.

No installed package ships T5's ``spiece.model`` (the real one comes with the
weights of SD3 and FLUX), so the tiny random models use a Unigram tokenizer with
T5's layout instead: ids 0/1/2 are ``<pad>``/``</s>``/``<unk>``, then 32,000
pieces, then ``<extra_id_0..99>`` (32,100 tokens, as ``google/t5-v1_1-xxl``).
The pieces are the first whole words and word pieces of CLIP's BPE vocabulary
(open_clip ships it), a word ``w</w>`` becoming SentencePiece's ``▁w``; scores
fall with the merge rank so frequent whole words win. Ids differ from real T5's;
real models always load their own tokenizer from the model folder.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from spl_backbones.tokenizer import BOS, EOS, clip_vocab_and_merges

if TYPE_CHECKING:
    from transformers import T5Tokenizer

SPECIALS = ("<pad>", "</s>", "<unk>")
NUM_PIECES = 32000  # T5's SentencePiece size, specials included
EXTRA_IDS = 100
WORD_START = "\u2581"  # SentencePiece's "▁"


@functools.lru_cache(maxsize=1)
def t5_pieces() -> tuple[tuple[str, float], ...]:
    """(piece, log-probability) pairs in id order: T5's three specials, then CLIP-derived pieces."""
    vocab, _ = clip_vocab_and_merges()
    pieces: dict[str, None] = {}
    for token in vocab:  # id order = merge rank: frequent first
        if token in (BOS, EOS) or not token.isascii():
            continue
        piece = WORD_START + token[:-4] if token.endswith("</w>") else token
        if piece != WORD_START:
            pieces.setdefault(piece)
        if len(pieces) == NUM_PIECES - len(SPECIALS):
            break
    scored = [(p, -math.log(rank + 2.0)) for rank, p in enumerate(pieces)]
    return tuple([(s, 0.0) for s in SPECIALS] + scored)


def build_t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """The stand-in T5 tokenizer (32,100 tokens, ``</s>`` appended, padded with id 0)."""
    from transformers import T5Tokenizer  # imported here: transformers costs seconds to import

    # T5 numbers its sentinels from the top: <extra_id_0> is 32099, <extra_id_99> 32000
    sentinels = [f"<extra_id_{i}>" for i in reversed(range(EXTRA_IDS))]
    return T5Tokenizer(vocab=list(t5_pieces()), extra_ids=0, additional_special_tokens=sentinels,
                       model_max_length=model_max_length)
