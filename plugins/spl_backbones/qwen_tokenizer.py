"""A Qwen2-layout tokenizer and processor built offline, standing in for Qwen2.5-VL's in the tiny twin.

No installed package ships Qwen2's BPE files (``vocab.json``/``merges.txt``, 151,643
merged tokens; the real ones come with the weights of Qwen-Image-Edit), so
``tiny-random-qwen-edit`` uses a byte-level BPE tokenizer with Qwen2's byte alphabet and
no merges instead: every UTF-8 byte is one token (ids 0-255, GPT-2's byte-to-symbol
table), followed by the chat and vision special tokens Qwen-Image-Edit's prompt
template uses (``<|im_start|>``, ``<|vision_start|>``, ``<|image_pad|>``, ...). A small chat template gives Qwen3's layout of one user turn
(FLUX.2 [klein] reads its prompt through it). The
processor is transformers' own ``Qwen2VLProcessor`` with the stock Qwen2-VL image
processor (14 px patches, 2x2 merge). Ids differ from the real model's; real models
always load their own tokenizer and processor from the model folder.
"""

from __future__ import annotations

from typing import Any

# The special tokens of Qwen2-VL and Qwen3 that the prompt templates and the processor use, in id order
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<think>", "</think>")
VOCAB_SIZE = 256 + len(SPECIALS)
# Qwen3's chat layout for one user turn and the assistant's answer with thinking switched off
# (what FLUX.2's pipeline asks for with enable_thinking=False)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
MAX_LENGTH = 1024  # QwenImageEditPlusPipeline.tokenizer_max_length


def byte_symbols() -> list[str]:
    """The printable symbol of each byte 0-255 in byte-level BPE (GPT-2's table: printable bytes keep
    their own character, the others are numbered from U+0100 on)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)}
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def special_ids() -> dict[str, int]:
    """Id of each special token in the stand-in vocabulary (after the 256 bytes)."""
    return {token: 256 + i for i, token in enumerate(SPECIALS)}


def build_qwen_tokenizer() -> Any:
    """The stand-in Qwen2 tokenizer: 256 byte tokens plus the special tokens (266 ids), with a chat template."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())} | special_ids()
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token="<|endoftext|>", eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", model_max_length=MAX_LENGTH)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIALS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_qwen_processor(tokenizer: Any | None = None) -> Any:
    """transformers' Qwen2VLProcessor around the stand-in tokenizer and the stock Qwen2-VL image processor."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer or build_qwen_tokenizer(),
                            video_processor=Qwen2VLVideoProcessor())
