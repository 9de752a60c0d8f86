"""Sentence encoders: a transformers encoder, mean pooling, L2 normalisation, and an optional linear head.

This is the sentence-transformers recipe (``Transformer → Pooling(mean) → Normalize``)
as one ``nn.Module``, so the zoo's loader, Trainer and saved models treat it like any
other network. With ``num_classes`` it grows a linear head on the normalised
embedding: a text classifier whose features are exactly what the encoder returns.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_PREFIX = "encoder."
HEAD_PREFIX = "head."


class TextEncoder(nn.Module):
    """``encoder(**inputs).last_hidden_state`` → masked mean → (L2 normalise) → (linear head).

    Without a head ``forward`` returns ``[batch, hidden]`` embeddings; with one, logits.
    A state dict of the bare transformers model (keys without ``encoder.``) loads too,
    as the published checkpoints are saved that way.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        num_classes: int | None = None,
        head_dropout: float = 0.1,
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            from zoo.errors import InputError

            raise InputError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.pooling, self.normalize = pooling, normalize
        self.head_dropout = head_dropout
        self.dim = int(encoder.config.hidden_size)
        self.head: nn.Linear | None = None
        self.dropout = nn.Dropout(head_dropout)
        self.encoder_frozen = False
        # Pooling ignores BERT's pooler: keep its weights (the checkpoint has them) but never train them,
        # so optimizers skip them and DDP does not wait for their gradients.
        pooler = getattr(encoder, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)
        if num_classes:
            self.reset_classifier(num_classes)
        self._register_load_state_dict_pre_hook(self._accept_bare_encoder_keys)

    # -- forward --------------------------------------------------------------------
    def embed(self, input_ids, attention_mask=None, **inputs) -> torch.Tensor:
        """Pooled (and normalised) sentence embeddings."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    def forward(self, input_ids, attention_mask=None, **inputs) -> torch.Tensor:
        embeddings = self.embed(input_ids, attention_mask, **inputs)
        if self.head is None:
            return embeddings
        return self.head(self.dropout(embeddings))

    # -- head -------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module | None:
        return self.head

    def reset_classifier(self, num_classes: int | None) -> None:
        """A fresh linear head with ``num_classes`` outputs (none for 0/None: the encoder then embeds)."""
        if not num_classes:
            self.head = None
            return
        ref = next(self.encoder.parameters())
        self.head = nn.Linear(self.dim, int(num_classes)).to(device=ref.device, dtype=ref.dtype)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Train only the head: the encoder gets no gradients and stays in eval mode (no dropout)."""
        self.encoder_frozen = frozen
        for name, param in self.encoder.named_parameters():
            param.requires_grad = not frozen and not name.startswith("pooler.")
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    # -- loading ----------------------------------------------------------------------
    def _accept_bare_encoder_keys(self, state_dict, prefix, *args) -> None:
        """Rename ``embeddings.…`` to ``encoder.embeddings.…``; drop buffers the encoder does not persist."""
        own = set(self.state_dict())
        foreign = [k for k in state_dict if k.startswith(prefix) and k[len(prefix):] not in own]
        if not foreign:
            return
        buffers = {name for name, _ in self.encoder.named_buffers()}
        for key in foreign:
            name = key[len(prefix):]
            if ENCODER_PREFIX + name in own:
                state_dict[prefix + ENCODER_PREFIX + name] = state_dict.pop(key)
            elif name in buffers:  # e.g. embeddings.position_ids, saved by older transformers
                state_dict.pop(key)

    def extra_repr(self) -> str:
        head = f", head={self.head.out_features}" if self.head is not None else ""
        return f"pooling={self.pooling!r}, normalize={self.normalize}, dim={self.dim}{head}"


def text_encoder(
    config: dict[str, Any],
    pooling: str = "mean",
    normalize: bool = True,
    num_classes: int | None = None,
    head_dropout: float = 0.1,
) -> TextEncoder:
    """The ``text_encoder`` architecture: ``AutoModel.from_config(config)`` (no network) wrapped in :class:`TextEncoder`."""
    from transformers import AutoModel

    from zoo.hf import config_from_dict

    config = {k: v for k, v in config.items() if k != "auto_map"}  # remote code never runs on a rebuild
    encoder = AutoModel.from_config(config_from_dict(config), trust_remote_code=False, dtype=torch.float32)
    return TextEncoder(encoder, pooling=pooling, normalize=normalize, num_classes=num_classes, head_dropout=head_dropout)
