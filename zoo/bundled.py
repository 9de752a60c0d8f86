"""Re-make a domain's bundled models: each one recipe run, its weights and card copied into ``PACKAGE/weights/``.

Every domain that bundles weights has one ``train_bundled.py`` declaring ``CONFIGS``
(file stem in ``weights/`` → recipe name and the hyper-parameters that differ from the
recipe's defaults) and handing them to :func:`main`::

    python -m robotics.train_bundled mlp_categorical.ppo_cartpole_v1 [--resume] [--threads 1]
    python -m vision.train_bundled --list

A task's own files (a tokenizer) are copied as ``weights/NAME.FILE``.
Runs go to ``runs/bundled/NAME`` (checkpointed: ``--resume`` continues a killed run).
``zoo reproduce DOMAIN/NAME`` retrains from the card alone and compares the metrics.
"""
from __future__ import annotations

import argparse
import json
import shutil
from importlib import import_module
from pathlib import Path
from typing import Any, Mapping, Sequence

Configs = Mapping[str, tuple[str, Mapping[str, Any]]]


def weights_dir(package: str) -> Path:
    """``PACKAGE/weights``, where the bundled files live."""
    return Path(import_module(package).__file__).parent / "weights"


def train(package: str, name: str, configs: Configs, runs: Path, resume: bool) -> Path:
    """Run ``name``'s recipe into ``runs/NAME`` and copy the result into ``PACKAGE/weights``; the card's path."""
    from zoo.card import CARD_FILE, WEIGHTS_FILE
    from zoo.registry import get_registry, resolve_ref

    recipe_name, params = configs[name]
    recipe = resolve_ref(get_registry().recipe(recipe_name).recipe).from_overrides(dict(params))
    result = recipe.run(runs / name, resume=resume, progress=True)
    weights = weights_dir(package)
    weights.mkdir(exist_ok=True)
    for file in json.loads((result.out_dir / CARD_FILE).read_text(encoding="utf-8"))["files"]:
        if file != WEIGHTS_FILE:  # a task's own files (a tokenizer): NAME.FILE beside the weights
            shutil.copyfile(result.out_dir / file, weights / f"{name}.{file}")
    shutil.copyfile(result.out_dir / WEIGHTS_FILE, weights / f"{name}.safetensors")
    shutil.copyfile(result.out_dir / CARD_FILE, weights / f"{name}.json")
    shown = ", ".join(f"{m['name']} {m['value']:.4g} ({m.get('split', '')})" for m in result.metrics)
    print(f"{name}: {shown}; written to {weights / name}.*")
    return weights / f"{name}.json"


def main(package: str, configs: Configs, argv: Sequence[str] | None = None) -> None:
    """The command line of ``PACKAGE.train_bundled``: train the named bundled models, or list them."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}.train_bundled",
                                     description=f"re-make {package}'s bundled models with its recipes")
    parser.add_argument("names", nargs="*", help=f"one or more of {', '.join(configs)}")
    parser.add_argument("--list", action="store_true", help="list the bundled models and exit")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its latest checkpoint")
    parser.add_argument("--runs", type=Path, default=Path("runs/bundled"), help="where the runs are written")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        print("\n".join(f"{name}: {recipe} {dict(params)}" for name, (recipe, params) in configs.items()))
        return
    unknown = [n for n in args.names if n not in configs]
    if unknown:
        parser.error(f"unknown bundled model {unknown}; choose from {', '.join(configs)}")
    import torch

    torch.set_num_threads(args.threads)
    for name in args.names:
        train(package, name, configs, args.runs, args.resume)
