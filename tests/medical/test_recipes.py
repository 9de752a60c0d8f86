"""The two recipes, tiny: fine-tune the U-Net on your own NIfTI pairs; train a grey classifier on MedMNIST."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import zoo
from medical.io.nifti import write_nifti
from medical.recipes import Classification2DRecipe, DiceCELoss, PatchDataset, Segmentation3DRecipe
from tests.medical.helpers import small_phantom
from tests.medical.test_datasets import write_medmnist


def test_patches_favour_foreground_and_are_deterministic():
    labels = np.zeros((30, 30, 30), dtype=np.uint8)
    labels[5:8, 20:23, 10:13] = 3  # 27 voxels of 27,000
    image = np.zeros(labels.shape, dtype=np.float32)
    dataset = PatchDataset([image], [labels], patch_size=(8, 8, 8), length=40, foreground_fraction=0.5, seed=1)
    hits = sum(int((dataset[i][1] == 3).any()) for i in range(40))
    assert hits >= 12  # ~half are centred on the lesion; uniform sampling would hit it ~5% of the time
    torch_a, torch_b = dataset[7], dataset[7]
    assert (torch_a[0] == torch_b[0]).all() and (torch_a[1] == torch_b[1]).all()
    assert dataset[0][0].shape == (1, 8, 8, 8) and dataset[0][1].dtype.is_floating_point is False


def test_dice_ce_loss_is_low_for_a_right_answer():
    import torch

    targets = torch.randint(0, 3, (2, 6, 6, 6))
    right = torch.nn.functional.one_hot(targets, 3).movedim(-1, 1).float() * 20
    assert DiceCELoss()(right, targets) < 0.01 < DiceCELoss()(torch.zeros_like(right), targets)


def test_segmentation_recipe_fine_tunes_on_decathlon_pairs_with_other_labels(tmp_path):
    root = tmp_path / "Task01_Liver"
    pairs = []
    for seed in (41, 42):
        ct, labels = small_phantom(seed)
        labels = labels.with_array((labels.array == 1).astype(np.uint8))  # liver only
        write_nifti(ct, root / "imagesTr" / f"liver_{seed}.nii.gz")
        write_nifti(labels, root / "labelsTr" / f"liver_{seed}.nii.gz")
        pairs.append({"image": f"./imagesTr/liver_{seed}.nii.gz", "label": f"./labelsTr/liver_{seed}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}, "training": pairs,
                                                   "modality": {"0": "CT"}}))
    recipe = Segmentation3DRecipe(data=str(root), patches_per_epoch=4, patch_size=(16, 16, 16), spacing=(8.0, 8.0, 8.0),
                                  val_patches_per_case=2, num_threads=1, train={"epochs": 1, "batch_size": 2})
    result = recipe.run(tmp_path / "run", progress=False)
    model = zoo.load(str(tmp_path / "run"))
    assert model.card.labels == ["background", "liver"] and model.net.num_classes == 2
    assert model.card.preprocessing["spacing"] == [8.0, 8.0, 8.0]
    assert model.card.provenance["finetune_from"] == "medical/unet3d.ct_phantom"
    names = {(m["name"], m["split"]) for m in result.metrics}
    assert {("dice", "val"), ("dice_liver", "val"), ("hd95", "val")} <= names
    assert model.card.provenance["recipe"]["params"]["data"] == str(root)


def test_classification_recipe_on_a_medmnist_file(tmp_path):
    path = write_medmnist(tmp_path / "breastmnist.npz", sizes=(64, 16, 16))
    recipe = Classification2DRecipe(data=str(path), backbone="resnet10t", num_threads=1,
                                    train={"epochs": 3, "batch_size": 16, "lr": 3e-3})
    result = recipe.run(tmp_path / "run", progress=False)
    metrics = {(m["name"], m["split"]): m["value"] for m in result.metrics}
    assert metrics[("auc", "test")] > 0.8  # a bright square is easy to see
    model = zoo.load(str(tmp_path / "run"))
    assert model.card.labels == ["malignant", "normal, benign"] and model.net.conv1[0].in_channels == 1
    # The resolved recipe, once: its train config under recipe.params, not again beside the run's record.
    assert model.card.provenance["recipe"]["params"]["train"]["lr"] == 3e-3
    assert set(model.card.provenance["train"]) == {"epochs_run", "steps", "best", "minutes"}
    image = np.load(path)["test_images"][0]
    prediction = model.predict(image)
    assert prediction["label"] in model.card.labels and 0 <= prediction["score"] <= 1


def test_classification_recipe_needs_data():
    from zoo.errors import InputError

    with pytest.raises(InputError, match="needs data"):
        Classification2DRecipe().run("unused", progress=False)


def test_bundled_card_records_a_recipe_that_rebuilds_and_matches_the_spec():
    """`zoo reproduce` reruns the card's recipe: it must parse, and prepare volumes as the spec says."""
    from medical import PHANTOM_PREPROCESSING

    card = zoo.info("medical/unet3d.ct_phantom")
    recorded = card.provenance["recipe"]
    assert recorded["name"] == "segmentation-3d"
    recipe = Segmentation3DRecipe.from_overrides(recorded["params"])
    assert recipe.preprocessing() == PHANTOM_PREPROCESSING == card.preprocessing
    assert recipe.pretrained is False and recipe.data == "medical/ct-phantom"
    test_dice = card.metric("dice", "test")
    assert test_dice["value"] >= 0.90 and test_dice["cases"] == 6


def test_segmentation_recipe_ranges_hold_for_python_kwargs():
    from zoo.errors import InputError

    with pytest.raises(InputError, match=r"'patch_size' expects 3 numbers, got \(8, 8\)"):
        Segmentation3DRecipe(patch_size=(8, 8))
    with pytest.raises(InputError, match=r"item 0 of recipe field 'window' must be in \(0, inf\)"):
        Segmentation3DRecipe(window=(0.0, 40.0))
    assert Segmentation3DRecipe(window=(400.0, -1000.0)).window == (400.0, -1000.0)


def test_the_recipe_is_recorded_once_and_nested():
    from zoo.recipes import TrainConfig

    recipe = Classification2DRecipe(data="x.npz", train={"lr": 3e-3, "keep_checkpoints": 2})
    params = recipe.provenance("abc")["recipe"]["params"]
    assert params["train"]["lr"] == 3e-3 and params["train"]["monitor"] == "val_auc"
    assert not {"lr", "seed", "epochs"} & set(params)  # the loop's fields only under train
    assert "keep_checkpoints" not in params["train"] and "progress" not in params["train"]  # run options
    assert set(params["train"]) == {f.name for f in dataclasses.fields(TrainConfig)} - {"keep_checkpoints", "progress"}
    # What reproduce reads back: the same config, but for the run options.
    assert type(recipe).from_overrides(params).train == dataclasses.replace(recipe.train, keep_checkpoints=1)
    provenance = zoo.info("medical/unet3d.ct_phantom").provenance  # a bundled card records it so too
    assert "train" in provenance["recipe"]["params"] and "lr" not in provenance["recipe"]["params"]
    assert "config" not in provenance.get("train", {})
