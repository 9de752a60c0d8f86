"""``zoo`` on the digits CNN and the ImageNet classifiers: predict on image files, fine-tune on a folder,
resume, the log's epoch lines, ImageNet labels in ``info``, where bundled and remote weights are."""
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from tests.zoo.test_cli import run_console_script, run_zoo


@pytest.mark.slow
def test_predict_on_image_files_and_npy(tmp_path):
    images = load_digits().images
    Image.fromarray((images[1] / 16 * 255).astype(np.uint8)).save(tmp_path / "one.png")
    np.save(tmp_path / "two.npy", images[2])
    lines = run_zoo("predict", "vision/digits_cnn.sklearn", str(tmp_path / "one.png"), str(tmp_path / "two.npy"), "--json").stdout.splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["1", "2"]
    (tmp_path / "bad.png").write_bytes(b"nope")
    bad = run_zoo("predict", "vision/digits_cnn.sklearn", str(tmp_path / "bad.png"), check=False)
    assert bad.returncode == 1 and "could not read" in bad.stderr
    # --out writes one prediction in the task's file format; a classifier has none, and says so.
    no_writer = run_zoo("predict", "vision/digits_cnn.sklearn", str(tmp_path / "two.npy"), "--out", str(tmp_path / "p"),
                        check=False)
    assert no_writer.returncode == 1 and "does not write predictions to files" in no_writer.stderr
    assert not (tmp_path / "p").exists()
    two = run_zoo("predict", "vision/digits_cnn.sklearn", str(tmp_path / "one.png"), str(tmp_path / "two.npy"),
                  "--out", str(tmp_path / "p"), check=False)
    assert two.returncode == 1 and "does not write predictions to files" in two.stderr  # nor into folders


def _digit_folder(root, count=600):
    data = load_digits()
    for index, (image, target) in enumerate(zip(data.images[:count], data.target[:count])):
        if target in (3, 8):
            folder = root / f"d{target}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image / 16 * 255).astype(np.uint8)).save(folder / f"{index}.png")


@pytest.mark.slow
def test_finetune_on_a_folder_writes_a_loadable_model(tmp_path):
    _digit_folder(tmp_path / "data")
    out = tmp_path / "run"
    result = run_zoo(
        "finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "data"), "--epochs", "2",
        "--out", str(out), "--set", "train.batch_size=16", "--set", "augment=none",
    )
    assert "model written to" in result.stdout
    model = zoo.load(out, device="cpu")
    assert model.card.labels == ["d3", "d8"]
    assert model.card.provenance["recipe"]["params"]["train"]["epochs"] == 2
    assert model.card.metric("accuracy", split="val")["value"] >= 0.9
    bad = run_zoo("finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "data"), "--set", "epochz=1", check=False)
    assert bad.returncode == 1 and "no field(s) ['epochz']" in bad.stderr


@pytest.mark.slow
def test_finetune_resume_latest_or_a_path_and_checkpoint_errors_name_the_cli_form(tmp_path):
    _digit_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "data"), "--epochs", "2",
            "--keep-checkpoints", "2", "--out", str(out), "--set", "train.batch_size=16", "--set", "augment=none"]
    run_zoo(*args)
    older, latest = sorted((out / "checkpoints").glob("step-*"))
    trainer_json = latest / "trainer.json"
    trainer_json.write_text(trainer_json.read_text().replace('"epoch": 2', '"epoch": 3', 1))

    edited = run_zoo(*args, "--resume", check=False)
    assert edited.returncode == 1 and len(edited.stderr.strip().splitlines()) == 1
    assert "trainer.json is corrupt, truncated or edited" in edited.stderr
    assert f"intact checkpoints still there (nothing was deleted): {older}" in edited.stderr
    assert "zoo finetune ... --resume PATH" in edited.stderr

    resumed = run_zoo(*args, "--resume", str(older))
    assert "model written to" in resumed.stdout
    assert (latest / "manifest.json").is_file() and "epoch" in json.loads(trainer_json.read_text())

    stray = run_zoo(*args[:2], str(older), *args[2:], check=False)
    assert stray.returncode == 1 and "a checkpoint path goes after --resume" in stray.stderr

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "checkpoints").write_text("")
    blocked = run_zoo(*args[:-6], "--out", str(tmp_path / "other"), *args[-4:], "--resume", check=False)
    assert blocked.returncode == 1 and "checkpoints is a file, not a directory" in blocked.stderr


