"""The directed message-passing neural network (D-MPNN) of Chemprop (Yang et al., 2019), in plain PyTorch.

Hidden states live on directed bonds. Bond ``v→w`` starts from its source atom's and its
own features, ``h⁰ = τ(W_i [x_v ‖ e_vw])``; each of ``depth − 1`` steps sums the states
of the bonds entering ``v`` except the reverse ``w→v`` and updates
``h = τ(h⁰ + W_h m)``; atoms then sum their incoming bonds, ``a_v = τ(W_o [x_v ‖ m_v])``,
a readout sums or averages atoms per molecule, optional RDKit 2-D descriptors are
concatenated, and a feed-forward head predicts every target. A batch is one concatenated
graph (``index_add_`` over edge and atom indices), never padded.

Module and parameter names follow Chemprop v2's (``message_passing.W_i``, ``predictor.ffn.1.2``),
so its checkpoints map onto this network key for key (``benchmarks/molecules_chemprop_parity.py``
checks features and outputs against Chemprop itself).
"""
from __future__ import annotations

import torch
from torch import nn

from medical.molecules.featurize import ATOM_FEATURES, BOND_FEATURES
from zoo.errors import InputError

READOUTS = ("mean", "sum", "norm")
NORM_READOUT = 100.0  # Chemprop's "norm" aggregation: a sum divided by this constant


class BondMessagePassing(nn.Module):
    """Chemprop's ``BondMessagePassing``: directed-bond messages, atom embeddings out."""

    def __init__(self, atom_dim: int = ATOM_FEATURES, bond_dim: int = BOND_FEATURES, hidden: int = 300,
                 depth: int = 3, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.W_i = nn.Linear(atom_dim + bond_dim, hidden, bias)
        self.W_h = nn.Linear(hidden, hidden, bias)
        self.W_o = nn.Linear(atom_dim + hidden, hidden)
        self.depth = depth
        self.dropout = nn.Dropout(dropout)

    def forward(self, atom_features, bond_features, edge_index, reverse_edges) -> torch.Tensor:
        source, destination = edge_index
        # index_select, not x[index]: the backward of advanced indexing is index_put_(accumulate=True), whose
        # deterministic CPU kernel sorts (a step took 4x as long); index_select's backward is index_add_.
        h0 = self.W_i(torch.cat([atom_features.index_select(0, source), bond_features], dim=1))
        h = torch.relu(h0)
        for _ in range(1, self.depth):
            into_atoms = torch.zeros(len(atom_features), h.shape[1], dtype=h.dtype, device=h.device)
            into_atoms.index_add_(0, destination, h)
            message = into_atoms.index_select(0, source) - h.index_select(0, reverse_edges)  # all into v but w→v
            h = self.dropout(torch.relu(h0 + self.W_h(message)))
        into_atoms = torch.zeros(len(atom_features), h.shape[1], dtype=h.dtype, device=h.device)
        into_atoms.index_add_(0, destination, h)
        return self.dropout(torch.relu(self.W_o(torch.cat([atom_features, into_atoms], dim=1))))


class FeedForwardHead(nn.Module):
    """Chemprop's predictor: its feed-forward network is ``ffn`` (so its keys are ``predictor.ffn.*``)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.ffn = feed_forward(in_dim, out_dim, hidden, layers, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x)


def feed_forward(in_dim: int, out_dim: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    """Chemprop's ``MLP.build``: ``Linear``, then ``layers`` × (ReLU, Dropout, Linear), each in a Sequential."""
    dims = [in_dim] + [hidden] * layers + [out_dim]
    blocks = [nn.Sequential(nn.Linear(dims[0], dims[1]))]
    blocks += [nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(a, b)) for a, b in zip(dims[1:-1], dims[2:])]
    return nn.Sequential(*blocks)


class DMPNN(nn.Module):
    """Message passing, a per-molecule readout, optional descriptors, a feed-forward head: ``[molecules, targets]``."""

    def __init__(self, num_targets: int = 1, hidden: int = 300, depth: int = 3, dropout: float = 0.0,
                 readout: str = "mean", ffn_hidden: int = 300, ffn_layers: int = 1, num_descriptors: int = 0,
                 batch_norm: bool = False):
        super().__init__()
        if readout not in READOUTS:
            raise InputError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.message_passing = BondMessagePassing(hidden=hidden, depth=depth, dropout=dropout)
        self.readout = readout
        self.bn = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.num_descriptors = num_descriptors
        self.predictor = FeedForwardHead(hidden + num_descriptors, num_targets, ffn_hidden, ffn_layers, dropout)

    def fingerprint(self, atom_counts, atom_features, bond_features, edge_index, reverse_edges,
                    descriptors=None) -> torch.Tensor:
        """The learned molecule representation the head reads (readout, then descriptors concatenated)."""
        atoms = self.message_passing(atom_features, bond_features, edge_index, reverse_edges)
        molecule = torch.repeat_interleave(torch.arange(len(atom_counts), device=atoms.device), atom_counts)
        pooled = torch.zeros(len(atom_counts), atoms.shape[1], dtype=atoms.dtype, device=atoms.device)
        pooled.index_add_(0, molecule, atoms)
        if self.readout == "mean":
            pooled = pooled / atom_counts.clamp(min=1).unsqueeze(1).to(pooled.dtype)
        elif self.readout == "norm":
            pooled = pooled / NORM_READOUT
        pooled = self.bn(pooled)
        if self.num_descriptors:
            pooled = torch.cat([pooled, descriptors.to(pooled.dtype)], dim=1)
        return pooled

    def forward(self, atom_counts, atom_features, bond_features, edge_index, reverse_edges,
                descriptors=None) -> torch.Tensor:
        return self.predictor(self.fingerprint(atom_counts, atom_features, bond_features, edge_index, reverse_edges,
                                               descriptors))


def dmpnn(num_targets: int = 1, hidden: int = 300, depth: int = 3, dropout: float = 0.0, readout: str = "mean",
          ffn_hidden: int = 300, ffn_layers: int = 1, num_descriptors: int = 0, batch_norm: bool = False,
          members: int = 1, output: str = "raw") -> nn.Module:
    """Builder for the registry (architecture ``dmpnn``); the defaults are Chemprop v2's. ``members`` > 1
    (or an ``output`` other than raw) gives an :class:`~medical.molecules.ensemble.Ensemble` of such networks."""
    args = (num_targets, hidden, depth, dropout, readout, ffn_hidden, ffn_layers, num_descriptors, batch_norm)
    if members == 1 and output == "raw":
        return DMPNN(*args)
    from medical.molecules.ensemble import Ensemble

    if members < 1:
        raise InputError(f"members must be at least 1, got {members}")
    return Ensemble([DMPNN(*args) for _ in range(members)], num_targets, output)
