"""The bundled digits model is what its recipe produces: retrain it and compare with its card."""
import zoo
from zoo.hashing import sha256_file
from zoo.recipes import Reproduction, reproduce


def test_reproduce_digits_cnn_matches_its_card(tmp_path):
    found = reproduce("vision/digits_cnn.sklearn", tmp_path / "again", progress=False)
    rows = found.rows
    assert all(row["ok"] for row in rows), rows
    assert found.card_weights == zoo.info("vision/digits_cnn.sklearn").files["weights.safetensors"]["sha256"]
    assert found.weights == sha256_file(tmp_path / "again" / "weights.safetensors")
    by_key = {(row["metric"], row["split"]): row for row in rows}
    test_accuracy = by_key[("accuracy", "test")]
    assert test_accuracy["reproduced"] >= 0.98
    # Deterministic recipe: the same number up to kernel differences between CPUs.
    assert abs(test_accuracy["diff"]) <= 0.01
    assert {("macro_f1", "test"), ("accuracy", "val")} <= set(by_key)


def test_reproduce_ends_with_a_verdict_and_its_exit_code(monkeypatch):
    from typer.testing import CliRunner

    import zoo.recipes
    from zoo.cli import app
    from zoo.recipes import _accepted_range

    card_metrics = {"accuracy": {"value": 0.99}, "mean_return": {"value": -109.5, "ci95": [-157.9, -61.2]}}
    assert _accepted_range(card_metrics["accuracy"]) == (0.98, 1.0)  # 0.01 absolute, as CPUs' kernels differ
    assert _accepted_range(card_metrics["mean_return"]) == (-157.9, -61.2)  # the card's own CI
    assert _accepted_range({"value": 2794.0}) == (2794.0 - 27.94, 2794.0 + 27.94)  # 1% of a large value

    def found(ok, weights):
        rows = [{"metric": "accuracy", "split": "test", "card": 0.99, "reproduced": 0.99 if ok else 0.95,
                 "diff": 0.0 if ok else -0.04, "accepted": [0.98, 1.0], "ok": ok}]
        return Reproduction(rows, "a" * 64, weights)

    for ok, weights, code, weights_line, verdict in (
            (True, "a" * 64, 0, "weights: byte-identical to the card's", "reproduced: all 1 card metrics match"),
            (True, "b" * 64, 0, "weights: differ from the card's", "reproduced: all 1 card metrics match"),
            (False, "b" * 64, 1, "weights: differ from the card's", "differs from the card: accuracy (test) by -0.0400")):
        monkeypatch.setattr(zoo.recipes, "reproduce", lambda model_id, out, ok=ok, weights=weights: found(ok, weights))
        result = CliRunner().invoke(app, ["reproduce", "vision/digits_cnn.sklearn"])
        lines = result.output.strip().splitlines()
        assert result.exit_code == code and lines[-1].startswith(verdict), result.output
        assert any(line.startswith(weights_line) for line in lines), result.output