@pytest.mark.slow
def test_finetune_in_a_log_prints_one_plain_line_per_epoch_with_speed_and_val_metric(tmp_path):
    _digit_folder(tmp_path / "data")
    result = run_zoo("finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "data"), "--epochs", "3",
                     "--out", str(tmp_path / "run"), "--set", "train.batch_size=16", "--set", "augment=none")
    lines = result.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"], result.stdout
    for line in epochs:
        assert "samples/s" in line and "val_accuracy" in line and "train_loss " in line, line
    assert "nan" not in result.stdout.lower() and "" not in lines  # no nan loss, no blank lines
    assert "\x1b" not in result.stdout  # no live bar's escape codes in a log
    # By default the run keeps one checkpoint: all an exact --resume needs.
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir()] == ["step-00000018"]


@pytest.mark.slow
def test_finetune_keep_checkpoints_chooses_how_many_and_resume_uses_the_newest(tmp_path):
    _digit_folder(tmp_path / "data", count=200)
    args = ["finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "data"), "--epochs", "2",
            "--out", str(tmp_path / "run"), "--set", "train.batch_size=16", "--set", "augment=none"]
    run_zoo(*args, "--keep-checkpoints", "2")
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir())
    assert len(kept) == 2
    resumed = run_zoo(*args, "--keep-checkpoints", "1", "--resume")  # keep is no hyper-parameter: may change
    assert "model written to" in resumed.stdout
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert "keep_checkpoints" not in card["provenance"]["recipe"]["params"]  # nor recorded as one
    bad = run_console_script(*args, "--keep-checkpoints", "0")
    assert bad.returncode == 2 and "--keep-checkpoints" in bad.stderr
    assert "--keep-checkpoints" in run_zoo("finetune", "--help").stdout


@pytest.mark.parametrize("model_id, first_labels", [
    ("vision/efficientnet_lite0.in1k", ["tench, Tinca tinca", "goldfish, Carassius auratus"]),
    pytest.param("timm:resnet18", ["tench, Tinca tinca", "goldfish, Carassius auratus"], marks=pytest.mark.slow),
    pytest.param("torchvision:resnet18", ["tench", "goldfish"], marks=pytest.mark.slow),
])
def test_info_keeps_imagenet_labels_a_list_and_shows_where_each_ends(model_id, first_labels):
    card = json.loads(run_zoo("info", model_id, "--json").stdout)
    assert isinstance(card["labels"], list) and len(card["labels"]) == 1000
    assert card["labels"][:2] == first_labels
    assert card["params"] > 1_000_000 and card["source"]
    shown = run_zoo("info", model_id).stdout
    assert "1000: " + ", ".join(f'"{label}"' for label in first_labels) in shown  # quoted: labels hold commas
    assert "None" not in shown


def test_list_says_where_weights_are():
    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip()
            for line in run_console_script("list").stdout.splitlines() if line.count("│") > 2}
    assert rows["medical/classifier2d.resnet18"] == "none"
    assert rows["vision/digits_cnn.sklearn"] == "bundled"
    assert rows["vision/resnet18.tv_in1k"] == "not cached"  # a fresh ZOO_HOME


def test_predict_reports_a_bad_image_file_and_goes_on_with_the_others(tmp_path):
    digits = load_digits()
    good = [tmp_path / "a.npy", tmp_path / "b.npy"]
    for path, image in zip(good, digits.images[:2]):
        np.save(path, image)
    np.save(tmp_path / "bad.npy", np.zeros(4))  # not an image
    result = run_console_script("predict", "vision/digits_cnn.sklearn", str(good[0]), str(tmp_path / "bad.npy"),
                                str(good[1]), "--top-k", "3")
    assert result.returncode == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(good[0]), str(good[1])]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {tmp_path / 'bad.npy'}: expected an image array")


@pytest.mark.slow
def test_a_missing_data_path_is_named_and_datasets_are_listed(tmp_path):
    result = run_console_script("finetune", "vision/digits_cnn.sklearn", "--data", str(tmp_path / "mydata"),
                                "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and not (tmp_path / "run").exists()
    assert result.stderr.strip().startswith(f"error: no file or folder named '{tmp_path / 'mydata'}', and unknown dataset")
    assert result.stderr.strip().endswith("run `zoo list --datasets` to see them")
    listed = run_console_script("list", "--datasets", "vision/*")
    assert listed.returncode == 0
    assert [line.split("│")[1].strip() for line in listed.stdout.splitlines() if line.startswith("│ vision/")] == \
        ["vision/digits", "vision/fashion-mnist", "vision/fashion_composite"]


@pytest.mark.parametrize("model_id", [pytest.param("vision/resnet18.tv_in1k", marks=pytest.mark.slow),
                                      "torchvision:resnet18"])
def test_a_missing_input_is_reported_before_the_model_is_fetched_or_built(model_id, tmp_path, monkeypatch):
    """Offline with an empty store, building the first two would fail on their weights: the input check comes first."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = run_console_script("predict", model_id, str(tmp_path / "missing.png"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: no such file or folder: {tmp_path / 'missing.png'}", result.stderr
