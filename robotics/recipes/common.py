"""What the control recipes share: the policy to train, checkpoints, and the final evaluation."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from backends.seed import rng_state, set_rng_state
from zoo.card import ModelCard
from zoo.checkpoint import Checkpoint, check_like, load_checkpoint, save_checkpoint
from zoo.errors import CheckpointError
from zoo.registry import as_tag
from zoo.runs import check_same_run, find_checkpoint

EVAL_SEED = 10_000  # evaluation episodes are reset with seeds EVAL_SEED + i, apart from training seeds


def make_policy(env_id: str, algorithm: str, model: str | None, pretrained: bool, device: str = "cpu",
                **arch_options: Any):
    """A policy for ``env_id``: ``model`` (an id or directory) to train further, else a fresh one.

    A given model must fit the environment's spaces; ``arch_options`` (hidden sizes,
    activation, ...) shape a fresh one. Either way the card is a new model's: its id names
    ``algorithm`` and ``env_id``, and ``env_id`` comes first in its ``env_ids``.
    """
    from robotics.envs import check_env, describe_spaces, make_env, policy_arch
    from zoo.hub import build, load

    if model:
        policy = load(model, pretrained=pretrained, device=device)
        check_env(policy.card, env_id, same_spaces_ok=True)
        card = policy.card
        card.id = policy_id(card.architecture, algorithm, env_id)
        card.input["env_ids"] = [env_id] + [other for other in card.input["env_ids"] if other != env_id]
        return policy.train()
    architecture, arch_args = policy_arch(env_id, algorithm, **arch_options)
    env = make_env(env_id)
    spaces = describe_spaces(env)
    env.close()
    card = ModelCard(
        id=policy_id(architecture, algorithm, env_id),
        domain="robotics",
        task="control",
        architecture=architecture,
        arch_args=arch_args,
        input={"shape": [arch_args["obs_dim"]], "dtype": "float32", "env_ids": [env_id], **spaces,
               **({"state_shape": [arch_args["core_size"]]} if "core_size" in arch_args else {})},
        license="Apache-2.0",
    )
    return build(card).to(device).train()


def policy_id(architecture: str, algorithm: str, env_id: str) -> str:
    """``robotics/<architecture>.<algorithm>_<env tag>``: the id a recipe gives the policy it trains."""
    return f"robotics/{architecture}.{algorithm}_{as_tag(env_id)}"


def open_run(recipe, out_dir: Path, resume: bool | str, algorithm: str, fields: dict[str, type], progress: bool,
             **arch_options: Any):
    """The start of an on-policy run in ``recipe.num_envs`` environments: ``(checkpoint, envs, policy, log)``,
    the checkpoint None for a fresh run (see :func:`resume_checkpoint`); seeds everything first."""
    from backends.seed import seed_everything
    from robotics.envs import SyncEnvs
    from zoo.runs import MetricsLog

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resume_checkpoint(out_dir, resume, recipe.to_dict(), fields)
    seed_everything(recipe.seed)
    envs = SyncEnvs(recipe.env_id, recipe.num_envs, recipe.seed)
    policy = make_policy(recipe.env_id, algorithm, recipe.model, recipe.pretrained, recipe.device, **arch_options)
    return checkpoint, envs, policy, MetricsLog(out_dir, echo=progress)


def restore_run(checkpoint: Checkpoint | None, envs, log, optimizers: list[torch.optim.Optimizer]) -> tuple[int, list]:
    """Where an on-policy run starts: ``(iteration, recent returns)``, ``(0, [])`` when fresh; from a checkpoint,
    with its envs, metrics log, optimizers and, last, RNG streams restored (the caller loads its tensors first)."""
    if checkpoint is None:
        log.restart([])
        return 0, []
    load_state_of(envs, checkpoint, "envs")
    log.restart(checkpoint.state["history"])
    restore_training(checkpoint, optimizers)
    return checkpoint.state["iteration"], checkpoint.state["recent_returns"]


def end_iteration(recipe, out_dir: Path, policy, log, *, iteration: int, iterations: int, batch_size: int,
                  recent: list, loss, stop, checkpoint: Callable[[], tuple[dict, list, dict]]) -> tuple[int, bool]:
    """After an on-policy iteration of ``batch_size`` env steps: log the recent mean return, ask
    ``stop(step, policy)``, and checkpoint when a multiple of ``checkpoint_every_steps`` was passed
    (``checkpoint()`` gives the tensors, optimizers and the recipe's own state). Returns the env steps so far
    and whether training is over."""
    step = (iteration + 1) * batch_size
    if recent:
        log.log({"step": step, "mean_return": float(np.mean(recent)), "loss": loss.item()})
    done = (stop is not None and stop(step, policy)) or iteration + 1 == iterations
    every = recipe.checkpoint_every_steps
    if not done and every and step // every != (step - batch_size) // every:
        tensors, optimizers, state = checkpoint()
        save_training(out_dir, step, tensors, optimizers, {
            "iteration": iteration + 1, "recent_returns": recent, **state, "history": log.history,
            "recipe": recipe.to_dict()}, keep=recipe.keep_checkpoints)
    return step, done


def close_run(envs, policy, recipe, out_dir: Path, step: int, iterations: int):
    """The end of an on-policy run: close the envs, evaluate, record and save the policy (:func:`finish`)."""
    envs.close()
    return finish(policy, recipe, out_dir, env_fingerprint(recipe.env_id),
                  {"env_steps": step, "iterations": iterations})


# What every control recipe's checkpoint state holds, by type (zoo.checkpoint checks them).
RUN_FIELDS = {"recipe": dict, "history": list, "recent_returns": list, "envs": dict}


def resume_checkpoint(out_dir: Path, resume: bool | str, params: dict[str, Any],
                      fields: dict[str, type] | None = None) -> Checkpoint | None:
    """The verified checkpoint a control run resumes (see :func:`zoo.runs.find_checkpoint`), made by the same
    recipe ``params``; None for a fresh run. ``fields`` adds the recipe's own state keys and types to
    :data:`RUN_FIELDS`."""
    path = find_checkpoint(out_dir, resume)
    if path is None:
        return None
    checkpoint = load_checkpoint(path, fields={**RUN_FIELDS, **(fields or {})})
    check_same_run(checkpoint.path, checkpoint.state["recipe"], params, what="recipe")
    return checkpoint


def save_training(out_dir: Path, step: int, tensors: dict[str, torch.Tensor], optimizers: list[torch.optim.Optimizer],
                  state: dict[str, Any], keep: int) -> Path:
    """An atomic checkpoint of a control run: tensors, optimizers, every RNG and JSON ``state``; the newest
    ``keep`` stay."""
    return save_checkpoint(out_dir, step, model=tensors, optimizer=stack_optimizer_states(optimizers),
                           rng=rng_state(), state={"step": step, "epoch": 0, "batch": 0, **state}, keep=keep)


def load_state_of(obj, checkpoint: Checkpoint, key: str) -> None:
    """``obj.load_state_dict(checkpoint.state[key])`` once it has the structure of ``obj``'s own state."""
    check_like(checkpoint.state[key], obj.state_dict(), f"checkpoint {checkpoint.path}: trainer.json {key}")
    obj.load_state_dict(checkpoint.state[key])


def restore_training(checkpoint: Checkpoint, optimizers: list[torch.optim.Optimizer]) -> None:
    """Load the optimizers and, last, the RNG streams of ``checkpoint`` (tensors are the caller's)."""
    try:
        for optimizer, part in zip(optimizers, unstack_optimizer_states(checkpoint.optimizer, optimizers)):
            optimizer.load_state_dict(part)
        set_rng_state(checkpoint.rng)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit these optimizers: {exc}") from None


def stack_optimizer_states(optimizers: list[torch.optim.Optimizer]) -> dict[str, Any]:
    """Several optimizers' state dicts as one (parameter indices renumbered in order)."""
    state, groups, offset = {}, [], 0
    for optimizer in optimizers:
        part = optimizer.state_dict()
        state.update({index + offset: value for index, value in part["state"].items()})
        groups += [{**group, "params": [p + offset for p in group["params"]]} for group in part["param_groups"]]
        offset += sum(len(group["params"]) for group in part["param_groups"])
    return {"state": state, "param_groups": groups}


def unstack_optimizer_states(stacked: dict[str, Any], optimizers: list[torch.optim.Optimizer]) -> list[dict[str, Any]]:
    """Inverse of :func:`stack_optimizer_states`, split by each optimizer's number of groups."""
    parts, offset, first_group = [], 0, 0
    for optimizer in optimizers:
        n_groups = len(optimizer.param_groups)
        groups = stacked["param_groups"][first_group:first_group + n_groups]
        n_params = sum(len(g["params"]) for g in groups)
        parts.append({
            "state": {int(i) - offset: v for i, v in stacked["state"].items() if offset <= int(i) < offset + n_params},
            "param_groups": [{**g, "params": [p - offset for p in g["params"]]} for g in groups],
        })
        offset += n_params
        first_group += n_groups
    return parts


def return_metrics(rollout, split: str = "eval") -> list[dict[str, Any]]:
    """Card metrics of an evaluation rollout: mean return (with its 95% CI), its std, mean length."""
    from zoo.bench import mean_ci95

    mean, lo, hi = mean_ci95(rollout.returns)
    common = {"dataset": rollout.env_id, "split": split, "episodes": int(len(rollout.returns)), "seed": rollout.seed}
    return [
        {"name": "mean_return", "value": round(mean, 4),
         "ci95": None if lo is None else [round(lo, 4), round(hi, 4)], **common},
        {"name": "std_return", "value": round(float(rollout.returns.std()), 4), **common},
        {"name": "mean_length", "value": round(float(rollout.lengths.mean()), 2), **common},
    ]


def navigation_metrics(policy, env_id: str, episodes: int, split: str = "eval") -> list[dict[str, Any]]:
    """Card metrics of a navigation policy over ``episodes`` seeded episodes (robotics.navigation): the success
    rate with its Wilson 95% interval, and SPL."""
    from robotics.navigation import policy_actor, run_navigation
    from zoo.bench_stats import wilson_ci95

    run = run_navigation(policy_actor(policy), env_id, episodes, EVAL_SEED)
    rate, lo, hi = wilson_ci95(int(run.successes.sum()), episodes)
    common = {"dataset": env_id, "split": split, "episodes": episodes, "seed": EVAL_SEED}
    return [{"name": "success", "value": round(rate, 4), "ci95": [round(lo, 4), round(hi, 4)], **common},
            {"name": "spl", "value": round(float(run.spl.mean()), 4), **common}]


def finish(policy, recipe, out_dir: Path, data_fingerprint: str, training: dict[str, Any]):
    """Evaluate ``policy`` on ``recipe.eval_episodes`` seeded episodes (navigation environments: also success
    and SPL), record it all in the card, save."""
    from robotics.navigation import is_navigation
    from zoo.recipes import RecipeResult

    policy.eval()
    rollout = policy.rollout(recipe.env_id, episodes=recipe.eval_episodes, seed=EVAL_SEED)
    metrics = return_metrics(rollout)
    if is_navigation(recipe.env_id):
        metrics += navigation_metrics(policy, recipe.env_id, recipe.eval_episodes)
    policy.card.metrics = metrics
    policy.card.provenance = {**recipe.provenance(data_fingerprint), "env_id": recipe.env_id, "training": training}
    if recipe.model:
        policy.card.provenance["finetune_from"] = recipe.model
    policy.save(out_dir)
    return RecipeResult(Path(out_dir), metrics)


def env_fingerprint(env_id: str) -> str:
    """What identifies an environment's data: its id, spaces and the gymnasium version."""
    import gymnasium

    from robotics.envs import describe_spaces, make_env
    from zoo.data import fingerprint

    env = make_env(env_id)
    spaces = describe_spaces(env)
    env.close()
    return fingerprint(env_id, json.dumps(spaces, sort_keys=True), gymnasium.__version__)

