"""DAgger: learner-driven episodes labelled by the scripted expert, and behaviour cloning's rounds on them."""
import json

import numpy as np
import pytest
import torch

import zoo
from robotics import datasets
from robotics.envs import make_env
from robotics.experts import BabyAIExpert, ExpertLost
from robotics.navigation import policy_actor
from robotics.observations import observation_spec
from robotics.recipes.bc import BCRecipe
from zoo.errors import InputError

ENV_ID = "BabyAI-GoToLocal-v0"
LEFT, FORWARD, TOGGLE = 0, 2, 5


@pytest.fixture(scope="module")
def cloned(tmp_path_factory):
    """A tiny FiLM policy cloned from 4 BabyAIBot episodes, then 2 DAgger rounds of 3 episodes: (result dir, demos)."""
    root = tmp_path_factory.mktemp("dagger")
    data = datasets.record_expert(ENV_ID, root / "demos", episodes=6, seed=0)
    result = BCRecipe(data=str(data), episodes=4, val_fraction=0.0, eval_episodes=2, hidden=(16,), channels=16,
                      dagger_rounds=2, dagger_episodes=3, dagger_epochs=2,
                      train={"epochs": 4, "batch_size": 8, "lr": 5e-3}).run(root / "bc", progress=False)
    return result.out_dir, data


def always(policy, action: int):
    """``policy`` made to pick ``action`` whatever it sees (its last layer's bias dominates)."""
    last = policy.net.actor[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-1.0)
        last.bias[action] = 1.0
    return policy


def test_driven_episodes_follow_the_driver_and_carry_the_bots_labels(cloned, tmp_path):
    driver = zoo.load(cloned[0])
    path = datasets.record_expert(ENV_ID, tmp_path / "driven", episodes=3, seed=50, driver=driver)
    driven = datasets.load(path)
    assert driven.meta["recorded_by"]["driver"] == driver.card.id
    for episode in range(3):
        rows = np.flatnonzero(driven.episode_index == episode)
        env = make_env(ENV_ID)
        obs, _ = env.reset(seed=50 + episode)
        flatten, act, bot = observation_spec(env.observation_space).flatten, policy_actor(driver)(env), BabyAIExpert(env)
        for row in rows:  # the states are the driver's; each label is the bot's, told what the driver did
            np.testing.assert_array_equal(driven.observations[row], flatten(obs))
            assert driven.actions[row] == bot(obs)
            action = act(obs)
            bot.took(action)
            obs, reward, terminated, truncated, _ = env.step(action)
        assert driven.success[rows[0]] == (terminated and reward > 0)


def test_the_bot_follows_a_learner_until_it_opens_a_box():
    env = make_env(ENV_ID)
    obs, _ = env.reset(seed=1)
    expert = BabyAIExpert(env)
    for action in (LEFT, FORWARD, TOGGLE):  # seed 1: a turn and a step put a box in front; toggling opens it
        expert(obs)
        if action == TOGGLE:
            assert env.unwrapped.grid.get(*env.unwrapped.front_pos).type == "box"
        obs, *_ = env.step(action)
        expert.took(action)
    assert env.unwrapped.grid.get(*env.unwrapped.front_pos) is None  # an opened box vanishes (it held nothing)
    with pytest.raises(ExpertLost, match="box"):
        expert(obs)


def test_an_episode_the_expert_cannot_follow_ends_truncated_at_its_last_label(cloned, tmp_path, monkeypatch):
    from robotics import experts

    class LostAtThirdStep(BabyAIExpert):
        def __call__(self, obs):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                raise ExpertLost("lost")
            return super().__call__(obs)

    monkeypatch.setattr(experts, "babyai_bot", LostAtThirdStep)
    driver = always(zoo.load(cloned[0]), LEFT)  # turning in place never ends an episode
    driven = datasets.load(datasets.record_expert(ENV_ID, tmp_path / "lost", episodes=2, seed=0, driver=driver))
    assert driven.episode_index.tolist() == [0, 0, 1, 1]
    assert driven.truncated.tolist() == [False, True, False, True] and not driven.success.any()


def test_dagger_rounds_grow_the_labelled_set_and_are_recorded_in_the_card(cloned):
    out_dir, data = cloned
    card = zoo.load(out_dir).card
    training = card.provenance["training"]
    assert training["episodes"] == 4  # the first 4 of the dataset's 6
    dagger = training["dagger"]
    assert [r["round"] for r in dagger["rounds"]] == [1, 2] and all(r["episodes"] == 3 for r in dagger["rounds"])
    assert dagger["labelled_episodes"] == 4 + 2 * 3
    frames = sum(r["frames"] for r in dagger["rounds"]) + training["frames"]
    assert dagger["labelled_frames"] == frames
    for number, round_ in enumerate(dagger["rounds"], 1):
        demos = datasets.load(out_dir / "dagger" / f"round-{number}" / "demos")
        assert demos.meta["fingerprint"] == round_["fingerprint"]
        assert demos.meta["recorded_by"]["seed"] == 100_000 + (number - 1) * 3
        losses = [json.loads(line) for line in (out_dir / "dagger" / f"round-{number}" / "train" / "metrics.jsonl")
                  .read_text().splitlines()]
        assert sum(event.get("event") == "eval" for event in losses) == 2  # dagger_epochs


def test_a_finished_dagger_run_resumes_without_recording_again(cloned, monkeypatch):
    out_dir, data = cloned
    before = zoo.load(out_dir)
    monkeypatch.setattr(datasets, "record_expert", lambda *a, **k: pytest.fail("recorded a round again"))
    recipe = BCRecipe(data=str(data), episodes=4, val_fraction=0.0, eval_episodes=2, hidden=(16,), channels=16,
                      dagger_rounds=2, dagger_episodes=3, dagger_epochs=2,
                      train={"epochs": 4, "batch_size": 8, "lr": 5e-3})
    recipe.run(out_dir, resume=True, progress=False)
    after = zoo.load(out_dir)
    for name, tensor in before.net.state_dict().items():
        torch.testing.assert_close(after.net.state_dict()[name], tensor, rtol=0, atol=0)


def test_more_episodes_than_the_dataset_has_is_an_input_error(cloned, tmp_path):
    with pytest.raises(InputError, match=r"episodes=7 asks for more episodes than the dataset has \(6\)"):
        BCRecipe(data=str(cloned[1]), episodes=7, channels=8, hidden=(8,)).run(tmp_path / "bc", progress=False)


def test_dagger_without_a_scripted_expert_is_refused_before_training(tmp_path):
    with pytest.raises(InputError, match="no scripted expert for CartPole-v1"):
        BCRecipe(data="robotics/cartpole-v1.ppo-expert", dagger_rounds=1).run(tmp_path / "bc", progress=False)
    assert not (tmp_path / "bc").exists()
