"""The bundled digits model is what its recipe produces: retrain it and compare with its card."""
from zoo.recipes import reproduce


def test_reproduce_digits_cnn_matches_its_card(tmp_path):
    rows = reproduce("vision/digits-cnn.sklearn", tmp_path / "again", progress=False)
    by_key = {(row["metric"], row["split"]): row for row in rows}
    test_accuracy = by_key[("accuracy", "test")]
    assert test_accuracy["reproduced"] >= 0.98
    # Deterministic recipe: the same number up to kernel differences between CPUs.
    assert abs(test_accuracy["diff"]) <= 0.01
    assert {("macro_f1", "test"), ("accuracy", "val")} <= set(by_key)
