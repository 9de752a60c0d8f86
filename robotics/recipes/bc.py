"""Behaviour cloning: supervised learning of a demonstration dataset's actions, on the shared Trainer.

Discrete actions: cross-entropy on the policy's logits. Continuous actions: mean
squared error of the Gaussian policy's mean. Vector observations go to an MLP whose
observation statistics are set from the dataset, so it sees normalised inputs; grid
observations with a mission (BabyAI, MiniGrid) to the FiLM policy of
robotics.models.film, a GRU mission encoder conditioning a CNN, as in the BabyAI
baseline; with ``memory=True`` a GRU over the steps follows it (the baseline's memory:
what was seen before, once out of view) and training runs on whole episodes, each from
a fresh state. ``augment=True`` trains grid policies under the task's symmetries
(robotics.augment: object colours permuted in the view and the mission alike, the world
mirrored with left and right turns swapped), drawn afresh each time an example is read.
The Trainer gives checkpoints and exact resume; the result is evaluated by rollouts in
the dataset's environment and saved as a loadable policy.

With ``dagger_rounds`` (DAgger, Ross et al. 2011: "A Reduction of Imitation Learning and
Structured Prediction to No-Regret Online Learning") the cloned policy then drives
``dagger_episodes`` episodes a round while the environment's scripted expert
(robotics.experts) labels every state it reaches; the policy trains on and on the growing
set. Cloning alone never sees the states its own mistakes lead to, so a small error
compounds (a BabyAI policy turning left, right, left, ... where the bot never hesitates);
DAgger's labels show the way back from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from zoo.recipes import RecipeResult, TrainerRecipe, bounded


class ActionHead(nn.Module):
    """What BC trains: the policy's actor on raw observations (logits, or the Gaussian mean)."""

    def __init__(self, policy_net: nn.Module):
        super().__init__()
        self.policy = policy_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.actor_outputs(obs)


class EpisodeActionHead(nn.Module):
    """What BC trains for a recurrent policy: its logits at every real step of a batch of whole episodes
    (``obs [B, L, obs_dim]`` padded after each episode's end, ``valid [B, L]``), the state zero at each
    episode's start. The encoder sees only real steps; logits come out in (episode, step) order."""

    def __init__(self, policy_net: nn.Module):
        super().__init__()
        self.policy = policy_net

    def forward(self, obs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        net = self.policy
        features = obs.new_zeros(*valid.shape, net.encoder.features)
        features[valid] = net.encoder(obs[valid])
        state, outputs = net.initial_state(len(obs)), []
        for step in range(obs.shape[1]):
            state = net.core(features[:, step], state)
            outputs.append(state)
        return net.actor(torch.stack(outputs, 1)[valid])


class Episodes(torch.utils.data.Dataset):
    """Whole episodes of a demonstration table: item ``i`` is ``({"obs": [L_i, obs_dim]}, actions [L_i])``."""

    def __init__(self, observations: torch.Tensor, actions: torch.Tensor, episode_index, rows: torch.Tensor):
        import numpy as np

        rows = rows.numpy()  # ascending, and the table is sorted by episode then frame: episodes are runs
        self.episodes = np.split(rows, np.flatnonzero(np.diff(episode_index[rows])) + 1) if len(rows) else []
        self.observations, self.actions = observations, actions

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, i: int):
        rows = torch.as_tensor(self.episodes[i])
        return {"obs": self.observations[rows]}, self.actions[rows]


class Augmented(torch.utils.data.Dataset):
    """A training set of frames ``(obs, action)`` or of episodes (:class:`Episodes`) under random grid
    symmetries (robotics.augment): a fresh draw every time an item is read, one per episode."""

    def __init__(self, base: torch.utils.data.Dataset, symmetries):
        self.base, self.symmetries = base, symmetries

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        inputs, actions = self.base[i]
        if isinstance(inputs, dict):  # an episode: all its steps under the same transform
            obs, actions = self.symmetries(inputs["obs"], actions, per_row=False)
            return {"obs": obs}, actions
        obs, actions = self.symmetries(inputs[None], actions[None])
        return obs[0], actions[0]


def pad_episodes(batch):
    """Episodes of different lengths → ``{"obs": [B, L, obs_dim], "valid": [B, L]}`` and the real steps'
    actions in (episode, step) order: what :class:`EpisodeActionHead` takes and returns."""
    observations = nn.utils.rnn.pad_sequence([inputs["obs"] for inputs, _ in batch], batch_first=True)
    lengths = torch.tensor([len(actions) for _, actions in batch])
    valid = torch.arange(observations.shape[1])[None] < lengths[:, None]
    return {"obs": observations, "valid": valid}, torch.cat([actions for _, actions in batch])


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs, targets)


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    return {"action_accuracy": float((outputs.argmax(-1) == targets).float().mean())}


