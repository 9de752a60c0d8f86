"""A small Transformer encoder-decoder as a transformers ``MarianMTModel``.

The network *is* a ``MarianMTModel``: its state dict has Marian's key names, so a
trained zoo model loads with ``transformers`` directly:
``MarianMTModel(marian_config(**card.arch_args))`` then ``load_state_dict`` of its
``weights.safetensors``, or ``save_pretrained`` of ``model.net``; it exports like any Marian. ``forward`` returns transformers' output (``.logits``);
``generate`` is transformers' own (greedy or beam search).
"""
from __future__ import annotations

from typing import Any

from nlp.models.marian_sizes import SMALL_CONFIG


def marian_config(config: dict[str, Any], vocab_size: int, pad_token_id: int = 0, eos_token_id: int = 1):
    """A ``MarianConfig`` from the card's sizes and the tokenizer's special tokens (decoding starts at pad, as Marian's)."""
    from transformers import MarianConfig

    return MarianConfig(**{**config, "vocab_size": vocab_size, "decoder_vocab_size": vocab_size,
                           "pad_token_id": pad_token_id, "eos_token_id": eos_token_id,
                           "decoder_start_token_id": pad_token_id, "forced_eos_token_id": eos_token_id})


def marian_translator(config: dict[str, Any] | None = None, *, vocab_size: int, pad_token_id: int = 0,
                      eos_token_id: int = 1):
    """The ``marian_translator`` architecture: a fresh ``MarianMTModel`` (no network) of the given sizes."""
    import torch
    from transformers import MarianMTModel

    model = MarianMTModel(marian_config(dict(config or SMALL_CONFIG), vocab_size, pad_token_id, eos_token_id))
    return model.to(torch.float32)
