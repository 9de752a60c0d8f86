"""A Marian translator as two ONNX graphs that :mod:`zoo.runtime` runs in a numpy greedy loop, without torch.

* ``model.onnx``, the encoder: ``input_ids``, ``attention_mask`` [B, S] → ``cross_keys``, ``cross_values``
  [L, B, H, S, D], every decoder layer's cross-attention keys and values, computed once per batch.
* ``decoder.onnx``, one decoding step with past keys and values: ``input_ids`` [B, 1] (the last token),
  ``step`` [1] (its position), ``attention_mask`` [B, S], ``self_keys``, ``self_values`` [L, B, H, T, D] (the
  tokens before it; T = 0 at the first step), ``cross_keys``, ``cross_values`` → ``logits`` [B, V] and the
  self-attention keys and values grown to T + 1.

The step is written out here over the ``MarianMTModel``'s own modules and weights (post-norm layers, as
Marian's), so its graph holds no cache objects and no branch on the inputs; the greedy outputs of the
exported pair are checked token for token against transformers' ``generate`` at export.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

ENCODER_FILE, DECODER_FILE = "model.onnx", "decoder.onnx"
ENCODER_INPUTS, ENCODER_OUTPUTS = ["input_ids", "attention_mask"], ["cross_keys", "cross_values"]
DECODER_INPUTS = ["input_ids", "step", "attention_mask", "self_keys", "self_values", "cross_keys", "cross_values"]
DECODER_OUTPUTS = ["logits", "new_self_keys", "new_self_values"]
OPSET = 17


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H*D] → [B, H, T, D]."""
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _attend(attention: nn.Module, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
            bias: torch.Tensor | None) -> torch.Tensor:
    """Marian's attention given its keys and values: softmax(q kᵀ · scaling + bias) v, heads merged, projected."""
    heads = attention.num_heads
    scores = torch.matmul(_split_heads(attention.q_proj(query), heads), keys.transpose(2, 3)) * attention.scaling
    if bias is not None:
        scores = scores + bias
    mixed = torch.matmul(scores.softmax(dim=-1), values).transpose(1, 2)
    return attention.out_proj(mixed.reshape(query.shape[0], query.shape[1], -1))


