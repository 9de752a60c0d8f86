"""Recurrent PPO: PPO with a GRU core, for partially observed environments (MiniGrid's egocentric grids).

Read top to bottom like :mod:`robotics.recipes.ppo`, with what memory changes:

- collecting, the GRU state is carried from step to step in each environment and zeroed
  where an episode starts; the state at the start of every ``sequence_length``-step piece
  of the rollout is stored;
- updating, the rollout is cut into those pieces (:func:`to_sequences`) and minibatches of
  whole sequences are unrolled from their stored states, with the episode-start flags
  inside them resetting the state (truncated backpropagation through time);
- advantages (GAE) and the clipped loss are PPO's own (:func:`robotics.recipes.ppo.gae`,
  :func:`robotics.recipes.ppo.clipped_loss`); a time limit bootstraps from the value of the
  last observation, as there.

The observations' encoder (a small CNN for grids) is declared per environment
(robotics.observations). Defaults follow rl-starter-files' MiniGrid PPO (16 envs × 128 steps,
lr 1e-3, 4 epochs, entropy 0.01, γ 0.99, λ 0.95) and rl-baselines3-zoo's MiniGrid entries
(γ 0.99, λ 0.95, clip 0.2), with 16-step sequences; ``total_steps`` is what we expect
DoorKey-8x8 to need.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

from robotics.recipes.ppo import PPORecipe, clipped_loss, gae, gradient_step
from zoo.errors import InputError
from zoo.recipes import Recipe, RecipeResult, bounded


def to_sequences(rollout, sequence_length: int):
    """A rollout ``[T, N, ...]`` cut into ``T / L`` pieces per env: ``[L, (T / L) * N, ...]``, time first;
    sequence ``k * N + n`` holds steps ``k*L .. k*L + L - 1`` of env ``n``."""
    steps, envs, *rest = rollout.shape
    pieces = rollout.reshape(steps // sequence_length, sequence_length, envs, *rest).transpose(0, 1)
    return pieces.reshape(sequence_length, (steps // sequence_length) * envs, *rest)


def rollout_state(checkpoint, shape: tuple[int, ...]):
    """The GRU states ``shape`` and episode-start flags of the envs a checkpoint was written in;
    CheckpointError unless they fit."""
    import torch

    from zoo.errors import CheckpointError

    state, starts = checkpoint.model.get("rollout_state"), checkpoint.state["episode_starts"]
    if state is None or tuple(state.shape) != shape or len(starts) != shape[0]:
        raise CheckpointError(f"checkpoint {checkpoint.path} holds no rollout_state of shape {shape} with "
                              f"{shape[0]} episode_starts for these envs and this policy")
    return state, torch.as_tensor(starts, dtype=torch.float32)


@dataclass
class RecurrentPPORecipe(Recipe):
    """Recurrent PPO on ``env_id`` (Discrete actions); ``model`` (an id or directory) continues a trained
    recurrent policy. ``checkpoint_every_steps`` writes a resumable checkpoint."""

    name: ClassVar[str] = "recurrent_ppo"
    cli_options: ClassVar[Mapping[str, str]] = {"--env": "env_id"}

    seed: int = bounded(0, "[0, 4294967296)")
    keep_checkpoints: int = bounded(1, "[1, inf)")  # newest first in OUT/checkpoints; 1 is all a resume needs
    env_id: str = "MiniGrid-DoorKey-8x8-v0"
    model: str | None = None
    pretrained: bool = True
    total_steps: int = bounded(1_000_000, "[1, inf)")
    num_envs: int = bounded(16, "[1, inf)")
    num_steps: int = bounded(128, "[1, inf)")
    sequence_length: int = bounded(16, "[1, inf)")  # steps of backpropagation through time
    minibatch_size: int = bounded(512, "[1, inf)")  # transitions: minibatch_size / sequence_length sequences
    learning_rate: float = bounded(1e-3, "(0, inf)")
    anneal_lr: bool = True
    gamma: float = bounded(0.99, "[0, 1]")
    gae_lambda: float = bounded(0.95, "[0, 1]")
    update_epochs: int = bounded(4, "[1, inf)")
    clip_coef: float = bounded(0.2, "(0, inf)")
    ent_coef: float = bounded(0.01, "[0, inf)")
    vf_coef: float = bounded(0.5, "[0, inf)")
    max_grad_norm: float = bounded(0.5, "(0, inf)")
    core_size: int = bounded(128, "[1, 4096]")
    hidden: tuple[int, ...] = bounded((64,), "[1, inf)")
    eval_episodes: int = bounded(10, "[1, inf)")
    checkpoint_every_steps: int = bounded(100_000, "[0, inf)")  # 0: never
    device: str = "cpu"
    threads: int = bounded(1, "[1, inf)")

    run = PPORecipe.run  # train on one CPU thread; ``stop(step, policy)`` may end training after any iteration

    def __post_init__(self):
        super().__post_init__()
        if self.num_steps % self.sequence_length or self.minibatch_size % self.sequence_length:
            raise InputError(f"num_steps ({self.num_steps}) and minibatch_size ({self.minibatch_size}) must be "
                             f"multiples of sequence_length ({self.sequence_length}): updates take whole sequences")

    def _train(self, out_dir: Path, resume: bool | str, progress: bool, stop) -> RecipeResult:
        import torch

        from robotics.recipes.common import close_run, end_iteration, open_run, restore_run

        checkpoint, envs, policy, log = open_run(
            self, out_dir, resume, "recurrent_ppo", {"iteration": int, "episode_starts": list}, progress,
            hidden=self.hidden, core_size=self.core_size)
        if not policy.recurrent:
            raise InputError(f"recurrent PPO trains recurrent policies; {self.model} keeps no state: use ppo")
        device, net = torch.device(self.device), policy.net
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate, eps=1e-5)
        batch_size, pieces = self.num_envs * self.num_steps, self.num_steps // self.sequence_length
        iterations = max(1, self.total_steps // batch_size)
        # The GRU state of each env's running episode, and whether its current observation starts an episode.
        state, starts = net.initial_state(self.num_envs), torch.ones(self.num_envs, device=device)
        if checkpoint is not None:
            net.load_state_dict({k[len("policy."):]: v for k, v in checkpoint.model.items() if k.startswith("policy.")})
            state, starts = rollout_state(checkpoint, tuple(state.shape))
            state, starts = state.to(device), starts.to(device)
        start, recent = restore_run(checkpoint, envs, log, [optimizer])

        obs_buf = torch.zeros((self.num_steps, self.num_envs, envs.obs.shape[1]), device=device)
        actions_buf = torch.zeros((self.num_steps, self.num_envs), device=device, dtype=torch.long)
        logprobs_buf, rewards_buf, dones_buf, starts_buf, values_buf = torch.zeros((5, self.num_steps, self.num_envs),
                                                                                   device=device)
        sequence_states = torch.zeros((pieces, self.num_envs, *net.state_shape), device=device)

        for iteration in range(start, iterations):
            remaining = 1.0 - iteration / iterations  # anneal the learning rate linearly to 0 over the run
            optimizer.param_groups[0]["lr"] = self.learning_rate * (remaining if self.anneal_lr else 1.0)

            # 1. Collect num_steps × num_envs transitions, carrying the GRU state; keep it at each sequence start.
            for t in range(self.num_steps):
                if t % self.sequence_length == 0:
                    sequence_states[t // self.sequence_length] = state
                obs = torch.as_tensor(envs.obs, device=device)
                with torch.no_grad():
                    core, state = net.unroll(obs[None], state, starts[None])
                    distribution = net.distribution(core[0])
                    action = distribution.sample()
                    logprobs_buf[t] = distribution.log_prob(action)
                    values_buf[t] = net.value(core[0])
                obs_buf[t], actions_buf[t], starts_buf[t] = obs, action, starts
                _, rewards, terminated, truncated, final_obs, finished = envs.step(action.cpu().numpy())
                rewards = torch.as_tensor(rewards, device=device)
                if truncated.any():  # a time limit is not a terminal state: bootstrap from the last observation
                    cut = torch.as_tensor(truncated, device=device)
                    with torch.no_grad():
                        last, _ = net.unroll(torch.as_tensor(final_obs[truncated], device=device)[None], state[cut],
                                             torch.zeros(1, int(cut.sum()), device=device))
                        rewards[cut] += self.gamma * net.value(last[0])
                rewards_buf[t] = rewards
                dones_buf[t] = torch.as_tensor(terminated | truncated, device=device, dtype=torch.float32)
                starts = dones_buf[t].clone()
                recent = (recent + [ret for ret, _ in finished])[-20:]

            # 2. Generalised advantage estimation, bootstrapped from the value after the rollout.
            with torch.no_grad():
                core, _ = net.unroll(torch.as_tensor(envs.obs, device=device)[None], state, starts[None])
                advantages = gae(rewards_buf, values_buf, dones_buf, net.value(core[0]), self.gamma, self.gae_lambda)
                returns = advantages + values_buf

            # 3. Clipped-surrogate updates over minibatches of whole sequences, each unrolled from its stored state.
            s_obs, s_starts, s_actions, s_logprobs, s_advantages, s_returns = (
                to_sequences(b, self.sequence_length)
                for b in (obs_buf, starts_buf, actions_buf, logprobs_buf, advantages, returns))
            s_states = sequence_states.reshape(pieces * self.num_envs, *net.state_shape)
            per_minibatch = self.minibatch_size // self.sequence_length
            for _ in range(self.update_epochs):
                order = torch.randperm(pieces * self.num_envs, device=device)
                for first in range(0, len(order), per_minibatch):
                    mb = order[first:first + per_minibatch]
                    core, _ = net.unroll(s_obs[:, mb], s_states[mb], s_starts[:, mb])
                    core = core.flatten(0, 1)  # [L * B, core], in the order of the flattened sequences below
                    loss = clipped_loss(net.distribution(core), net.value(core), s_actions[:, mb].flatten(),
                                        s_logprobs[:, mb].flatten(), s_advantages[:, mb].flatten(),
                                        s_returns[:, mb].flatten(), self.clip_coef, self.ent_coef, self.vf_coef)
                    gradient_step(optimizer, loss, net.parameters(), self.max_grad_norm)

            step, done = end_iteration(
                self, out_dir, policy, log, iteration=iteration, iterations=iterations, batch_size=batch_size,
                recent=recent, loss=loss, stop=stop, checkpoint=lambda: (
                    {**{f"policy.{k}": v for k, v in net.state_dict().items()}, "rollout_state": state}, [optimizer],
                    {"envs": envs.state_dict(), "episode_starts": starts.tolist()}))
            if done:
                break

        return close_run(envs, policy, self, out_dir, step, iteration + 1)
