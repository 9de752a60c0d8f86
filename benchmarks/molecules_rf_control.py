"""The molecules suite's control arm, measured: a random forest on Morgan fingerprints + RDKit 2-D descriptors,
on the ``medical/solubility`` fixed split (1,025 train, 257 test molecules).

Features are the zoo's own (``medical.molecules.featurize``: 2048-bit Morgan fingerprints of
radius 2, and every RDKit 2-D descriptor, non-finite values set to 0) of the standardized
molecules; scikit-learn's ``RandomForestRegressor`` (500 trees, all other settings default)
is fitted on the whole train file and scored on the test file, once per seed. The issue
measured RMSE 0.581, R² 0.917 from outside; a D-MPNN must beat this number to mean anything.

    python -m benchmarks.molecules_rf_control [--seeds 3] [--trees 500]
"""
from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.load_overhead import write, zoo_env
from medical.molecules.bench import forest_features
from medical.molecules.datasets import solubility
from medical.molecules.recipes import regression_scores


def main() -> None:
    from sklearn.ensemble import RandomForestRegressor

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trees", type=int, default=500)
    args = parser.parse_args()
    data = solubility(val_fraction=0.0)  # the whole train file trains the forest
    (train_mols, train_y), (test_mols, test_y) = data.part("train"), data.part("test")
    started = time.perf_counter()
    x_train, x_test = forest_features(train_mols), forest_features(test_mols)
    featurize_s = time.perf_counter() - started
    runs = []
    for seed in range(args.seeds):
        forest = RandomForestRegressor(n_estimators=args.trees, random_state=seed, n_jobs=-1)
        started = time.perf_counter()
        forest.fit(x_train, train_y[:, 0])
        runs.append({"seed": seed, "fit_s": round(time.perf_counter() - started, 2),
                     **{k: round(v, 4) for k, v in regression_scores(forest.predict(x_test), test_y[:, 0]).items()}})
    write({
        "benchmark": "molecules_rf_control",
        "data": {"dataset": "medical/solubility", "train": len(train_mols), "test": len(test_mols),
                 "features": int(x_train.shape[1])},
        "model": f"RandomForestRegressor(n_estimators={args.trees}) on Morgan (2048 bits, r=2) + RDKit 2-D descriptors",
        "featurize_s": round(featurize_s, 2),
        "runs": runs,
        "mean": {key: round(statistics.mean(r[key] for r in runs), 4) for key in ("rmse", "mae", "r2")},
        "issue_measured": {"rmse": 0.581, "r2": 0.917},
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
