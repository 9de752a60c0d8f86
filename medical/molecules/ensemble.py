"""Ensembles of D-MPNNs as one network, and the mapping of Chemprop v2 checkpoints onto them.

An ensemble's members each map a batch to ``[molecules, targets]``; the ensemble averages
them in the space the card reports: raw outputs (``output="raw"``, the recipe's seed
ensembles, scaled by the card), targets in their own units (``output="unscaled"``: each
member undoes its own target scaling first, as Chemprop's ``UnscaleTransform`` does at
inference, since members trained on different splits scale differently), or probabilities
(``output="probabilities"``: each member's sigmoid, then the mean, as ADMET-AI averages).

Chemprop v2 checkpoints (``admet-ai``'s ten) arrive as Lightning pickles the store reads once
with its restricted unpickler (``format="lightning-pickle"``); :func:`remap_member` keeps the
network's tensors under ``members.<i>.``, the target scaler under ``unscale.<i>.``, and drops
what only training used (the loss's ``criterion`` weights, the ``metrics``).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from zoo.errors import InputError

OUTPUTS = ("raw", "unscaled", "probabilities")
TRAINING_ONLY = ("predictor.criterion.", "metrics.")  # Chemprop's loss and metric state: not the network
CHEMPROP_SCALER = "predictor.output_transform."


class Unscale(nn.Module):
    """``x * scale + mean`` per target: a member's target scaling undone (Chemprop's ``UnscaleTransform``)."""

    def __init__(self, num_targets: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, num_targets))
        self.register_buffer("scale", torch.ones(1, num_targets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean


class Ensemble(nn.Module):
    """Members run on the same batch; their outputs, brought to ``output``'s space, averaged."""

    def __init__(self, members: list[nn.Module], num_targets: int, output: str = "raw"):
        super().__init__()
        if output not in OUTPUTS:
            raise InputError(f"ensemble output must be one of {OUTPUTS}, got {output!r}")
        if not members:
            raise InputError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.output = output
        self.unscale = nn.ModuleList([Unscale(num_targets) for _ in members]) if output == "unscaled" else None

    def forward(self, **batch) -> torch.Tensor:
        outputs = []
        for i, member in enumerate(self.members):
            out = member(**batch)
            if self.output == "unscaled":
                out = self.unscale[i](out)
            elif self.output == "probabilities":
                out = torch.sigmoid(out)
            outputs.append(out)
        return torch.stack(outputs).mean(dim=0)


def seed_ensemble(members: list, seeds: list[int]):
    """Models the recipe trained with ``seeds`` (same data, same target scaling) as one ``zoo.Model``
    averaging their raw outputs; its card is the first member's, ``members`` in its architecture's
    arguments, each member's seed, metrics and training run in ``provenance.ensemble``."""
    import copy

    from zoo.hub import assemble

    first = members[0].card
    card = copy.deepcopy(first)
    card.arch_args = {**first.arch_args, "members": len(members)}
    card.provenance = {key: value for key, value in first.provenance.items() if key != "train"}
    card.provenance["seed"] = seeds[0]
    card.provenance["ensemble"] = {"size": len(members), "seeds": list(seeds), "members": [
        {"seed": seed, "metrics": member.card.metrics, "train": member.card.provenance.get("train")}
        for seed, member in zip(seeds, members)]}
    card.files = {}
    network = Ensemble([member.net for member in members], len(card.labels or [1]), "raw")
    return assemble(network, card)


def remap_member(index: int, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Chemprop v2 checkpoint's state dict as member ``index`` of an :class:`Ensemble` (see the module)."""
    out = {}
    for key, tensor in state.items():
        if key.startswith(TRAINING_ONLY):
            continue
        if key.startswith(CHEMPROP_SCALER):
            out[f"unscale.{index}.{key[len(CHEMPROP_SCALER):]}"] = tensor
        else:
            out[f"members.{index}.{key}"] = tensor
    if not any(key.startswith(f"members.{index}.message_passing.") for key in out):
        raise KeyError("no message_passing.* tensors: not a Chemprop v2 MPNN checkpoint")
    return out


# The store's remap names a "module:function" of one argument: one per member of a five-model ensemble.
remap_member_0, remap_member_1, remap_member_2, remap_member_3, remap_member_4 = (
    functools.partial(remap_member, i) for i in range(5))
