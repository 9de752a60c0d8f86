"""The small engine (zoo/) extensions the NLP domain uses: raw cache files, schedules, samplers, CLI options."""
import hashlib
import json
import math
from functools import partial

import pytest
import torch
from typer.testing import CliRunner

import zoo
from nlp.recipes import LengthBucketSampler
from tests.nlp.helpers import write_reviews
from zoo import cache
from zoo.errors import UnsafeFormatError
from zoo.registry import WeightFile
from zoo.train import LRSchedule, Trainer, TrainConfig


def test_raw_files_go_through_the_verified_cache_but_pickles_never_do(tmp_path):
    data = json.dumps({"vocab": ["a", "b"]}).encode()
    (tmp_path / "tok.json").write_bytes(data)
    wf = WeightFile("tok.json", hashlib.sha256(data).hexdigest(), str(tmp_path / "tok.json"), format="raw")
    blob = cache.fetch(wf)
    assert blob.read_bytes() == data and blob.name == wf.sha256
    pickled = b"\x80\x04\x95" + b"\x00" * 32
    (tmp_path / "evil.json").write_bytes(pickled)
    evil = WeightFile("evil.json", hashlib.sha256(pickled).hexdigest(), str(tmp_path / "evil.json"), format="raw")
    with pytest.raises(UnsafeFormatError, match="never unpickles"):
        cache.fetch(evil)
    assert cache.cached_path(evil) is None
    with pytest.raises(ValueError, match="format must be one of"):
        WeightFile("x", wf.sha256, "x", format="pickle")


def test_linear_schedule_warms_up_then_decays_to_zero():
    schedule = LRSchedule(total_steps=110, warmup_steps=10, kind="linear")
    assert schedule(0) == pytest.approx(1 / 11) and schedule(9) == pytest.approx(10 / 11)
    assert schedule(10) == 1.0 and schedule(60) == pytest.approx(0.5) and schedule(110) == 0.0
    assert TrainConfig(schedule="linear").schedule == "linear"
    with pytest.raises(zoo.errors.InputError, match="'cosine', 'linear' or 'constant'"):
        TrainConfig(schedule="step")
    assert math.isclose(LRSchedule(110, 10, "cosine")(60), 0.5)  # the others unchanged


def test_trainer_uses_the_sampler_hook(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    data = torch.utils.data.TensorDataset(x, y)
    lengths = list(range(40))
    trainer = Trainer(torch.nn.Linear(4, 2), data, config=TrainConfig(epochs=1, batch_size=8, progress=False),
                      out_dir=tmp_path, sampler_fn=partial(LengthBucketSampler, lengths=lengths, bucket_batches=5))
    seen = []
    original = LengthBucketSampler.__iter__

    def spy(self):
        for batch in original(self):
            seen.append(batch)
            yield batch

    LengthBucketSampler.__iter__ = spy
    try:
        trainer.fit()
    finally:
        LengthBucketSampler.__iter__ = original
    assert isinstance(trainer.sampler, LengthBucketSampler) and trainer.step == 5
    assert all(max(b) - min(b) == 7 for b in seen)  # sorted windows: consecutive lengths share a batch


def test_cli_recipe_option_runs_the_embedding_probe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_reviews(tmp_path / "reviews.csv", text_column="body", label_column="rating")
    result = CliRunner().invoke(app_cli(), [
        "finetune", "nlp/text_encoder.all_minilm_l6_v2", "--recipe", "embedding-probe", "--data", "reviews.csv",
        "--text-column", "body", "--label-column", "rating", "--out", "probe", "--set", "C=3",
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    model = zoo.load(tmp_path / "probe")
    assert model.card.provenance["recipe"]["name"] == "embedding-probe"
    assert model.predict("absolutely wonderful, I love it")["label"] == "5"
    bad = CliRunner().invoke(app_cli(), ["finetune", "nlp/text_encoder.all_minilm_l6_v2", "--recipe", "embedding-probe",
                                         "--data", "reviews.csv", "--epochs", "2"])
    assert "has no field(s) ['epochs']" in str(bad.exception)


def app_cli():
    from zoo.cli import app

    return app
