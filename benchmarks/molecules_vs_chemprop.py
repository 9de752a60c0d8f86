"""Our D-MPNN recipe against Chemprop v2 itself: accuracy, training time and featurization speed.

Same data (``medical/solubility``'s fixed split: the recipe's train, val and test molecules,
canonical SMILES), same network (Chemprop's defaults: bond message passing, hidden 300,
depth 3, mean aggregation, one 300-wide FFN layer, no batch norm, no descriptors), same epochs,
batch size and peak learning rate (1e-3), one torch thread each, and the weights of the best
validation epoch kept by both. What differs is each library's own schedule: our Trainer's
linear warm-up and cosine decay, Chemprop's Noam schedule (1e-4 → 1e-3 over 2 epochs → 1e-4).

Measured, per seed: test RMSE with a bootstrap 95% CI over the test molecules; training wall
clock from the data files to a trained model (reading and standardizing, featurization and
training: ours featurizes once, Chemprop with ``cache=True``); and featurization alone,
molecules/s from RDKit molecules to graphs.
Targets (issue 19): our RMSE within Chemprop's CI or better, training time ratio ours/Chemprop
≤ 0.7, featurization speed ratio ours/Chemprop ≥ 1.0.

Chemprop pulls Lightning and a pinned RDKit: run this in a throw-away virtual environment that
sees our torch (``--system-site-packages``; chemprop 2.3.1 leaves torch as it is):

    python -m venv --system-site-packages /tmp/cpvenv && /tmp/cpvenv/bin/pip install chemprop==2.3.1
    /tmp/cpvenv/bin/python -m benchmarks.molecules_vs_chemprop [--epochs 10] [--seeds 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

from benchmarks.load_overhead import write, zoo_env
from medical.molecules.bench import regression_output
from medical.molecules.datasets import solubility
from zoo.bench_stats import bootstrap_statistic_ci95

BATCH_SIZE = 50
LR = 1e-3


def our_run(epochs: int, seed: int) -> dict:
    from medical.molecules.recipes import MolecularPropertyRecipe
    from zoo.hub import load

    recipe = MolecularPropertyRecipe(data="medical/solubility", hidden=300, depth=3, readout="mean", num_threads=1,
                                     train={"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "seed": seed})
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        recipe.run(out, progress=False)
        seconds = time.perf_counter() - started
        mols, y = recipe.load_data().part("test")
        predicted = [row["logS"] for row in load(out, device="cpu").predict([m.smiles for m in mols])]
    return {"train_s": seconds, **scores(predicted, y[:, 0], seed)}


def chemprop_run(epochs: int, seed: int) -> dict:
    import lightning.pytorch as pl
    from chemprop import data as cp_data
    from chemprop import featurizers, models, nn

    class KeepBest(pl.Callback):  # the best validation epoch's weights, in memory (no checkpoint pickles)
        best, state = float("inf"), None

        def on_validation_epoch_end(self, trainer, module):
            loss = float(trainer.callback_metrics["val_loss"])
            if loss < self.best:
                self.best, self.state = loss, copy.deepcopy(module.state_dict())

    started = time.perf_counter()  # from the data file, as the recipe's run reads it
    split = solubility()
    parts = {name: split.part(name) for name in ("train", "val", "test")}
    pl.seed_everything(seed, verbose=False)
    featurizer = featurizers.SimpleMoleculeMolGraphFeaturizer()
    sets = {}
    for name, (mols, y) in parts.items():
        sets[name] = cp_data.MoleculeDataset([cp_data.MoleculeDatapoint.from_smi(m.smiles, y[i])
                                              for i, m in enumerate(mols)], featurizer)
        sets[name].cache = True
    scaler = sets["train"].normalize_targets()
    sets["val"].normalize_targets(scaler)
    loaders = {name: cp_data.build_dataloader(s, batch_size=BATCH_SIZE, num_workers=0, seed=seed,
                                              shuffle=name == "train") for name, s in sets.items()}
    ffn = nn.RegressionFFN(output_transform=nn.UnscaleTransform.from_standard_scaler(scaler))
    model = models.MPNN(nn.BondMessagePassing(), nn.MeanAggregation(), ffn, batch_norm=False, max_lr=LR)
    keep = KeepBest()
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu",
                         devices=1, max_epochs=epochs, callbacks=[keep], enable_model_summary=False)
    trainer.fit(model, loaders["train"], loaders["val"])
    model.load_state_dict(keep.state)
    seconds = time.perf_counter() - started
    predicted = torch.cat(trainer.predict(model, loaders["test"])).numpy()[:, 0]
    return {"train_s": seconds, **scores(predicted, parts["test"][1][:, 0], seed)}


def scores(predicted, truth, seed: int) -> dict:
    output = regression_output(predicted, truth)
    ci95 = bootstrap_statistic_ci95(output.resampled, seed)
    return {"rmse": round(output.metrics["rmse"], 4), "rmse_ci95": [round(x, 4) for x in ci95["rmse"]],
            "r2": round(output.metrics["r2"], 4)}


def featurization_rates(repeats: int = 3) -> dict:
    """Molecules/s from RDKit molecules to graphs, the best of ``repeats`` passes over the whole set."""
    from chemprop import featurizers

    from medical.molecules.featurize import mol_graph

    mols = [m.mol for m in solubility().table.molecules]
    theirs = featurizers.SimpleMoleculeMolGraphFeaturizer()
    rates = {}
    for name, featurize in (("ours", mol_graph), ("chemprop", theirs)):
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for mol in mols:
                featurize(mol)
            best = min(best, time.perf_counter() - started)
        rates[name] = round(len(mols) / best, 1)
    return {"molecules": len(mols), "molecules_per_s": rates, "ratio": round(rates["ours"] / rates["chemprop"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import chemprop  # noqa: F401  (imported before any clock starts: neither run pays the other's imports,
    import lightning.pytorch  # noqa: F401  and deterministic mode's first call imports torch._dynamo)
    import torch._dynamo as _dynamo  # noqa: F401

    runs = []
    for seed in range(args.seeds):
        runs.append({"seed": seed, "ours": our_run(args.epochs, seed), "chemprop": chemprop_run(args.epochs, seed)})
    mean = {lib: {key: round(statistics.mean(r[lib][key] for r in runs), 4) for key in ("rmse", "train_s")}
            for lib in ("ours", "chemprop")}
    featurization = featurization_rates()
    write({
        "benchmark": "molecules_vs_chemprop",
        "data": {"dataset": "medical/solubility", "split": "fixed (val: 10% of train)"},
        "settings": {"epochs": args.epochs, "batch_size": BATCH_SIZE, "lr": LR, "hidden": 300, "depth": 3,
                     "aggregation": "mean", "torch_threads": 1},
        "runs": runs,
        "mean": mean,
        "train_time_ratio": round(mean["ours"]["train_s"] / mean["chemprop"]["train_s"], 3),
        "featurization": featurization,
        "targets": {"train_time_ratio": "<= 0.7", "featurization_ratio": ">= 1.0",
                    "rmse": "within Chemprop's CI or better"},
        "env": {**zoo_env(), "chemprop": __import__("chemprop").__version__},
    })


if __name__ == "__main__":
    main()
