"""The FiLM mission-conditioned grid policy and behaviour cloning of BabyAI demonstrations with it."""
import json

import numpy as np
import pytest
import torch

import zoo
from robotics import datasets
from robotics.models.film import film_categorical
from robotics.navigation import policy_actor, run_navigation
from robotics.observations import MISSION_TOKENS, tokenize
from robotics.recipes.bc import BCRecipe
from zoo.errors import InputError

PARTS = [["image", [3, 7, 7]], ["direction", [1]], ["mission", [MISSION_TOKENS]]]
OBS_DIM = 3 * 7 * 7 + 1 + MISSION_TOKENS


def grid_observation(mission: str, seed: int = 0) -> torch.Tensor:
    """A flat grid observation: random cells, direction 1, the given mission."""
    rng = np.random.default_rng(seed)
    image = np.stack([rng.integers(0, 11, (7, 7)), rng.integers(0, 6, (7, 7)), rng.integers(0, 3, (7, 7))])
    return torch.as_tensor(np.concatenate([image.reshape(-1), [1], tokenize(mission)]), dtype=torch.float32)


def test_film_policy_shapes_and_the_mission_steers_the_actions():
    torch.manual_seed(0)
    net = film_categorical(OBS_DIM, 7, PARTS, channels=16, mission_size=16, hidden=[16]).eval()
    view = grid_observation("go to the red ball")
    batch = torch.stack([view, grid_observation("go to the blue key", 0), grid_observation("go to a box", 1)])
    assert net(batch).shape == (3,) and net(batch).dtype == torch.int64
    assert net.actor_outputs(batch).shape == (3, 7) and net.value(batch).shape == (3,)
    # Same view, other missions: the mission reaches the view through the FiLM blocks and the match map.
    logits = net.actor_outputs(batch)
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)
    with torch.no_grad():  # gamma and beta fixed: the match map alone still tells the missions apart
        for film in net.encoder.films:
            film.gamma.weight.zero_()
            film.beta.weight.zero_()
    logits = net.actor_outputs(batch)
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)
    with torch.no_grad():  # and without the cells' projection the mission no longer reaches the view
        net.encoder.cell_key.weight.zero_()
    logits = net.actor_outputs(batch)
    torch.testing.assert_close(logits[0], logits[1])


def test_the_mission_encoding_is_the_gru_after_the_last_word():
    net = film_categorical(OBS_DIM, 7, PARTS, channels=8, mission_size=8, hidden=[8]).eval()
    words = torch.as_tensor(np.stack([tokenize("go to the red ball"), tokenize("go to a key")]))
    with torch.no_grad():
        encoded = net.encoder.mission(words)
        for row, length in enumerate((5, 4)):  # the padding after the words changes nothing
            alone, _ = net.encoder.mission.gru(net.encoder.mission.embedding(words[row:row + 1, :length]))
            torch.testing.assert_close(encoded[row], alone[0, -1])


def test_film_policy_refuses_other_observation_layouts():
    with pytest.raises(InputError, match="grid observations of 164 values"):
        film_categorical(10, 7, [["state", [10]]])
    with pytest.raises(InputError, match="parts"):
        film_categorical(OBS_DIM, 7, [["image", [3, 7, 7]], ["mission", [16]], ["direction", [1]]])


@pytest.fixture(scope="module")
def cloned(tmp_path_factory):
    """A tiny FiLM policy cloned from 6 BabyAI-GoToLocal episodes of BabyAIBot: (result dir, demonstrations)."""
    root = tmp_path_factory.mktemp("film_bc")
    data = datasets.record_expert("BabyAI-GoToLocal-v0", root / "demos", episodes=6, seed=0)
    result = BCRecipe(data=str(data), val_fraction=0.0, eval_episodes=2, hidden=(16,), channels=16,
                      train={"epochs": 10, "batch_size": 8, "lr": 5e-3}).run(root / "bc", progress=False)
    return result.out_dir, data


