"""The simple neural baseline: a multilayer perceptron on Morgan fingerprints (optionally with RDKit descriptors)."""
from __future__ import annotations

import torch
from torch import nn

from medical.molecules.featurize import MORGAN_BITS
from zoo.errors import InputError


class FingerprintMLP(nn.Module):
    """``fingerprints [molecules, bits]`` (and ``descriptors``) → ``[molecules, targets]`` through ReLU layers."""

    def __init__(self, num_targets: int = 1, bits: int = MORGAN_BITS, hidden: int = 512, layers: int = 2,
                 dropout: float = 0.1, num_descriptors: int = 0):
        super().__init__()
        dims = [bits + num_descriptors] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(dims[-1], num_targets)
        self.num_descriptors = num_descriptors

    def forward(self, fingerprints, descriptors=None) -> torch.Tensor:
        x = fingerprints if not self.num_descriptors else torch.cat([fingerprints, descriptors.to(fingerprints.dtype)], 1)
        return self.head(self.body(x))


def fingerprint_mlp(num_targets: int = 1, bits: int = MORGAN_BITS, hidden: int = 512, layers: int = 2,
                    dropout: float = 0.1, num_descriptors: int = 0, members: int = 1) -> nn.Module:
    """Builder for the registry (architecture ``fingerprint_mlp``); ``members`` > 1 gives an
    :class:`~medical.molecules.ensemble.Ensemble` of such networks (the recipe's seed ensembles)."""
    args = (num_targets, bits, hidden, layers, dropout, num_descriptors)
    if members == 1:
        return FingerprintMLP(*args)
    from medical.molecules.ensemble import Ensemble

    if members < 1:
        raise InputError(f"members must be at least 1, got {members}")
    return Ensemble([FingerprintMLP(*args) for _ in range(members)], num_targets)
