"""The ``hf_sequence_classifier`` architecture: a transformers ``*ForSequenceClassification`` model as a
zoo network, which ``hf:ORG/REPO`` checkpoints (:mod:`nlp.upstream`) and their saved folders are built with."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import InputError



class HFSequenceClassifier(nn.Module):
    """A transformers ``*ForSequenceClassification`` model whose ``forward`` returns the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, **inputs) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **inputs, return_dict=True).logits

    def get_classifier(self) -> nn.Module:
        return _head_linear(self.model)[1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer of the classification head with a fresh one."""
        if not num_classes:
            raise InputError("a sequence classifier needs num_classes >= 1; load it with task='sentence-embedding' for embeddings")
        name, old = _head_linear(self.model)
        new = nn.Linear(old.in_features, int(num_classes), bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
        init_std = getattr(self.model.config, "initializer_range", 0.02)
        nn.init.normal_(new.weight, std=init_std)
        if new.bias is not None:
            nn.init.zeros_(new.bias)
        parent_name, _, attr = name.rpartition(".")
        setattr(self.model.get_submodule(parent_name) if parent_name else self.model, attr, new)
        self.model.config.num_labels = int(num_classes)


def _head_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last ``nn.Linear`` of the classification head (``classifier``, ``score``, ``classifier.out_proj``...)."""
    num_labels = model.config.num_labels
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == num_labels
        and any(part in name for part in ("classifier", "score", "logits", "head"))
    ]
    if not candidates:
        raise InputError(f"found no classification head with {num_labels} outputs in {type(model).__name__}")
    return candidates[-1]


# -- architectures (rebuilding saved hf models) ------------------------------------
def hf_sequence_classifier(config: dict[str, Any], num_classes: int | None = None) -> HFSequenceClassifier:
    """The ``hf_sequence_classifier`` architecture: ``AutoModelForSequenceClassification.from_config`` (no network)."""
    from transformers import AutoModelForSequenceClassification

    from zoo.hf import config_from_dict

    config = dict(config)
    config.pop("auto_map", None)  # remote code never runs when a saved model is rebuilt
    cfg = config_from_dict(config)
    if num_classes is not None:
        cfg.num_labels = int(num_classes)
    model = AutoModelForSequenceClassification.from_config(cfg, trust_remote_code=False, dtype=torch.float32)
    return HFSequenceClassifier(model)


def hf_seq2seq(config: dict[str, Any]):
    """The ``hf_seq2seq`` architecture: ``AutoModelForSeq2SeqLM.from_config`` (no network), rebuilt from a saved card."""
    from transformers import AutoModelForSeq2SeqLM

    from zoo.hf import config_from_dict

    config = dict(config)
    config.pop("auto_map", None)  # remote code never runs when a saved model is rebuilt
    return AutoModelForSeq2SeqLM.from_config(config_from_dict(config), trust_remote_code=False, dtype=torch.float32)


# -- the source: loader and lister ---------------------------------------------------
