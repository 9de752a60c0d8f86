"""Tables in the docs, generated from the model cards so they never drift from them.

A guide marks a table with an opening and a closing comment::

    <!-- zoo:cards robotics/* metric=mean_return -->
    (generated table)
    <!-- /zoo:cards -->

``PATTERN`` selects registered models with weights (as ``zoo list`` does) and
``metric=NAME`` the card metric to show, with its 95% CI when the card has one;
``split=NAME`` (optional) takes it on that split (a card with val and test metrics).
``python -m zoo.doctables FILE...`` rewrites the tables in place; ``--check``
only reports the files whose tables differ from the cards (exit 1).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from zoo.atomic import write_text_atomic
from zoo.errors import InputError

_BLOCK = re.compile(r"(<!-- zoo:cards (?P<args>[^>]*?) -->\n)(?P<table>.*?)(<!-- /zoo:cards -->)", re.S)


def card_table(pattern: str, metric: str, split: str | None = None) -> str:
    """A Markdown table of the pretrained models matching ``pattern``: recipe, training budget, ``metric``
    (on ``split`` when given)."""
    from zoo.hub import info, list_models

    rows = ["| id | recipe | training | " + metric.replace("_", " ") + " (95% CI) | measured on |",
            "|---|---|---|---|---|"]
    for model_id in list_models(pattern, pretrained=True):
        card = info(model_id)
        found = card.metric(metric, split)
        if found is None:
            continue
        recipe = card.provenance.get("recipe") or {}
        rows.append(f"| `{model_id}` | {recipe.get('name', '—')} | {_budget(recipe.get('params', {}))} | "
                    f"{_value(found)} | {_measured_on(found)} |")
    if len(rows) == 2:
        raise InputError(f"no pretrained model matching {pattern!r} has a {metric!r} metric"
                         f"{f' on {split}' if split else ''} in its card")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    """``text`` with every marked table regenerated from the cards."""
    def table(match: re.Match) -> str:
        pattern, metric, split = _parse_args(match["args"])
        return match.group(1) + card_table(pattern, metric, split) + match.group(4)

    return _BLOCK.sub(table, text)


def _parse_args(args: str) -> tuple[str, str, str | None]:
    words = args.split()
    options = dict(word.split("=", 1) for word in words[1:] if "=" in word)
    if not words or "metric" not in options:
        raise InputError(f"expected <!-- zoo:cards PATTERN metric=NAME [split=NAME] -->, got <!-- zoo:cards {args} -->")
    return words[0], options["metric"], options.get("split")


def _budget(params: dict) -> str:
    if params.get("total_steps"):  # a policy's run, continuing ``model`` when given
        return f"{params['total_steps']:,} env steps" + (f" after `{params['model']}`" if params.get("model") else "")
    epochs = (params.get("train") or {}).get("epochs")
    if epochs:
        dagger = (f" + {params['dagger_rounds']} DAgger rounds of {params['dagger_episodes']} episodes"
                  if params.get("dagger_rounds") else "")
        return f"{epochs} epochs" + (f" on `{params['data']}`" if params.get("data") else "") + dagger
    return "—"


def _number(value: float) -> str:
    return f"{value:.4g}".replace("-", "−")


def _value(metric: dict) -> str:
    ci = metric.get("ci95")
    return _number(metric["value"]) + (f" [{_number(ci[0])}, {_number(ci[1])}]" if ci and ci[0] != ci[1] else "")


def _measured_on(metric: dict) -> str:
    episodes = f", {metric['episodes']} episodes" if metric.get("episodes") else ""
    return f"{metric.get('dataset', '?')} ({metric.get('split', '?')}{episodes})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the card tables in Markdown files.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report files whose tables drifted")
    args = parser.parse_args(argv)
    drifted = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        rendered = render(text)
        if rendered != text:
            drifted.append(path)
            if not args.check:
                write_text_atomic(path, rendered)
    for path in drifted:
        print(f"{path}: {'tables differ from the cards' if args.check else 'tables regenerated'}")
    return 1 if args.check and drifted else 0


if __name__ == "__main__":
    sys.exit(main())
