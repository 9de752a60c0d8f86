"""NLP recipes: fine-tune through the CLI, the embedding probe, length-bucketed batches, label checks."""
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import zoo
from nlp.recipes import EmbeddingProbeRecipe, LengthBucketSampler, TextClassificationRecipe, evaluate
from tests.nlp.helpers import write_reviews
from zoo.cli import app
from zoo.errors import InputError
from zoo.recipes import parse_set


def test_finetune_through_the_cli_writes_a_model_that_predicts_raw_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_reviews(tmp_path / "reviews.csv", extra_rows=[("", "5")])
    result = CliRunner().invoke(app, [
        "finetune", "nlp/text_encoder.all_minilm_l6_v2", "--data", "reviews.csv", "--text-column", "review",
        "--label-column", "stars", "--epochs", "1", "--out", "runs/reviews", "--set", "max_length=64",
        "--set", "train.batch_size=8",
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "model written to" in result.output
    model = zoo.load(tmp_path / "runs" / "reviews", device="cpu")
    assert model.card.task == "text-classification" and model.card.labels == ["1", "5"]
    predictions = model.predict(["I love it, wonderful", "broken junk, avoid"])
    assert all(p["label"] in ("1", "5") and 0 < p["score"] <= 1 for p in predictions)
    recipe = model.card.provenance["recipe"]
    assert recipe["name"] == "text-classification"
    assert recipe["params"]["text_column"] == "review" and recipe["params"]["max_length"] == 64
    assert model.card.preprocessing["max_length"] == 64 and model.adapter.tokenizer.max_length == 64
    assert model.card.provenance["data_report"]["dropped_empty_text"] == 1
    assert {m["name"] for m in model.card.metrics} == {"accuracy", "macro_f1"}
    events = [json.loads(line) for line in (tmp_path / "runs" / "reviews" / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "eval" and "val_macro_f1" in events[-1]


def test_cli_errors_for_text_data_are_one_line(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    write_reviews(tmp_path / "reviews.csv")
    monkeypatch.setattr(sys, "argv", ["zoo", "finetune", "nlp/text_encoder.all_minilm_l6_v2", "--data", str(tmp_path / "reviews.csv"),
                                      "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no column 'text'" in err[0] and "['id', 'review', 'stars']" in err[0]


def test_embedding_probe_becomes_a_linear_head_of_a_loadable_classifier(tmp_path):
    data = write_reviews(tmp_path / "reviews.csv")
    result = EmbeddingProbeRecipe(data=str(data), text_column="review", label_column="stars", C=10.0,
                                  val_fraction=0.2).run(tmp_path / "probe")
    assert {m["split"] for m in result.metrics} == {"val"}
    model = zoo.load(tmp_path / "probe", device="cpu")
    assert model.card.task == "text-classification" and model.card.provenance["probe"]["C"] == 10.0
    predictions = model.predict(["I love it, wonderful quality", "terrible, it broke and I want a refund"])
    assert [p["label"] for p in predictions] == ["5", "1"]
    # The head is the logistic regression: same decision on the embeddings.
    from sklearn.linear_model import LogisticRegression

    from nlp.datasets import load_splits

    splits = load_splits(data, text_column="review", label_column="stars", val_fraction=0.2)
    encoder = zoo.load("nlp/text_encoder.all_minilm_l6_v2", device="cpu")
    x = encoder.predict(splits.train.inputs())
    reference = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=0).fit(x, splits.train.labels)
    head = model.net.get_classifier()
    margin = (x @ head.weight.detach().numpy().T + head.bias.detach().numpy())
    np.testing.assert_allclose(margin[:, 1] - margin[:, 0], reference.decision_function(x), atol=1e-4)


def test_fine_tuning_a_classifier_keeps_its_labels_and_rejects_unknown_ones(minilm, tmp_path):
    classifier = zoo.load("nlp/text_encoder.all_minilm_l6_v2", num_classes=2, device="cpu")
    classifier.card.labels = ["1", "5"]
    classifier.save(tmp_path / "clf")
    data = write_reviews(tmp_path / "more.csv", extra_rows=[("it is fine", "3"), ("it is okay I guess", "3")])
    recipe = TextClassificationRecipe(model=str(tmp_path / "clf"), data=str(data), text_column="review",
                                      label_column="stars", train={"epochs": 1})
    with pytest.raises(InputError, match=r"does not know: '3' \(2 rows\).*new_head=true"):
        recipe.run(tmp_path / "out")
    with pytest.raises(InputError, match="'3'"):
        evaluate(tmp_path / "clf", data, text_column="review", label_column="stars")
    metrics = evaluate(zoo.load(tmp_path / "clf"), write_reviews(tmp_path / "ok.csv"), text_column="review", label_column="stars")
    assert set(metrics) == {"accuracy", "macro_f1", "n"} and metrics["n"] == 20


def test_length_buckets_cover_every_example_once_and_cut_padding():
    lengths = list(np.random.default_rng(0).integers(3, 200, size=1000))
    sampler = LengthBucketSampler(1000, 16, seed=3, lengths=lengths)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert len(batches) == sampler.batches_per_epoch() == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == sampler.epoch_batches()  # deterministic in (seed, epoch)
    sampler.set_epoch(2, start_batch=10)
    assert list(sampler) == batches[10:] and len(sampler) == 53
    sampler.set_epoch(3)
    assert list(sampler) != batches

    def padded(bs):
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    random_batches = [list(range(i, min(i + 16, 1000))) for i in range(0, 1000, 16)]
    assert padded(batches) < 0.6 * padded(random_batches)


def test_recipe_rejects_bad_choices():
    with pytest.raises(InputError, match="class_weights"):
        TextClassificationRecipe(class_weights="inverse").run("unused")


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_finetune_refuses_a_val_fraction_outside_its_range_in_one_line(tmp_path, value):
    from tests.zoo.test_cli import run_zoo

    data = write_reviews(tmp_path / "reviews.csv")
    result = run_zoo("finetune", "nlp/text_encoder.all_minilm_l6_v2", "--data", str(data), "--text-column", "review",
                     "--label-column", "stars", "--set", f"val_fraction={value}", "--out", str(tmp_path / "out"),
                     check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: recipe field 'val_fraction' must be in [0, 1), got {float(value)}; choose a value in that range"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("assignment, message", [
    ("val_fraction=-0.1", r"recipe field 'val_fraction' must be in \[0, 1\), got -0.1"),
    ("val_fraction=1.5", r"recipe field 'val_fraction' must be in \[0, 1\), got 1.5"),
    ("test_fraction=1", r"'test_fraction' must be in \[0, 1\), got 1.0"),
    ("train.lr=-1", r"'train.lr' must be in \[0, inf\), got -1.0"),
    ("train.lr=nan", r"'train.lr' must be in \[0, inf\), got nan"),
    ("train.lr=-inf", r"'train.lr' must be in \[0, inf\), got -inf"),
    ("head_lr=0", r"'head_lr' must be in \(0, inf\), got 0.0"),
    ("train.epochs=0", r"'train.epochs' must be in \[1, inf\), got 0"),
    ("train.batch_size=-3", r"'train.batch_size' must be in \[1, inf\), got -3"),
    ("train.warmup_ratio=1", r"'train.warmup_ratio' must be in \[0, 1\)"),
    ("max_length=1", r"'max_length' must be in \[2, inf\)"),
    ("train.seed=-1", r"'train.seed' must be in \[0, 4294967296\)"),
])
def test_text_recipe_rejects_out_of_range_overrides(assignment, message):
    with pytest.raises(InputError, match=message):
        TextClassificationRecipe.from_overrides(parse_set([assignment]))


def test_the_text_recipe_declares_its_column_options():
    # How a recipe's options are parsed is tested on the toy recipe (tests/zoo/test_recipes.py).
    assert TextClassificationRecipe.cli_options == {"--text-column": "text_column", "--label-column": "label_column"}
