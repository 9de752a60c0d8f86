"""Recipes that train control policies: ``ppo``, ``sac`` and ``bc`` (behaviour cloning).

Each is a dataclass of hyper-parameters whose ``run`` reads top to bottom, in the
manner of CleanRL; :mod:`robotics.recipes.common` holds what they share (policy
creation, checkpoints, evaluation into the card). ``zoo finetune`` on a trained
policy runs the recipe its card records, with the recorded settings as defaults
(:func:`zoo.recipes.finetune_recipe`).
"""
