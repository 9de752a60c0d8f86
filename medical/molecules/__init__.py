"""Drug discovery: molecular property prediction.

The room of the ``molecular-property`` task family inside ``medical``:

* :mod:`.chem` — SMILES in, RDKit molecules out: parsing, standardization, the input checks;
* :mod:`.tables` — molecules with targets from SMILES lists, CSV/TSV and SDF files;
* :mod:`.featurize` — Chemprop v2's atom and bond features, batched molecular graphs,
  Morgan fingerprints and RDKit 2-D descriptors;
* :mod:`.splits` — random, Bemis–Murcko scaffold and fixed splits;
* :mod:`.datasets` — ``medical/solubility`` and ``medical/freesolv`` and your own files;
* :mod:`.dmpnn`, :mod:`.fingerprint_mlp` — the networks, one family a file;
* :mod:`.tasks`, :mod:`.recipes` — the task adapter and the ``molecular-property`` recipe.

RDKit (``pip install rdkit``, in the ``medical`` extra) is imported only inside these modules.
"""