@dataclass
class BCRecipe(TrainerRecipe):
    """Clone the actions of ``data`` (a dataset id such as ``robotics/cartpole-v1.ppo-expert``, or a
    dataset directory written by :func:`robotics.datasets.record`); ``val_fraction`` of the episodes
    are held out to pick the best epoch. ``train.device`` also holds the policy."""

    name: ClassVar[str] = "bc"
    cli_options: ClassVar[Mapping[str, str]] = {"--env": "env_id"}
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "epochs": 20, "batch_size": 256, "weight_decay": 0.0, "device": "cpu", "clip_grad_norm": None,
    }

    data: str = "robotics/cartpole-v1.ppo-expert"
    env_id: str | None = None  # default: the dataset's environment
    model: str | None = None
    pretrained: bool = True
    val_fraction: float = bounded(0.1, "[0, 1)")
    hidden: tuple[int, ...] = bounded((64, 64), "[1, inf)")
    activation: str = "tanh"
    channels: int = bounded(128, "[1, inf)")  # width of the FiLM CNN, for grid observations with a mission
    memory: bool = False  # grid observations: a GRU over the steps after the FiLM CNN, trained on whole episodes
    augment: bool = False  # grid observations: train under random colour permutations and mirrorings
    core_size: int = bounded(128, "[1, inf)")  # that GRU's width
    episodes: int | None = bounded(None, "[1, inf)")  # clone only the dataset's first N episodes
    dagger_rounds: int = bounded(0, "[0, inf)")  # rounds of learner-driven, expert-labelled episodes after cloning
    dagger_episodes: int = bounded(500, "[1, inf)")  # episodes a round; round r's episode i is reset with
    dagger_seed: int = bounded(100_000, "[0, 4294967296)")  # dagger_seed + (r - 1) * dagger_episodes + i
    dagger_epochs: int | None = bounded(None, "[1, inf)")  # each round's training epochs (default: train.epochs)
    eval_episodes: int = bounded(10, "[1, inf)")
    threads: int = bounded(1, "[1, inf)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        """Train on the dataset, evaluate by rollouts, and save a loadable policy to ``out_dir``."""
        from robotics.tasks import torch_threads

        with torch_threads(self.threads):
            return self._train(Path(out_dir), resume, progress)

    def _train(self, out_dir: Path, resume: bool | str, progress: bool) -> RecipeResult:
        from backends.seed import seed_everything
        from robotics import datasets
        from robotics.envs import check_env
        from robotics.recipes.common import finish, make_policy
        from zoo.errors import InputError

        demos = datasets.load(self._data_path())
        if self.env_id is None:
            self.env_id = demos.env_id
        seed_everything(self.seed)
        policy = make_policy(self.env_id, "bc", self.model, self.pretrained, self.train.device,
                             hidden=self.hidden, activation=self.activation, channels=self.channels,
                             memory=self.memory, core_size=self.core_size)
        check_env(policy.card, demos.env_id, same_spaces_ok=True)
        if self.memory and not getattr(policy.net, "recurrent", False):
            raise InputError(f"memory=True needs a recurrent policy; {policy.card.id} is a {policy.card.architecture} "
                             "(leave out the model to train a fresh one with memory)")
        if policy.net.discrete != demos.discrete:
            raise InputError(f"{self.data} has {'discrete' if demos.discrete else 'continuous'} actions, "
                             f"policy {policy.card.id} the other kind")
        if self.dagger_rounds:
            from robotics.experts import expert_for

            expert_for(self.env_id)  # InputError now, not after cloning, where no scripted expert would label
        symmetries = self._symmetries() if self.augment else None  # InputError now for observations without any
        labelled = _first_episodes(demos, self.episodes)
        if hasattr(policy.net, "obs_norm"):  # an MLP's inputs; the FiLM policy embeds grid and mission indices
            observations = torch.as_tensor(labelled[0])
            policy.net.obs_norm.set_stats(observations.mean(0), observations.var(0), len(observations))
        result = self._clone(policy, labelled, out_dir, resume, progress, self.train.epochs, symmetries)
        training = {"epochs": self.train.epochs, "best": result.best_metrics, "frames": len(labelled[1]),
                    "episodes": int(labelled[2].max() + 1),
                    "dataset_mean_return": float(demos.episode_returns().mean())}
        if self.dagger_rounds:
            labelled, training["dagger"] = self._dagger(policy, labelled, out_dir, resume, progress, symmetries)
        return finish(policy, self, out_dir, demos.meta["fingerprint"], training)

    def _clone(self, policy, labelled, out_dir: Path, resume: bool | str, progress: bool, epochs: int, symmetries):
        """Train ``policy`` on ``(observations, actions, episode_index)`` with the Trainer in ``out_dir``, under
        ``symmetries`` if given; the best epoch's weights are in ``policy.net`` afterwards."""
        from dataclasses import replace

        from zoo.train import Trainer

        observations, actions = torch.as_tensor(labelled[0]), torch.as_tensor(labelled[1])
        episode_index = labelled[2]
        train_rows, val_rows = _split_by_episode(episode_index, self.val_fraction, self.seed)
        if getattr(policy.net, "recurrent", False):  # batches of whole episodes; batch_size counts episodes
            train = Episodes(observations, actions, episode_index, train_rows)
            val = Episodes(observations, actions, episode_index, val_rows) if len(val_rows) else None
            head, collate = EpisodeActionHead(policy.net), pad_episodes
        else:
            train = torch.utils.data.TensorDataset(observations[train_rows], actions[train_rows])
            val = torch.utils.data.TensorDataset(observations[val_rows], actions[val_rows]) if len(val_rows) else None
            head, collate = ActionHead(policy.net), None
        if symmetries is not None:
            train = Augmented(train, symmetries)
        discrete = policy.net.discrete
        trainer = Trainer(
            head,
            train,
            val,
            config=replace(self.train_config(progress), epochs=epochs),
            out_dir=out_dir,
            loss_fn=nn.functional.cross_entropy if discrete else _mse,
            metrics_fn=_accuracy if discrete else None,
            collate_fn=collate,
        )
        return trainer.fit(resume=resume)

    def _dagger(self, policy, labelled, out_dir: Path, resume: bool | str, progress: bool, symmetries):
        """DAgger's rounds, each in ``out_dir/dagger/round-R``: its learner-driven episodes (``demos``, a dataset)
        and its training run (``train``). A resumed run records no round twice and trains on from the last
        checkpoint. Returns the labelled set grown by every round, and what the card records of them."""
        from robotics import datasets

        rounds = []
        for round_number in range(1, self.dagger_rounds + 1):
            where = out_dir / "dagger" / f"round-{round_number}"
            data = where / "demos"
            if not (data / datasets.META_FILE).is_file():
                policy.net.eval()
                with torch.no_grad():
                    seed = self.dagger_seed + (round_number - 1) * self.dagger_episodes
                    datasets.record_expert(self.env_id, data, episodes=self.dagger_episodes, seed=seed,
                                           driver=policy, overwrite=True)
            driven = datasets.load(data)
            labelled = _concatenated(labelled, driven)
            result = self._clone(policy, labelled, where / "train", bool(resume), progress,
                                 self.dagger_epochs or self.train.epochs, symmetries)
            rounds.append({"round": round_number, "episodes": int(driven.meta["episodes"]), "frames": len(driven),
                           "driver_success": driven.meta["success_rate"], "fingerprint": driven.meta["fingerprint"],
                           "best": result.best_metrics})
        return labelled, {"rounds": rounds, "labelled_episodes": int(labelled[2].max() + 1),
                          "labelled_frames": len(labelled[1])}

    def _symmetries(self):
        """The grid symmetries of the environment's observations (InputError for other kinds)."""
        from robotics.augment import GridSymmetries
        from robotics.envs import make_env
        from robotics.observations import observation_spec

        return GridSymmetries(observation_spec(make_env(self.env_id).observation_space))

    def _data_path(self) -> Path:
        """A registered dataset id → its directory (recorded on first use); else the path itself."""
        from zoo.registry import get_registry, resolve_ref

        registry = get_registry()
        if self.data in registry.datasets:
            return resolve_ref(registry.dataset(self.data).loader)()
        return Path(self.data)


def _first_episodes(demos, episodes: int | None) -> tuple:
    """``(observations, actions, episode_index)`` of the dataset's first ``episodes`` episodes (all for None);
    InputError if it has fewer."""
    from zoo.errors import InputError

    available = int(demos.episode_index.max()) + 1
    if episodes is None:
        return demos.observations, demos.actions, demos.episode_index
    if episodes > available:
        raise InputError(f"episodes={episodes} asks for more episodes than the dataset has ({available})")
    rows = demos.episode_index < episodes
    return demos.observations[rows], demos.actions[rows], demos.episode_index[rows]


def _concatenated(labelled: tuple, more) -> tuple:
    """``labelled`` and the demonstrations ``more`` as one ``(observations, actions, episode_index)``, ``more``'s
    episodes numbered after ``labelled``'s."""
    import numpy as np

    first_free = int(labelled[2].max()) + 1
    return (np.concatenate([labelled[0], more.observations]), np.concatenate([labelled[1], more.actions]),
            np.concatenate([labelled[2], more.episode_index + first_free]))


def _split_by_episode(episode_index, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of training and held-out episodes (whole episodes, so frames do not leak)."""
    import numpy as np

    episodes = int(episode_index.max()) + 1
    held_out = int(round(episodes * val_fraction)) if episodes > 1 else 0
    val_episodes = np.random.default_rng(seed).permutation(episodes)[:held_out]
    is_val = np.isin(episode_index, val_episodes)
    return torch.as_tensor(np.flatnonzero(~is_val)), torch.as_tensor(np.flatnonzero(is_val))
