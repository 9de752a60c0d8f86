"""Our Chemprop-v2 features and D-MPNN against Chemprop itself: the same numbers, bit for bit and to 1e-5.

For each molecule of the ``medical/solubility`` test file (257), Chemprop's default
``SimpleMoleculeMolGraphFeaturizer`` and ours (``medical.molecules.featurize``) must give
identical atom features, bond features, edge index and reverse-edge index. Then Chemprop's
default MPNN (``BondMessagePassing``, mean aggregation, ``RegressionFFN``; random init) is
copied key for key into our ``dmpnn`` and both predict the whole set in one batch: the
largest absolute difference must be under 1e-5 (float32 sums in another order).

Chemprop pulls Lightning and a pinned RDKit, so run this in a throw-away virtual environment:

    python -m venv --system-site-packages /tmp/cpvenv && /tmp/cpvenv/bin/pip install chemprop==2.3.1
    /tmp/cpvenv/bin/python -m benchmarks.molecules_chemprop_parity
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.load_overhead import write, zoo_env
from medical.molecules.chem import parse_smiles
from medical.molecules.datasets import solubility
from medical.molecules.dmpnn import dmpnn
from medical.molecules.featurize import batch_graphs, mol_graph

CHEMPROP_ONLY = ("predictor.output_transform", "predictor.criterion", "metrics.")  # its training's buffers


def main() -> None:
    import chemprop
    from chemprop import data as cp_data
    from chemprop import featurizers, models, nn
    from chemprop.utils import make_mol

    table = solubility().table
    smiles = [table.molecules[i].smiles for i in range(len(table)) if table.split[i] == "test"]
    theirs = [featurizers.SimpleMoleculeMolGraphFeaturizer()(make_mol(s)) for s in smiles]
    ours = [mol_graph(parse_smiles(s, f"test molecule {i}", standardize=False).mol) for i, s in enumerate(smiles)]
    feature_mismatches = [s for s, a, b in zip(smiles, ours, theirs)
                          if not (np.array_equal(a.atoms, b.V) and np.array_equal(a.bonds, b.E.astype(np.float32))
                                  and np.array_equal(a.edge_index, b.edge_index)
                                  and np.array_equal(a.reverse, b.rev_edge_index))]
    torch.manual_seed(0)
    reference = models.MPNN(nn.BondMessagePassing(), nn.MeanAggregation(), nn.RegressionFFN()).eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith(CHEMPROP_ONLY)}
    network = dmpnn().eval()
    network.load_state_dict(state, strict=True)
    with torch.inference_mode():
        expected = reference(cp_data.BatchMolGraph(theirs)).numpy()
        got = network(**batch_graphs(ours)).numpy()
    difference = float(np.abs(expected - got).max())
    write({
        "benchmark": "molecules_chemprop_parity",
        "chemprop": chemprop.__version__,
        "molecules": len(smiles),
        "feature_mismatches": len(feature_mismatches),
        "first_mismatches": feature_mismatches[:5],
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "max_abs_difference": difference,
        "target": "0 feature mismatches, max_abs_difference <= 1e-5",
        "ok": not feature_mismatches and difference <= 1e-5,
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
