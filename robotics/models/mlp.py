"""MLP policies for vector observations: actor-critic nets for PPO, SAC and behaviour cloning.

Every policy starts with :class:`ObservationNorm` (running mean/variance kept as
buffers, so ``weights.safetensors`` holds them) and its ``forward(obs)`` is the
deterministic action for inference: pure tensor ops, no data-dependent Python
branches, so it exports to ONNX as is. Training code uses the other methods.

- :class:`CategoricalActorCritic`    discrete actions (PPO, BC): ``forward`` is the argmax.
- :class:`GaussianActorCritic`       continuous actions, state-independent log-std (PPO, BC):
                                     ``forward`` is the mean, clipped to the action bounds.
- :class:`SquashedGaussianActorCritic` continuous actions, tanh-squashed Gaussian actor with
                                     twin Q critics (SAC): ``forward`` is the squashed mean.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class ObservationNorm(nn.Module):
    """``clamp((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics as buffers.

    Fresh, it is the identity (mean 0, variance 1); ``update`` folds in a batch of
    observations (the parallel-variance rule gymnasium's ``NormalizeObservation`` uses).
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Fold a batch ``[N, dim]`` into the running mean and variance."""
        batch_mean, batch_var, n = obs.mean(0), obs.var(0, unbiased=False), obs.shape[0]
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean += (delta * n / total).to(self.mean.dtype)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """Use fixed statistics (e.g. a demonstration dataset's)."""
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.fill_(count)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str, out_gain: float | None = None) -> nn.Sequential:
    """Linear-activation stack; with ``out_gain`` every layer gets orthogonal init (PPO's convention)."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [_init(nn.Linear(a, b), math.sqrt(2), out_gain), ACTIVATIONS[activation]()]
    layers.append(_init(nn.Linear(dims[-1], out_dim), out_gain, out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float | None, enabled: float | None) -> nn.Linear:
    if enabled is not None:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


class CategoricalActorCritic(nn.Module):
    """Logits and a state value from two MLPs; ``forward`` returns the most likely action (int64)."""

    discrete = True

    def __init__(self, obs_dim: int, num_actions: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh"):
        super().__init__()
        self.obs_norm = ObservationNorm(obs_dim)
        self.actor = mlp(obs_dim, hidden, num_actions, activation, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.obs_norm(obs)).argmax(-1)

    def actor_outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The logits for raw observations (what behaviour cloning trains)."""
        return self.actor(self.obs_norm(obs))

    def distribution(self, x: torch.Tensor) -> Categorical:
        """The action distribution for normalised observations ``x``."""
        return Categorical(logits=self.actor(x), validate_args=False)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)


class GaussianActorCritic(nn.Module):
    """A Gaussian actor with a learned, state-independent log-std, and a value MLP.

    ``forward`` returns the mean clipped to ``[action_low, action_high]``; the
    recipe samples, and clips only what it sends to the environment.
    """

    discrete = False

    def __init__(self, obs_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 hidden: Sequence[int] = (64, 64), activation: str = "tanh", log_std_init: float = 0.0):
        super().__init__()
        self.obs_norm = ObservationNorm(obs_dim)
        self.actor = mlp(obs_dim, hidden, action_dim, activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)
        self.register_buffer("action_low", torch.tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.tensor(action_high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # minimum/maximum rather than clamp: ONNX's Clip takes scalar bounds only.
        return torch.maximum(torch.minimum(self.actor(self.obs_norm(obs)), self.action_high), self.action_low)

    def actor_outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The unclipped mean for raw observations (what behaviour cloning trains)."""
        return self.actor(self.obs_norm(obs))

    def distribution(self, x: torch.Tensor) -> Independent:
        mean = self.actor(x)
        return Independent(Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False), 1, validate_args=False)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)


class TwinQ(nn.Module):
    """Two Q-networks ``Q(x, a)`` evaluated as one batched MLP (weights stacked on a leading axis of 2)."""

    def __init__(self, in_dim: int, hidden: Sequence[int]):
        super().__init__()
        dims = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1 / math.sqrt(a)  # nn.Linear's default init, per network
            self.weights.append(nn.Parameter(torch.empty(2, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(2, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[2, N]``: both networks' values."""
        h = torch.cat([x, action], -1).expand(2, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h.squeeze(-1)


class SquashedGaussianActorCritic(nn.Module):
    """SAC's actor (Gaussian, squashed by tanh into the action bounds) and twin Q critic.

    ``forward`` returns ``tanh(mean)`` rescaled to the bounds; ``sample`` draws a
    reparameterised action with its log-probability (tanh change of variables).
    """

    discrete = False

    def __init__(self, obs_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 hidden: Sequence[int] = (256, 256), activation: str = "relu"):
        super().__init__()
        self.obs_norm = ObservationNorm(obs_dim)
        self.actor_trunk = mlp(obs_dim, hidden[:-1], hidden[-1], activation)
        self.actor_act = ACTIVATIONS[activation]()
        self.actor_mean = nn.Linear(hidden[-1], action_dim)
        self.actor_log_std = nn.Linear(hidden[-1], action_dim)
        self.critic = TwinQ(obs_dim + action_dim, hidden)
        low = torch.tensor(action_low, dtype=torch.float32)
        high = torch.tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.actor_act(self.actor_trunk(self.obs_norm(obs)))
        return torch.tanh(self.actor_mean(h)) * self.action_scale + self.action_bias

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action for normalised observations ``x`` and its log-probability ``[N]``."""
        h = self.actor_act(self.actor_trunk(x))
        mean = self.actor_mean(h)
        log_std = torch.tanh(self.actor_log_std(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)  # CleanRL's soft bound
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        squashed = torch.tanh(u)
        log_prob = (-0.5 * ((u - mean) / std).square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(self.action_scale * (1 - squashed.square()) + 1e-6).sum(-1)
        return squashed * self.action_scale + self.action_bias, log_prob


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def mlp_categorical(obs_dim: int, num_actions: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> CategoricalActorCritic:
    """The architecture ``mlp_categorical``: discrete actions."""
    return CategoricalActorCritic(obs_dim, num_actions, tuple(hidden), activation)


def mlp_gaussian(obs_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 hidden: Sequence[int] = (64, 64), activation: str = "tanh", log_std_init: float = 0.0) -> GaussianActorCritic:
    """The architecture ``mlp_gaussian``: continuous actions, state-independent log-std."""
    return GaussianActorCritic(obs_dim, action_dim, _floats(action_low), _floats(action_high), tuple(hidden),
                               activation, log_std_init)


def mlp_squashed_gaussian(obs_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                          hidden: Sequence[int] = (256, 256), activation: str = "relu") -> SquashedGaussianActorCritic:
    """The architecture ``mlp_squashed_gaussian``: SAC's tanh-Gaussian actor and twin Q critic."""
    return SquashedGaussianActorCritic(obs_dim, action_dim, _floats(action_low), _floats(action_high), tuple(hidden),
                                       activation)
