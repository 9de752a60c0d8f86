"""Recipes that train control policies: ``ppo``, ``sac`` and ``bc`` (behaviour cloning).

Each is a dataclass of hyper-parameters whose ``run`` reads top to bottom, in the
manner of CleanRL; :mod:`robotics.recipes.common` holds what they share (policy
creation, checkpoints, evaluation into the card).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

from zoo.errors import InputError


class ContinueTraining:
    """The ``control`` recipe: resolves to the recipe that trained ``model``, with its recorded
    hyper-parameters as defaults (``zoo finetune robotics/ppo-mlp.cartpole-v1 --env CartPole-v1``)."""

    name: ClassVar[str] = "control"

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None):
        """The trained model's recipe: its recorded params, then ``config_file``, then ``overrides``."""
        from zoo.hub import info
        from zoo.recipes import read_config
        from zoo.registry import get_registry, resolve_ref

        overrides = dict(overrides or {})
        if not overrides.get("model"):
            raise InputError("the control recipe continues a trained policy: give model=ID_OR_PATH")
        recorded = info(overrides["model"]).provenance.get("recipe")
        if not recorded:
            raise InputError(f"{overrides['model']} records no recipe; pick one with --recipe ppo|sac|bc")
        recipe_cls = resolve_ref(get_registry().recipe(recorded["name"]).recipe)
        return recipe_cls.from_overrides({**recorded["params"], **read_config(config_file), **overrides})