def _padding_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S] of 1 (token) / 0 (padding) → an additive [B, 1, 1, S] bias that hides the padding."""
    return (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min


class MarianEncoderGraph(nn.Module):
    """The encoder and every decoder layer's cross-attention keys and values (see the module docstring)."""

    def __init__(self, marian: nn.Module):
        super().__init__()
        self.encoder, self.decoder_layers = marian.model.encoder, marian.model.decoder.layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        encoder = self.encoder
        hidden = encoder.embed_tokens(input_ids) * encoder.embed_scale
        hidden = hidden + encoder.embed_positions.weight[: input_ids.shape[1]]
        bias = _padding_bias(attention_mask)
        for layer in encoder.layers:
            hidden = layer.self_attn_layer_norm(hidden + _attend(layer.self_attn, hidden, *self._kv(layer.self_attn,
                                                                                                   hidden), bias))
            hidden = layer.final_layer_norm(hidden + layer.fc2(layer.activation_fn(layer.fc1(hidden))))
        pairs = [self._kv(layer.encoder_attn, hidden) for layer in self.decoder_layers]
        return torch.stack([k for k, _ in pairs]), torch.stack([v for _, v in pairs])

    @staticmethod
    def _kv(attention: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = attention.num_heads
        return _split_heads(attention.k_proj(hidden), heads), _split_heads(attention.v_proj(hidden), heads)


class MarianDecoderStep(nn.Module):
    """One greedy step of the decoder with past self-attention keys and values (see the module docstring)."""

    def __init__(self, marian: nn.Module):
        super().__init__()
        self.decoder, self.lm_head = marian.model.decoder, marian.lm_head
        self.register_buffer("final_logits_bias", marian.final_logits_bias.detach().clone())

    def forward(self, input_ids, step, attention_mask, self_keys, self_values, cross_keys, cross_values):
        decoder = self.decoder
        hidden = decoder.embed_tokens(input_ids) * decoder.embed_scale + decoder.embed_positions.weight[step]
        bias = _padding_bias(attention_mask)
        new_keys, new_values = [], []
        for i, layer in enumerate(decoder.layers):
            attention = layer.self_attn
            keys = torch.cat([self_keys[i], _split_heads(attention.k_proj(hidden), attention.num_heads)], dim=2)
            values = torch.cat([self_values[i], _split_heads(attention.v_proj(hidden), attention.num_heads)], dim=2)
            new_keys.append(keys), new_values.append(values)
            hidden = layer.self_attn_layer_norm(hidden + _attend(attention, hidden, keys, values, None))
            hidden = layer.encoder_attn_layer_norm(
                hidden + _attend(layer.encoder_attn, hidden, cross_keys[i], cross_values[i], bias))
            hidden = layer.final_layer_norm(hidden + layer.fc2(layer.activation_fn(layer.fc1(hidden))))
        logits = self.lm_head(hidden[:, 0]) + self.final_logits_bias
        return logits, torch.stack(new_keys), torch.stack(new_values)


def export_translator(marian: nn.Module, example: dict[str, torch.Tensor], directory: Path) -> dict[str, Path]:
    """Write the encoder and decoder-step graphs of ``marian`` into ``directory`` (TorchScript tracer: the step's
    past length is dynamic, zero included); their paths."""
    import warnings

    marian = marian.eval()
    encoder, step = MarianEncoderGraph(marian).eval(), MarianDecoderStep(marian).eval()
    with torch.no_grad():
        cross_keys, cross_values = encoder(example["input_ids"], example["attention_mask"])
        batch = example["input_ids"].shape[0]
        past = torch.zeros(cross_keys.shape[0], batch, cross_keys.shape[2], 2, cross_keys.shape[4])
        step_inputs = (torch.zeros(batch, 1, dtype=torch.long), torch.tensor([2]), example["attention_mask"],
                       past, past.clone(), cross_keys, cross_values)
    kv = {1: "batch", 3: "source"}
    paths = {ENCODER_FILE: directory / ENCODER_FILE, DECODER_FILE: directory / DECODER_FILE}
    with warnings.catch_warnings():  # the tracer's deprecation notes
        warnings.simplefilter("ignore")
        torch.onnx.export(encoder, (example["input_ids"], example["attention_mask"]), str(paths[ENCODER_FILE]),
                          dynamo=False, opset_version=OPSET, input_names=ENCODER_INPUTS, output_names=ENCODER_OUTPUTS,
                          dynamic_axes={"input_ids": {0: "batch", 1: "source"},
                                        "attention_mask": {0: "batch", 1: "source"},
                                        "cross_keys": kv, "cross_values": kv})
        torch.onnx.export(step, step_inputs, str(paths[DECODER_FILE]), dynamo=False, opset_version=OPSET,
                          input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
                          dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch", 1: "source"},
                                        "self_keys": {1: "batch", 3: "past"}, "self_values": {1: "batch", 3: "past"},
                                        "cross_keys": kv, "cross_values": kv, "logits": {0: "batch"},
                                        "new_self_keys": {1: "batch", 3: "grown"},
                                        "new_self_values": {1: "batch", 3: "grown"}})
    return paths


def greedy_parity(marian: nn.Module, adapter: Any, translator: Any, sentences: list[str],
                  max_new_tokens: int) -> dict[str, Any]:
    """transformers' greedy ``generate`` vs ``translator`` (the exported pair's numpy loop) on ``sentences``:
    how many token sequences are identical."""
    with torch.no_grad():
        expected = []
        for row in adapter.encode(sentences):
            batch = adapter.source_batch([row])
            ids = marian.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=max_new_tokens)[0, 1:]
            expected.append([int(t) for t in ids if t != adapter.pad_token_id])
    got = translator.token_ids(sentences, max_new_tokens=max_new_tokens)
    differ = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
    return {"sentences": len(sentences), "identical": len(sentences) - len(differ), "differ_at": differ[:10],
            "max_new_tokens": max_new_tokens, "passed": not differ}
