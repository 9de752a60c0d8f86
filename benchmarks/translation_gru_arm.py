"""The GRU arm of the translation suite: the ``translation`` recipe's GRU with Bahdanau attention trained on
``nlp/bible-en-es``'s training books within a wall-clock budget, scored on the test books (greedy) beside the
bundled Transformer's card figures and Apertium's on the same verses, in one run.

The GRU is smaller than its registered default (hidden 256, not 512): its deep output layer (GRU state,
context and embedding → vocabulary) makes each step cost more than the Transformer's, and the arm is given
less time. The wall time, steps and whether the budget stopped it are recorded from its card.

    python -m benchmarks.translation_gru_arm [--transformer ID_OR_DIR] [--minutes 25] [--epochs 1] [--threads 2]

The GRU's run stays in ``runs/translation_gru_arm`` (``--resume``-able by the recipe; scored again if found done).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

TRANSFORMER = "runs/bundled/marian_translator.bible_en_es"  # what `python -m nlp.train_bundled` writes
RUN = Path("runs/translation_gru_arm")
GRU_SIZES = {"embed_dim": 256, "hidden_size": 256, "dropout": 0.2}


def _trained(recipe):
    from zoo.hub import info

    recipe.run(RUN, resume=(RUN / "checkpoints").is_dir(), progress=True)
    return info(str(RUN))


def _row(card) -> dict:
    return {"params": card.params, "train": card.provenance["train"],
            **{f"{m['name']}_{m['split']}": m["value"] for m in card.metrics}}


def main() -> None:
    import torch

    from nlp.bible import bible_en_es
    from nlp.mt_metrics import apertium_available, apertium_translate, corpus_scores
    from nlp.translation_recipe import TranslationRecipe
    from zoo.hub import info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformer", default=TRANSFORMER, help="the Transformer's id or folder")
    parser.add_argument("--minutes", type=float, default=25.0, help="the GRU's training budget")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = TranslationRecipe(model="nlp/gru_translator.small", data="nlp/bible-en-es", arch_args=GRU_SIZES,
                               train={"epochs": args.epochs, "batch_size": 64, "lr": 1e-3, "warmup_ratio": 0.05,
                                      "max_minutes": args.minutes})
    rows = {"gru": _row(info(str(RUN)) if (RUN / "card.json").is_file() else _trained(recipe))}
    transformer = info(args.transformer)  # scored on the same test books by its own recipe run
    rows["transformer"] = {"model": args.transformer, **_row(transformer)}
    test = bible_en_es().test
    why = apertium_available("en", "es")
    rows["apertium"] = ({"error": why} if why else
                        {k: v for k, v in corpus_scores(apertium_translate(test.sources), test.targets).items()})
    write({"benchmark": "translation_gru_arm", "test_sentences": len(test), "gru_sizes": GRU_SIZES,
           "budget_minutes": args.minutes, "rows": rows,
           "command": f"python -m benchmarks.translation_gru_arm --transformer {args.transformer} "
                      f"--minutes {args.minutes:g} --epochs {args.epochs}",
           "env": zoo_env()})


if __name__ == "__main__":
    main()
