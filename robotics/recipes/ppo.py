"""Proximal policy optimisation (Schulman et al. 2017), discrete or continuous actions.

Read top to bottom like CleanRL's ``ppo.py`` / ``ppo_continuous_action.py``:
collect ``num_steps`` transitions in each of ``num_envs`` environments, compute
GAE advantages, then ``update_epochs`` passes of clipped-surrogate minibatch
updates. Defaults are rl-baselines3-zoo's CartPole-v1 hyper-parameters.
Differences from CleanRL, as in Stable-Baselines3: a truncated episode (time
limit) bootstraps from the value of its last observation, and the clip range
may anneal with the learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Mapping

import numpy as np

from zoo.recipes import Recipe, RecipeResult, bounded


class RewardScaler:
    """Divides rewards by the running standard deviation of the discounted return
    (gymnasium's ``NormalizeReward``); its state is JSON, for checkpoints."""

    def __init__(self, num_envs: int, gamma: float, eps: float = 1e-8):
        self.gamma, self.eps = gamma, eps
        self.returns = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        batch_mean, batch_var, n = float(self.returns.mean()), float(self.returns.var()), len(rewards)
        total = self.count + n
        delta = batch_mean - self.mean
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.mean, self.count = self.mean + delta * n / total, total
        self.returns[done] = 0.0
        return (rewards / np.sqrt(self.var + self.eps)).astype(np.float32)

    def state_dict(self) -> dict:
        return {"returns": self.returns.tolist(), "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.returns = np.asarray(state["returns"], dtype=np.float64)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


def gae(rewards, values, dones, next_value, gamma: float, gae_lambda: float):
    """Generalised advantage estimates ``[T, N]`` of a rollout (``dones[t]``: the episode ended after step
    ``t``), bootstrapped from ``next_value``, the value of the observation after the rollout."""
    import torch

    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        following = next_value if t == len(rewards) - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * not_done - values[t]
        last_gae = delta + gamma * gae_lambda * not_done * last_gae
        advantages[t] = last_gae
    return advantages


def clipped_loss(distribution, values, actions, old_logprobs, advantages, returns, clip_coef: float,
                 ent_coef: float, vf_coef: float):
    """PPO's loss on one minibatch: the clipped surrogate on (normalised) advantages, the value regression
    and the entropy bonus."""
    import torch

    ratio = (distribution.log_prob(actions) - old_logprobs).exp()
    if len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    v_loss = 0.5 * (values - returns).square().mean()
    entropy = distribution.entropy().mean()
    return pg_loss - ent_coef * entropy + vf_coef * v_loss


def gradient_step(optimizer, loss, parameters, max_grad_norm: float) -> None:
    """One optimizer step on ``loss``, the gradient's global norm clipped to ``max_grad_norm``."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()


@dataclass
class PPORecipe(Recipe):
    """PPO on ``env_id``; ``model`` (an id or directory) continues a trained policy.

    ``normalize_observations`` keeps running observation statistics in the policy's
    buffers (saved with it); ``normalize_rewards`` scales rewards by the running
    std of the discounted return (training only). ``checkpoint_every_steps`` writes a resumable checkpoint.
    """

    name: ClassVar[str] = "ppo"
    cli_options: ClassVar[Mapping[str, str]] = {"--env": "env_id"}

    seed: int = bounded(0, "[0, 4294967296)")
    keep_checkpoints: int = bounded(1, "[1, inf)")  # newest first in OUT/checkpoints; 1 is all a resume needs
    env_id: str = "CartPole-v1"
    model: str | None = None
    pretrained: bool = True
    total_steps: int = bounded(100_000, "[1, inf)")
    num_envs: int = bounded(8, "[1, inf)")
    num_steps: int = bounded(32, "[1, inf)")
    learning_rate: float = bounded(1e-3, "(0, inf)")
    anneal_lr: bool = True
    gamma: float = bounded(0.98, "[0, 1]")
    gae_lambda: float = bounded(0.8, "[0, 1]")
    update_epochs: int = bounded(20, "[1, inf)")
    minibatch_size: int = bounded(256, "[1, inf)")
    clip_coef: float = bounded(0.2, "(0, inf)")
    anneal_clip: bool = True
    ent_coef: float = bounded(0.0, "[0, inf)")
    vf_coef: float = bounded(0.5, "[0, inf)")
    max_grad_norm: float = bounded(0.5, "(0, inf)")
    normalize_observations: bool = False
    normalize_rewards: bool = False
    hidden: tuple[int, ...] = bounded((64, 64), "[1, inf)")
    activation: str = "tanh"
    log_std_init: float = bounded(0.0, "(-inf, inf)")
    eval_episodes: int = bounded(10, "[1, inf)")
    checkpoint_every_steps: int = bounded(20_000, "[0, inf)")  # 0: never
    device: str = "cpu"
    threads: int = bounded(1, "[1, inf)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True,
            stop: Callable[[int, object], bool] | None = None) -> RecipeResult:
        """Train, evaluate and save a loadable policy to ``out_dir``.

        ``stop(step, policy)``, called after each iteration, ends training early when it returns True.
        """
        from robotics.tasks import torch_threads

        with torch_threads(self.threads):  # small networks train fastest on one CPU thread
            return self._train(Path(out_dir), resume, progress, stop)

    def _train(self, out_dir: Path, resume: bool | str, progress: bool, stop) -> RecipeResult:
        import torch

        from robotics.recipes.common import close_run, end_iteration, load_state_of, open_run, restore_run

        checkpoint, envs, policy, log = open_run(
            self, out_dir, resume, "ppo", {"iteration": int, "reward_scaler": dict}, progress,
            hidden=self.hidden, activation=self.activation, log_std_init=self.log_std_init)
        device = torch.device(self.device)
        net = policy.net
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate, eps=1e-5, fused=True)
        batch_size = self.num_envs * self.num_steps
        iterations = max(1, self.total_steps // batch_size)
        reward_scaler = RewardScaler(self.num_envs, self.gamma)
        if checkpoint is not None:
            net.load_state_dict(checkpoint.model)
            load_state_of(reward_scaler, checkpoint, "reward_scaler")
        start, recent = restore_run(checkpoint, envs, log, [optimizer])

        action_shape = () if net.discrete else envs.single_action_space.shape
        obs_buf = torch.zeros((self.num_steps, self.num_envs, envs.obs.shape[1]), device=device)
        actions_buf = torch.zeros((self.num_steps, self.num_envs, *action_shape), device=device,
                                  dtype=torch.long if net.discrete else torch.float32)
        logprobs_buf = torch.zeros((self.num_steps, self.num_envs), device=device)
        rewards_buf = torch.zeros((self.num_steps, self.num_envs), device=device)
        dones_buf = torch.zeros((self.num_steps, self.num_envs), device=device)
        values_buf = torch.zeros((self.num_steps, self.num_envs), device=device)
        low = envs.single_action_space.low if not net.discrete else None
        high = envs.single_action_space.high if not net.discrete else None

        for iteration in range(start, iterations):
            # Anneal the learning rate (and clip range) linearly to 0 over the run.
            remaining = 1.0 - iteration / iterations
            optimizer.param_groups[0]["lr"] = self.learning_rate * (remaining if self.anneal_lr else 1.0)
            clip_coef = self.clip_coef * (remaining if self.anneal_clip else 1.0)

            # 1. Collect a rollout of num_steps × num_envs transitions.
            for t in range(self.num_steps):
                obs = torch.as_tensor(envs.obs, device=device)
                with torch.no_grad():
                    if self.normalize_observations:
                        net.obs_norm.update(obs)
                    x = net.obs_norm(obs)
                    distribution = net.distribution(x)
                    action = distribution.sample()
                    logprobs_buf[t] = distribution.log_prob(action)
                    values_buf[t] = net.value(x)
                obs_buf[t], actions_buf[t] = x, action
                env_action = action.cpu().numpy()
                if not net.discrete:
                    env_action = np.clip(env_action, low, high)
                _, rewards, terminated, truncated, final_obs, finished = envs.step(env_action)
                if self.normalize_rewards:
                    rewards = reward_scaler(rewards, terminated | truncated)
                rewards = torch.as_tensor(rewards, device=device)
                if truncated.any():  # a time limit is not a terminal state: bootstrap from the last observation
                    with torch.no_grad():
                        last = net.obs_norm(torch.as_tensor(final_obs[truncated], device=device))
                        rewards[torch.as_tensor(truncated, device=device)] += self.gamma * net.value(last)
                rewards_buf[t] = rewards
                dones_buf[t] = torch.as_tensor(terminated | truncated, device=device, dtype=torch.float32)
                recent = (recent + [ret for ret, _ in finished])[-20:]

            # 2. Generalised advantage estimation, bootstrapped from the value after the rollout.
            with torch.no_grad():
                next_value = net.value(net.obs_norm(torch.as_tensor(envs.obs, device=device)))
                advantages = gae(rewards_buf, values_buf, dones_buf, next_value, self.gamma, self.gae_lambda)
                returns = advantages + values_buf

            # 3. Clipped-surrogate updates over shuffled minibatches.
            b_obs = obs_buf.reshape(batch_size, -1)
            b_actions = actions_buf.reshape(batch_size, *action_shape)
            b_logprobs, b_advantages = logprobs_buf.reshape(-1), advantages.reshape(-1)
            b_returns = returns.reshape(-1)
            for _ in range(self.update_epochs):
                order = torch.randperm(batch_size, device=device)
                for first in range(0, batch_size, self.minibatch_size):
                    mb = order[first:first + self.minibatch_size]
                    loss = clipped_loss(net.distribution(b_obs[mb]), net.value(b_obs[mb]), b_actions[mb],
                                        b_logprobs[mb], b_advantages[mb], b_returns[mb], clip_coef, self.ent_coef,
                                        self.vf_coef)
                    gradient_step(optimizer, loss, net.parameters(), self.max_grad_norm)

            step, done = end_iteration(
                self, out_dir, policy, log, iteration=iteration, iterations=iterations, batch_size=batch_size,
                recent=recent, loss=loss, stop=stop, checkpoint=lambda: (net.state_dict(), [optimizer], {
                    "envs": envs.state_dict(), "reward_scaler": reward_scaler.state_dict()}))
            if done:
                break

        return close_run(envs, policy, self, out_dir, step, iteration + 1)
