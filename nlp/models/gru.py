"""A GRU encoder-decoder with Bahdanau (additive) attention, in plain PyTorch: the zoo's RNN family.

Encoder: embedding → bidirectional GRU; its final states, projected, start the
decoder. Decoder step: attention over the encoder states (``v·tanh(W_q q + W_k k)``,
padding masked) → the context and the previous token's embedding into a GRU cell →
``[state, context, embedding]`` projected to the vocabulary (Bahdanau et al., 2015).

``forward(input_ids, attention_mask, decoder_input_ids)`` returns logits
``[batch, target_len, vocab]`` (teacher forcing); ``generate`` decodes greedily or
with beam search (length penalty as transformers': score / length**penalty), and
returns ids that start with the decoder start token, as transformers' ``generate``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BahdanauAttention(nn.Module):
    """Additive attention of one decoder state over the encoder states."""

    def __init__(self, query_dim: int, key_dim: int, dim: int):
        super().__init__()
        self.query = nn.Linear(query_dim, dim, bias=False)
        self.key = nn.Linear(key_dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, query, keys, projected_keys, mask):
        """``query [B, Q]``, ``keys [B, S, K]`` (``projected_keys`` = ``self.key(keys)``), ``mask [B, S]`` → context ``[B, K]``."""
        energy = self.score(torch.tanh(projected_keys + self.query(query)[:, None])).squeeze(-1)
        weights = energy.masked_fill(~mask, torch.finfo(energy.dtype).min).softmax(-1)
        return torch.bmm(weights[:, None], keys).squeeze(1)


class GRUTranslator(nn.Module):
    """Bidirectional GRU encoder, attentive GRU decoder, shared source/target embeddings (a joint vocabulary)."""

    def __init__(self, vocab_size: int, *, embed_dim: int = 256, hidden_size: int = 512, dropout: float = 0.2,
                 pad_token_id: int = 0, eos_token_id: int = 1, decoder_start_token_id: int | None = None):
        super().__init__()
        self.pad_token_id, self.eos_token_id = pad_token_id, eos_token_id
        self.decoder_start_token_id = pad_token_id if decoder_start_token_id is None else decoder_start_token_id
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_token_id)
        self.encoder = nn.GRU(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size, 2 * hidden_size, hidden_size)
        self.decoder = nn.GRUCell(embed_dim + 2 * hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size + 2 * hidden_size + embed_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def encode(self, input_ids, attention_mask):
        """Encoder states ``[B, S, 2H]``, their attention keys, the mask and the decoder's first state."""
        mask = attention_mask.bool()
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(self.embed(input_ids)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        states, last = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=input_ids.shape[1])
        hidden = torch.tanh(self.bridge(torch.cat([last[0], last[1]], -1)))
        return states, self.attention.key(states), mask, hidden

    def step(self, tokens, hidden, states, keys, mask):
        """One decoder step: previous tokens ``[B]`` → logits ``[B, V]`` and the new state."""
        embedded = self.dropout(self.embed(tokens))
        context = self.attention(hidden, states, keys, mask)
        hidden = self.decoder(torch.cat([embedded, context], -1), hidden)
        return self.out(self.dropout(torch.cat([hidden, context, embedded], -1))), hidden

    def forward(self, input_ids, attention_mask, decoder_input_ids, **_):
        states, keys, mask, hidden = self.encode(input_ids, attention_mask)
        logits = []
        for t in range(decoder_input_ids.shape[1]):
            step_logits, hidden = self.step(decoder_input_ids[:, t], hidden, states, keys, mask)
            logits.append(step_logits)
        return torch.stack(logits, 1)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, *, max_new_tokens: int = 128, num_beams: int = 1,
                 length_penalty: float = 1.0, **_):
        """Translations as token ids ``[B, L]`` (decoder start first, eos then padding at the end)."""
        encoded = self.encode(input_ids, attention_mask)
        if num_beams <= 1:
            return self._greedy(encoded, max_new_tokens)
        rows = [self._beam([x[i : i + 1] for x in encoded], max_new_tokens, num_beams, length_penalty)
                for i in range(input_ids.shape[0])]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in rows], device=input_ids.device)

    def _greedy(self, encoded, max_new_tokens: int):
        states, keys, mask, hidden = encoded
        tokens = torch.full((states.shape[0],), self.decoder_start_token_id, device=states.device)
        out, done = [tokens], torch.zeros_like(tokens, dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits, hidden = self.step(tokens, hidden, states, keys, mask)
            tokens = logits.argmax(-1).masked_fill(done, self.pad_token_id)
            out.append(tokens)
            done |= tokens == self.eos_token_id
            if done.all():
                break
        return torch.stack(out, 1)

    def _beam(self, encoded, max_new_tokens: int, num_beams: int, length_penalty: float) -> list[int]:
        """Beam search for one sentence: the best finished hypothesis by score / length**length_penalty."""
        states, keys, mask, hidden = encoded
        beams = [([self.decoder_start_token_id], 0.0, hidden[0])]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_new_tokens):
            tokens = torch.tensor([b[0][-1] for b in beams], device=states.device)
            n = len(beams)
            logits, new_hidden = self.step(tokens, torch.stack([b[2] for b in beams]), states.expand(n, -1, -1),
                                           keys.expand(n, -1, -1), mask.expand(n, -1))
            scores = F.log_softmax(logits.float(), -1) + torch.tensor([b[1] for b in beams], device=states.device)[:, None]
            top, index = scores.view(-1).topk(2 * num_beams)
            candidates = []
            for score, flat in zip(top.tolist(), index.tolist()):
                beam, token = divmod(flat, logits.shape[-1])
                sequence = beams[beam][0] + [token]
                if token == self.eos_token_id:
                    finished.append((score / (len(sequence) - 1) ** length_penalty, sequence))
                else:
                    candidates.append((sequence, score, new_hidden[beam]))
                if len(candidates) == num_beams:
                    break
            beams = candidates
            best_open = max(b[1] for b in beams) / max_new_tokens ** length_penalty if beams else None
            if len(finished) >= num_beams and (best_open is None or max(finished)[0] >= best_open):
                break
        if not finished:  # nothing ended within max_new_tokens: the best open hypothesis
            finished = [(b[1] / (len(b[0]) - 1) ** length_penalty, b[0]) for b in beams]
        return max(finished, key=lambda f: f[0])[1]


def gru_translator(vocab_size: int, embed_dim: int = 256, hidden_size: int = 512, dropout: float = 0.2,
                   pad_token_id: int = 0, eos_token_id: int = 1) -> GRUTranslator:
    """The ``gru_translator`` architecture."""
    return GRUTranslator(vocab_size, embed_dim=embed_dim, hidden_size=hidden_size, dropout=dropout,
                         pad_token_id=pad_token_id, eos_token_id=eos_token_id)
