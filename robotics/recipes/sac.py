"""Soft actor-critic (Haarnoja et al. 2018), continuous actions, with automatic entropy tuning.

Read top to bottom like CleanRL's ``sac_continuous_action.py``: one environment,
a replay buffer, uniform random actions for ``learning_starts`` steps, then per
environment step one critic update (twin Q, clipped double-Q target), every
``policy_frequency`` steps as many actor and temperature updates, and a Polyak
update of the target critic. The twin critic runs as one batched network.
With ``her`` (goal-conditioned environments, e.g. the sparse PointMaze), the replay
buffer relabels goals in hindsight (robotics.recipes.her).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Mapping

import numpy as np

from zoo.recipes import Recipe, RecipeResult, bounded


class ReplayBuffer:
    """Transitions in preallocated tensors; the oldest are overwritten once ``capacity`` is reached."""

    FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated")

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device):
        import torch

        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = torch.zeros((capacity, obs_dim), device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=device)
        self.actions = torch.zeros((capacity, action_dim), device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.terminated = torch.zeros(capacity, device=device)

    def add(self, obs, next_obs, action, reward, terminated) -> None:
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i] = obs, next_obs, action
        self.rewards[i], self.terminated[i] = reward, terminated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int):
        import torch

        index = torch.randint(0, self.size, (batch_size,), device=self.obs.device)
        return (self.obs[index], self.actions[index], self.rewards[index], self.next_obs[index],
                self.terminated[index])

    def tensors(self) -> dict:
        """The filled part, for a checkpoint."""
        return {f"buffer.{name}": getattr(self, name)[:self.size] for name in self.FIELDS}

    def load(self, tensors: dict, size: int, pos: int) -> None:
        for name in self.FIELDS:
            getattr(self, name)[:size] = tensors[f"buffer.{name}"]
        self.size, self.pos = size, pos


@dataclass
class SACRecipe(Recipe):
    """SAC on ``env_id``; ``model`` (an id or directory) continues a trained policy (its critic too).

    ``alpha`` is the initial temperature, tuned towards ``-action_dim`` entropy when
    ``autotune``. ``checkpoint_every_steps`` writes a resumable checkpoint, replay buffer included.
    ``her`` replays each sampled transition, with probability ``her_future_goals / (her_future_goals + 1)``,
    towards a goal achieved later in its episode.
    """

    name: ClassVar[str] = "sac"
    cli_options: ClassVar[Mapping[str, str]] = {"--env": "env_id"}

    seed: int = bounded(0, "[0, 4294967296)")
    keep_checkpoints: int = bounded(1, "[1, inf)")  # newest first in OUT/checkpoints; 1 is all a resume needs
    env_id: str = "Pendulum-v1"
    model: str | None = None
    pretrained: bool = True
    total_steps: int = bounded(20_000, "[1, inf)")
    buffer_size: int = bounded(1_000_000, "[1, inf)")
    learning_starts: int = bounded(1_000, "[0, inf)")
    batch_size: int = bounded(256, "[1, inf)")
    gamma: float = bounded(0.99, "[0, 1]")
    tau: float = bounded(0.005, "(0, 1]")
    policy_lr: float = bounded(1e-3, "(0, inf)")
    q_lr: float = bounded(1e-3, "(0, inf)")
    policy_frequency: int = bounded(1, "[1, inf)")
    alpha: float = bounded(1.0, "(0, inf)")
    autotune: bool = True
    her: bool = False
    her_future_goals: int = bounded(4, "[1, inf)")
    hidden: tuple[int, ...] = bounded((256, 256), "[1, inf)")
    eval_episodes: int = bounded(10, "[1, inf)")
    checkpoint_every_steps: int = bounded(10_000, "[0, inf)")  # 0: never
    log_every_steps: int = bounded(1_000, "[1, inf)")
    device: str = "cpu"
    threads: int = bounded(1, "[1, inf)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True,
            stop: Callable[[int, object], bool] | None = None) -> RecipeResult:
        """Train, evaluate and save a loadable policy to ``out_dir``.

        ``stop(step, policy)``, called every ``log_every_steps``, ends training early when it returns True.
        """
        from robotics.tasks import torch_threads

        with torch_threads(self.threads):  # small networks train fastest on one CPU thread
            return self._train(Path(out_dir), resume, progress, stop)

    def _train(self, out_dir: Path, resume: bool | str, progress: bool, stop) -> RecipeResult:
        import torch

        from backends.seed import seed_everything
        from robotics.envs import SyncEnvs
        from robotics.recipes.common import (env_fingerprint, finish, load_state_of, make_policy, restore_training,
                                             resume_checkpoint, save_training)
        from zoo.runs import MetricsLog

        out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = resume_checkpoint(out_dir, resume, self.to_dict(), {"step": int, "buffer_size": int, "buffer_pos": int})
        seed_everything(self.seed)
        device = torch.device(self.device)
        envs = SyncEnvs(self.env_id, 1, self.seed)
        policy = make_policy(self.env_id, "sac", self.model, self.pretrained, self.device,
                             hidden=self.hidden, activation="relu")
        net = policy.net
        target_critic = copy.deepcopy(net.critic).requires_grad_(False)
        actor_params = [p for name, p in net.named_parameters() if name.startswith("actor_")]
        actor_optimizer = torch.optim.Adam(actor_params, lr=self.policy_lr, fused=True)
        critic_optimizer = torch.optim.Adam(net.critic.parameters(), lr=self.q_lr, fused=True)
        action_dim = envs.single_action_space.shape[0]
        target_entropy = -float(action_dim)
        log_alpha = torch.full((), float(np.log(self.alpha)), device=device, requires_grad=True)
        alpha_optimizer = torch.optim.Adam([log_alpha], lr=self.q_lr)
        optimizers = [actor_optimizer, critic_optimizer, alpha_optimizer]
        buffer = self._replay_buffer(envs, action_dim, device)
        low = torch.as_tensor(envs.single_action_space.low, device=device)
        high = torch.as_tensor(envs.single_action_space.high, device=device)
        log = MetricsLog(out_dir, echo=progress)
        start, recent = 0, []
        if checkpoint is None:
            log.restart([])
        else:
            tensors = checkpoint.model
            net.load_state_dict({k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")})
            target_critic.load_state_dict({k[len("target."):]: v for k, v in tensors.items() if k.startswith("target.")})
            with torch.no_grad():
                log_alpha.copy_(tensors["log_alpha"])
            buffer.load(tensors, checkpoint.state["buffer_size"], checkpoint.state["buffer_pos"])
            load_state_of(envs, checkpoint, "envs")
            start, recent = checkpoint.state["step"], checkpoint.state["recent_returns"]
            log.restart(checkpoint.state["history"])
            restore_training(checkpoint, optimizers)

        alpha = log_alpha.detach().exp()
        obs = torch.as_tensor(envs.obs, device=device)
        for step in range(start, self.total_steps):
            # 1. Act: uniform random until learning starts, then a sample from the policy.
            with torch.no_grad():
                if step < self.learning_starts:
                    action = low + (high - low) * torch.rand(action_dim, device=device)
                else:
                    action = net.sample(net.obs_norm(obs))[0][0]
            next_obs, reward, terminated, truncated, final_obs, finished = envs.step(action.cpu().numpy()[None])
            # The true next observation (final_obs) is stored even when the episode was reset.
            transition = (obs[0], torch.as_tensor(final_obs[0], device=device), action, float(reward[0]),
                          float(terminated[0]))
            if self.her:  # the buffer also tracks episodes, to draw hindsight goals from their futures
                buffer.add(*transition, episode_done=bool(terminated[0] or truncated[0]))
            else:
                buffer.add(*transition)
            obs = torch.as_tensor(next_obs, device=device)
            recent = (recent + [ret for ret, _ in finished])[-20:]

            if step >= self.learning_starts:
                b_obs, b_actions, b_rewards, b_next_obs, b_terminated = buffer.sample(self.batch_size)
                x, next_x = net.obs_norm(b_obs), net.obs_norm(b_next_obs)
                # 2. Critic: regress both Qs onto the clipped double-Q soft target.
                with torch.no_grad():
                    next_actions, next_logprob = net.sample(next_x)
                    next_q = target_critic(next_x, next_actions).min(0).values - alpha * next_logprob
                    target_q = b_rewards + self.gamma * (1.0 - b_terminated) * next_q
                q_loss = (net.critic(x, b_actions) - target_q).square().mean(1).sum()
                critic_optimizer.zero_grad(set_to_none=True)
                q_loss.backward()
                critic_optimizer.step()

                # 3. Actor and temperature (delayed: policy_frequency updates every policy_frequency steps).
                if step % self.policy_frequency == 0:
                    net.critic.requires_grad_(False)
                    for _ in range(self.policy_frequency):
                        actions, logprob = net.sample(x)
                        actor_loss = (alpha * logprob - net.critic(x, actions).min(0).values).mean()
                        actor_optimizer.zero_grad(set_to_none=True)
                        actor_loss.backward()
                        actor_optimizer.step()
                        if self.autotune:
                            alpha_loss = (-log_alpha.exp() * (logprob.detach() + target_entropy)).mean()
                            alpha_optimizer.zero_grad(set_to_none=True)
                            alpha_loss.backward()
                            alpha_optimizer.step()
                            alpha = log_alpha.detach().exp()
                    net.critic.requires_grad_(True)

                # 4. Polyak-average the target critic towards the critic.
                with torch.no_grad():
                    torch._foreach_lerp_(list(target_critic.parameters()), list(net.critic.parameters()), self.tau)

            done = step + 1 == self.total_steps
            if (step + 1) % self.log_every_steps == 0:
                if recent:
                    log.log({"step": step + 1, "mean_return": float(np.mean(recent)), "alpha": alpha.item()})
                done = (stop is not None and stop(step + 1, policy)) or done
            every = self.checkpoint_every_steps
            if not done and every and (step + 1) % every == 0:
                tensors = {**{f"policy.{k}": v for k, v in net.state_dict().items()},
                           **{f"target.{k}": v for k, v in target_critic.state_dict().items()},
                           "log_alpha": log_alpha.detach(), **buffer.tensors()}
                save_training(out_dir, step + 1, tensors, optimizers, {
                    "buffer_size": buffer.size, "buffer_pos": buffer.pos, "recent_returns": recent,
                    "envs": envs.state_dict(), "history": log.history, "recipe": self.to_dict()}, keep=self.keep_checkpoints)
            if done:
                break

        envs.close()
        return finish(policy, self, out_dir, env_fingerprint(self.env_id),
                      {"env_steps": step + 1, "final_alpha": alpha.item()})

    def _replay_buffer(self, envs, action_dim: int, device) -> ReplayBuffer:
        """A plain replay buffer, or with ``her`` one relabelling the goals of ``envs``' goal ``Dict``."""
        capacity, obs_dim = min(self.buffer_size, self.total_steps), envs.obs.shape[1]
        if not self.her:
            return ReplayBuffer(capacity, obs_dim, action_dim, device)
        from robotics.recipes.her import HerReplayBuffer
        from zoo.errors import InputError

        spec = envs.observation_spec
        if spec.kind != "goal":
            raise InputError(f"her=True needs a goal-conditioned environment (a Dict observation with observation, "
                             f"achieved_goal and desired_goal); {self.env_id} has {spec.kind} observations")
        slices, env = spec.slices(), envs.envs[0].unwrapped
        return HerReplayBuffer(capacity, obs_dim, action_dim, device, achieved=slices["achieved_goal"],
                               desired=slices["desired_goal"], compute_reward=env.compute_reward,
                               compute_terminated=env.compute_terminated, future_goals=self.her_future_goals)
