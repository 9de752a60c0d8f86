"""The ``zoo`` command as a user runs it: a subprocess, exit codes, one-line errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests.zoo import toy



def run_zoo(*args, check=True, env=None):
    result = subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_list_and_info():
    assert toy.MODEL_ID in toy.run_cli("list", "toy/*").stdout
    card = json.loads(toy.run_cli("info", toy.MODEL_ID, "--json").stdout)
    assert card["id"] == toy.MODEL_ID and card["files"]["weights.safetensors"]["sha256"]


def test_the_installed_domains_are_listed():
    # About the domain plug-in mechanism: the real `zoo list` shows the models of every installed domain.
    from zoo.registry import discover

    first = {}
    for spec in discover().list_models():
        first.setdefault(spec.domain, spec.id)
    domain, model_id = next(iter(first.items()))
    assert len(first) >= 4 and model_id in run_zoo("list", f"{domain}/*").stdout


def test_user_error_is_one_line_and_debug_shows_the_traceback():
    result = toy.run_cli("info", "toy/mlp.seed", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: unknown model 'toy/mlp.seed'; did you mean: {toy.MODEL_ID}")
    debug = toy.run_cli("--debug", "info", "toy/mlp.seed", check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_fetch_verify_and_clear_the_cache(isolated_zoo_home):
    toy.run_cli("fetch", toy.MODEL_ID)
    assert "mlp.seed0" in toy.run_cli("cache", "ls").stdout
    assert "1 ok, 0 corrupt" in toy.run_cli("cache", "verify").stdout
    blob = next((isolated_zoo_home / "blobs").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    blob.write_bytes(b"corrupted")
    verify = toy.run_cli("cache", "verify", check=False)
    assert verify.returncode == 1 and "0 ok, 1 corrupt" in verify.stdout and not blob.exists()
    assert "freed" in toy.run_cli("cache", "clear", "--yes").stdout


def run_console_script(*args):
    """The installed ``zoo`` script itself, as a user types it."""
    script = shutil.which("zoo")
    assert script, "the zoo console script is not on PATH: pip install -e ."
    return subprocess.run([script, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("args, message", [
    (["predict"], "Missing argument 'ID'"),
    (["prdict"], "No such command 'prdict'. Did you mean 'predict'?"),
    (["list", "--bogus"], "No such option: --bogus"),
    (["finetune", toy.MODEL_ID, "--epochs", "zero"], "Invalid value for '--epochs'"),
    (["export", toy.MODEL_ID], "Missing option '--out'"),
])
def test_usage_errors_are_one_line_with_exit_code_2(args, message):
    result = run_console_script(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = run_console_script("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"zoo (domain-zoo) {version('domain-zoo')}"


def test_a_model_without_weights_refuses_pretrained_and_list_says_where_weights_are(tmp_path, toy_registry):
    np.save(tmp_path / "x.npy", np.zeros(toy.IN_FEATURES, dtype=np.float32))
    result = toy.run_cli("predict", toy.BARE_ID, str(tmp_path / "x.npy"), check=False)
    assert result.returncode == 1 and result.stdout == "", result.stdout  # no prediction from random weights
    assert result.stderr.strip().splitlines() == [
        f"error: {toy.BARE_ID} has no pretrained weights: load it with pretrained=False for a fresh "
        f"network, or fine-tune it first (zoo finetune {toy.BARE_ID} --scratch --data ...)"]
    assert zoo.load(toy.BARE_ID, pretrained=False).card.id == toy.BARE_ID

    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip()
            for line in toy.run_cli("list").stdout.splitlines() if line.count("│") > 2}
    assert rows[toy.BARE_ID] == "none"
    assert rows[toy.MODEL_ID] == "not cached"  # a fresh ZOO_HOME


def test_predict_reports_a_bad_file_and_goes_on_with_the_others(tmp_path):
    points = toy.toy_blobs()["test"][0]
    good = [tmp_path / "a.npy", tmp_path / "b.npy"]
    for path, point in zip(good, points):
        np.save(path, point)
    np.save(tmp_path / "bad.npy", np.float32(1.0))  # one number, not an array of them
    result = toy.run_cli("predict", toy.MODEL_ID, str(good[0]), str(tmp_path / "bad.npy"), str(good[1]),
                         "--top-k", "3", check=False)
    assert result.returncode == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(good[0]), str(good[1])]
    assert all(len(line.split(": ")[1].split(", ")) == 3 for line in result.stdout.splitlines())  # three labels
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {tmp_path / 'bad.npy'}: expected an array of at least one")


def test_predict_checks_inputs_and_out_before_the_model_runs(tmp_path):
    missing = toy.run_cli("predict", toy.MODEL_ID, str(tmp_path / "nope.npy"), check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nope.npy'}"
    wrong = toy.run_cli("predict", toy.MODEL_ID, str(tmp_path), "--out", str(tmp_path / "p.txt"), check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "error: --out: expected a file ending in one of .json, got p.txt"


def test_predict_out_writes_one_prediction_in_the_task_format(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(toy.IN_FEATURES, dtype=np.float32))
    two = toy.run_cli("predict", toy.MODEL_ID, str(tmp_path / "x.npy"), str(tmp_path / "x.npy"),
                      "--out", str(tmp_path / "p.json"), check=False)
    assert two.returncode == 1 and "give one input, got 2" in two.stderr
    toy.run_cli("predict", toy.MODEL_ID, str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.json"))
    assert json.loads((tmp_path / "p.json").read_text())["label"] in toy.LABELS
    # Only a task whose adapter draws (a draw_suffix) takes --draw; refused before the model runs.
    drawn = toy.run_cli("predict", toy.MODEL_ID, str(tmp_path / "x.npy"), "--out", str(tmp_path / "q.json"), "--draw",
                        check=False)
    assert drawn.returncode == 1 and "does not draw its predictions; drop --draw" in drawn.stderr
    assert not (tmp_path / "q.json").exists()


def test_datasets_are_listed():
    listed = toy.run_cli("list", "--datasets", "toy/*")
    assert [line.split("│")[1].strip() for line in listed.stdout.splitlines() if line.startswith("│ toy/")] == \
        ["toy/blobs"]


def test_info_counts_params_a_card_lacks_and_never_prints_none():
    card = json.loads(toy.run_cli("info", toy.BARE_ID, "--json").stdout)
    assert card["params"] == 67  # the architecture counted on the meta device: it has no weights
    shown = toy.run_cli("info", toy.BARE_ID).stdout
    assert "67" in shown and "None" not in shown
    assert "- (no pretrained weights: fine-tune it first)" in shown


def test_info_never_builds_an_untrusted_folder_card_to_count_its_params(tmp_path, toy_registry):
    zoo.load(toy.MODEL_ID, device="cpu").save(tmp_path / "model")
    card_file = tmp_path / "model" / "card.json"
    card = json.loads(card_file.read_text())
    card_file.write_text(json.dumps({**card, "params": None, "arch_args": {"bogus": 1}}))
    shown = toy.run_cli("info", str(tmp_path / "model")).stdout
    assert "params" in shown and "None" not in shown


def test_top_k_labels_holding_commas_are_quoted():
    from zoo.model import TaskAdapter

    prediction = {"label": "tench, Tinca tinca", "score": 0.9,
                  "top_k": [("tench, Tinca tinca", 0.9), ("goldfish", 0.05), ("hen", 0.01)]}
    assert TaskAdapter.describe(None, prediction, top_k=2) == '"tench, Tinca tinca" 0.9000, goldfish 0.0500'