def test_bc_trains_the_film_policy_and_lowers_the_loss(cloned):
    out_dir, data = cloned
    model = zoo.load(out_dir)
    assert model.card.id == "robotics/film_categorical.bc_babyai_gotolocal_v0"
    assert model.card.architecture == "film_categorical" and model.card.arch_args["channels"] == 16
    assert model.card.provenance["data_fingerprint"] == json.loads((data / "meta.json").read_text())["fingerprint"]
    assert model.card.provenance["training"]["episodes"] == 6
    losses = [json.loads(line)["train_loss"] for line in (out_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "eval"]
    assert len(losses) == 10 and losses[-1] < 0.6 * losses[0]


def test_the_cloned_policy_reloads_identically(cloned):
    out_dir, _ = cloned
    model = zoo.load(out_dir)
    # Batch-norm statistics are weights too: the card's evaluation, made before saving, replays exactly.
    assert model.net.encoder.image_conv[1].running_mean.abs().sum() > 0
    card_return = next(m["value"] for m in model.card.metrics if m["name"] == "mean_return")
    rollout = model.rollout("BabyAI-GoToLocal-v0", episodes=2, seed=10_000)
    assert round(rollout.mean_return, 4) == card_return
    success = model.card.metric("success")  # navigation policies' cards also carry success (Wilson CI) and SPL
    assert success["episodes"] == 2 and success["ci95"][0] <= success["value"] <= success["ci95"][1]
    assert 0 <= model.card.metric("spl")["value"] <= success["value"]
    again = zoo.load(out_dir)
    demos = datasets.load(cloned[1])
    obs = torch.as_tensor(demos.observations[:20])
    with torch.no_grad():
        torch.testing.assert_close(model.net.actor_outputs(obs), again.net.actor_outputs(obs), rtol=0, atol=0)


def test_the_cloned_policy_acts_on_raw_babyai_observations(cloned):
    from robotics.envs import make_env

    model = zoo.load(cloned[0])
    env = make_env("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=3)
    action = model.predict(obs)
    assert isinstance(action, int) and 0 <= action < 7
    run = run_navigation(policy_actor(model), "BabyAI-GoToLocal-v0", episodes=1, seed=10_000)
    assert run.successes.shape == (1,) and 0 <= run.metrics()["spl"] <= 1
    with pytest.raises(InputError, match="7×7×3 egocentric grid"):
        model.predict({**obs, "image": obs["image"][:6]})
    with pytest.raises(InputError, match=r"shape \(164,\)"):
        model.predict(np.zeros(163, np.float32))
    with pytest.raises(InputError, match="lacks key"):
        model.predict({"image": obs["image"], "direction": 0})


def test_zoo_predict_runs_the_cloned_policy_on_a_flattened_observation(cloned, tmp_path):
    from robotics.envs import make_env
    from robotics.observations import observation_spec
    from tests.zoo.test_cli import run_console_script

    env = make_env("BabyAI-GoToLocal-v0")
    flat = observation_spec(env.observation_space).flatten(env.reset(seed=4)[0])
    np.save(tmp_path / "obs.npy", flat)
    result = run_console_script("predict", str(cloned[0]), str(tmp_path / "obs.npy"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'obs.npy'}: {zoo.load(cloned[0]).predict(flat)}"


def test_the_episode_head_matches_stepping_each_episode_from_a_fresh_state():
    from robotics.models.recurrent import gru_categorical
    from robotics.recipes.bc import EpisodeActionHead, Episodes, pad_episodes

    torch.manual_seed(0)
    net = gru_categorical(OBS_DIM, 7, "film", PARTS, core_size=8, hidden=[8], channels=8).eval()
    observations = torch.stack([grid_observation("go to the red ball", seed) for seed in range(5)])
    actions, episode_index = torch.tensor([0, 1, 2, 3, 4]), np.array([0, 0, 0, 1, 1])
    episodes = Episodes(observations, actions, episode_index, torch.arange(5))
    inputs, targets = pad_episodes([episodes[0], episodes[1]])
    assert inputs["obs"].shape == (2, 3, OBS_DIM) and inputs["valid"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert targets.tolist() == [0, 1, 2, 3, 4]
    with torch.no_grad():
        logits = EpisodeActionHead(net)(**inputs)
        stepped = []
        for rows in (slice(0, 3), slice(3, 5)):
            state = net.initial_state(1)
            for obs in observations[rows]:
                core, state = net.unroll(obs[None, None], state, torch.zeros(1, 1))
                stepped.append(net.actor(core[0, 0]))
    torch.testing.assert_close(logits, torch.stack(stepped))


def test_bc_with_memory_trains_a_recurrent_film_policy(cloned, tmp_path):
    _, data = cloned
    result = BCRecipe(data=str(data), val_fraction=0.0, eval_episodes=2, hidden=(16,), channels=16, memory=True,
                      core_size=16, train={"epochs": 20, "batch_size": 2, "lr": 5e-3}).run(tmp_path / "bc", progress=False)
    model = zoo.load(result.out_dir)
    assert model.card.architecture == "gru_categorical" and model.card.arch_args["encoder"] == "film"
    losses = [json.loads(line)["train_loss"] for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "eval"]
    assert losses[-1] < 0.6 * losses[0]
    run = run_navigation(policy_actor(model), "BabyAI-GoToLocal-v0", episodes=2, seed=10_000)  # carries the state
    assert run.successes.shape == (2,)


def test_memory_is_refused_for_observations_without_a_grid(tmp_path):
    with pytest.raises(InputError, match="memory=True is for grid observations"):
        BCRecipe(data="robotics/cartpole-v1.ppo-expert", memory=True).run(tmp_path / "bc", progress=False)
    assert not (tmp_path / "bc").exists()
    with pytest.raises(InputError, match="memory=True needs a recurrent policy; robotics/mlp_categorical"):
        BCRecipe(data="robotics/cartpole-v1.ppo-expert", model="robotics/mlp_categorical.bc_cartpole_v1",
                 memory=True).run(tmp_path / "bc", progress=False)


def mirrored_world(env) -> None:
    """``env``'s grid reflected east-west in place, the agent with it."""
    from minigrid.core.grid import Grid

    base = env.unwrapped
    width, height = base.grid.width, base.grid.height
    mirror = Grid(width, height)
    for x in range(width):
        for y in range(height):
            mirror.set(width - 1 - x, y, base.grid.get(x, y))
    base.grid = mirror
    base.agent_pos = (width - 1 - base.agent_pos[0], base.agent_pos[1])
    base.agent_dir = (2, 1, 0, 3)[base.agent_dir]


def test_grid_symmetries_give_the_views_of_recoloured_and_mirrored_worlds():
    from robotics.augment import COLOURS, GridSymmetries
    from robotics.envs import make_env
    from robotics.observations import observation_spec

    env = make_env("BabyAI-GoToLocal-v0")
    spec = observation_spec(env.observation_space)
    symmetries, generator = GridSymmetries(spec), torch.Generator().manual_seed(0)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        flat = torch.as_tensor(spec.flatten(obs))[None]
        mirrored_world(env)
        mirrored, actions = symmetries.apply(flat, torch.tensor([0]), torch.arange(6)[None], torch.tensor([True]))
        assert torch.equal(mirrored[0], torch.as_tensor(spec.flatten(env.unwrapped.gen_obs())))
        assert actions.tolist() == [1]  # a left turn in the mirrored world is a right turn
        permutation = torch.randperm(6, generator=generator)
        for cell in env.unwrapped.grid.grid:
            if cell is not None and cell.type in ("door", "key", "ball", "box"):
                cell.color = COLOURS[permutation[COLOURS.index(cell.color)]]
        recoloured = env.unwrapped.gen_obs()
        recoloured["mission"] = " ".join(COLOURS[permutation[COLOURS.index(word)]] if word in COLOURS else word
                                         for word in obs["mission"].split())
        both, actions = symmetries.apply(mirrored, torch.tensor([2]), permutation[None], torch.tensor([False]))
        assert torch.equal(both[0], torch.as_tensor(spec.flatten(recoloured))) and actions.tolist() == [2]


def test_an_episode_takes_one_draw_and_frames_their_own():
    from robotics.augment import GridSymmetries
    from robotics.observations import spec_from_description

    spec = spec_from_description({"type": "Box", "shape": [OBS_DIM], "kind": "grid", "parts": PARTS}, "test")
    frames = grid_observation("go to the red ball").repeat(64, 1)
    actions = torch.zeros(64, dtype=torch.int64)  # all left turns
    torch.manual_seed(0)
    episode, episode_actions = GridSymmetries(spec)(frames, actions, per_row=False)
    assert (episode == episode[0]).all() and len(set(episode_actions.tolist())) == 1
    shuffled, shuffled_actions = GridSymmetries(spec)(frames, actions)
    assert len({tuple(row.tolist()) for row in shuffled}) > 10 and set(shuffled_actions.tolist()) == {0, 1}
    mirrored = shuffled_actions == 1  # the mirrored rows, and only they, have the view flipped left-right
    images = shuffled[:, :147].reshape(64, 3, 7, 7)
    original = frames[0, :147].reshape(3, 7, 7)
    assert torch.equal(images[mirrored, 0], original[0].flip(0).expand(int(mirrored.sum()), 7, 7))
    assert torch.equal(images[~mirrored, 0], original[0].expand(int((~mirrored).sum()), 7, 7))


def test_bc_with_augment_trains_under_the_symmetries_and_is_refused_without_a_grid(cloned, tmp_path):
    _, data = cloned
    result = BCRecipe(data=str(data), val_fraction=0.0, eval_episodes=2, hidden=(16,), channels=16, augment=True,
                      train={"epochs": 10, "batch_size": 8, "lr": 5e-3}).run(tmp_path / "bc", progress=False)
    losses = [json.loads(line)["train_loss"] for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "eval"]
    assert losses[-1] < 0.7 * losses[0]
    assert zoo.load(result.out_dir).card.provenance["recipe"]["params"]["augment"] is True
    with pytest.raises(InputError, match="grid symmetries need grid observations"):
        BCRecipe(data="robotics/cartpole-v1.ppo-expert", augment=True).run(tmp_path / "cartpole", progress=False)
    assert not (tmp_path / "cartpole").exists()
