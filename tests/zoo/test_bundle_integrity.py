"""Export bundles are tamper-evident (issue 13, items 2 and 8): every file is in the manifest, the manifest
is covered by its digest, the digest can be pinned, and only the zoo's own batchers are imported."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests.bundles import edit_json
from tests.zoo import toy
from zoo import runtime
from zoo.errors import BackendError, InputError, UnsafeFormatError, WeightsIntegrityError
from zoo.hashing import sha256_file
from zoo.runtime import load_bundle, recorded_digest, seal

POINTS = list(toy.toy_blobs()["test"][0][:4])


def set_shape(data):
    data["preprocessing"]["spec"]["shape"] = [5]


def test_an_untouched_bundle_loads_pinned_and_predicts(bundle, toy_registry):
    model = load_bundle(bundle, sha256=recorded_digest(bundle))
    expected = zoo.load(toy.MODEL_ID, device="cpu").predict(POINTS)
    assert [p["label"] for p in model.predict(POINTS)] == [p["label"] for p in expected]


def test_bundle_json_is_hashed_a_changed_mean_is_refused(bundle):
    edit_json(bundle / "bundle.json", set_shape)
    with pytest.raises(WeightsIntegrityError, match="bundle.json") as caught:
        load_bundle(bundle)
    assert caught.value.expected != caught.value.actual


def test_model_edited_with_its_hash_in_the_manifest_is_refused(bundle):
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\x01")
    edit_json(bundle / "manifest.json",
              lambda m: m["files"]["model.onnx"].update(sha256=sha256_file(model)))
    with pytest.raises(WeightsIntegrityError, match="manifest.json"):
        load_bundle(bundle)


@pytest.mark.parametrize("field", ["sha256", "size"])
def test_a_deleted_hash_is_refused_even_after_resealing(bundle, field):
    edit_json(bundle / "manifest.json", lambda m: m["files"]["model.onnx"].pop(field))
    with pytest.raises(WeightsIntegrityError, match="manifest.json"):
        load_bundle(bundle)
    manifest = (bundle / "manifest.json").read_bytes()  # the digest rewritten too: the missing hash still fails
    (bundle / "manifest.sha256").write_text(f"{runtime.hashlib.sha256(manifest).hexdigest()}  manifest.json\n")
    with pytest.raises(WeightsIntegrityError, match=f"model.onnx.*a {field}"):
        load_bundle(bundle)


def test_a_full_rewrite_fails_against_the_pinned_digest(bundle):
    pinned = recorded_digest(bundle)
    edit_json(bundle / "bundle.json", set_shape)
    seal(bundle)  # every file rewritten consistently: only the pin can tell
    with pytest.raises(WeightsIntegrityError, match=f"manifest.json: expected {pinned}"):
        load_bundle(bundle, sha256=pinned)
    with pytest.raises(InputError, match="64 lowercase hex"):
        load_bundle(bundle, sha256="abc")


@pytest.mark.parametrize("ref", ["this:x", "os:system", "zoo.runtime:Bundle"])
def test_preprocessing_ref_outside_the_allow_list_is_refused_before_import(bundle, ref):
    edit_json(bundle / "bundle.json", lambda b: b["preprocessing"].update(ref=ref))
    seal(bundle)
    was_imported = "this" in sys.modules
    with pytest.raises(UnsafeFormatError, match="not one of the zoo's batchers"):
        load_bundle(bundle)
    assert ("this" in sys.modules) == was_imported


def test_every_batcher_the_zoo_exports_is_allowed():
    from zoo.registry import resolve_ref

    for ref in runtime.BATCHERS:
        assert hasattr(resolve_ref(ref), "from_bundle"), ref


@pytest.mark.parametrize("change", ["add", "remove", "folder", "symlink"])
def test_unlisted_missing_or_non_regular_files_are_refused(bundle, tmp_path, change):
    if change == "add":
        (bundle / "notes.txt").write_text("hello")
    elif change == "remove":
        (bundle / "parity.json").unlink()
    elif change == "folder":
        (bundle / "extra").mkdir()
    else:  # a symlink to an identical copy outside the bundle
        shutil.copyfile(bundle / "card.json", tmp_path / "card.json")
        (bundle / "card.json").unlink()
        (bundle / "card.json").symlink_to(tmp_path / "card.json")
    with pytest.raises(WeightsIntegrityError, match=r"notes.txt|parity.json: expected [0-9a-f]{64}, got no file|"
                                                    r"extra|card.json.*not a regular file"):
        load_bundle(bundle)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "a/b", ".."])
def test_manifest_names_must_be_plain_file_names(bundle, name):
    edit_json(bundle / "manifest.json", lambda m: m["files"].update({name: {"sha256": "0" * 64, "size": 1}}))
    manifest = (bundle / "manifest.json").read_bytes()
    (bundle / "manifest.sha256").write_text(f"{runtime.hashlib.sha256(manifest).hexdigest()}  manifest.json\n")
    with pytest.raises(InputError, match="expected a plain file name"):
        load_bundle(bundle)


BAD_BUNDLE_JSON = {
    "not json": b"{not json",
    "a list": b"[1, 2]",
    "not utf-8": b"\xff\xfe{}",
    "no format": lambda b: b.pop("format"),
    "old version": lambda b: b.update(version=1),
    "version as text": lambda b: b.update(version="2"),
    "version as bool": lambda b: b.update(version=True),
    "no preprocessing": lambda b: b.pop("preprocessing"),
    "spec a list": lambda b: b["preprocessing"].update(spec=[1]),
    "ref a number": lambda b: b["preprocessing"].update(ref=3),
    "shape missing": lambda b: b["preprocessing"]["spec"].pop("shape"),
    "shape a number": lambda b: b["preprocessing"]["spec"].update(shape=4),
    "shape a word": lambda b: b["preprocessing"]["spec"].update(shape="this:x"),
    "shape zero": lambda b: b["preprocessing"]["spec"].update(shape=[0]),
    "dtype int": lambda b: b["preprocessing"]["spec"].update(dtype="int64"),
    "dtype unknown": lambda b: b["preprocessing"]["spec"].update(dtype="float99"),
    "no postprocessing": lambda b: b.pop("postprocessing"),
    "unknown kind": lambda b: b["postprocessing"].update(kind="tracking"),
    "top_k text": lambda b: b["postprocessing"].update(top_k="5"),
    "top_k zero": lambda b: b["postprocessing"].update(top_k=0),
    "inputs not a list": lambda b: b.update(inputs={"name": "input"}),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLE_JSON))
def test_a_bad_bundle_json_is_a_zoo_error_even_when_resealed(bundle, case):
    change = BAD_BUNDLE_JSON[case]
    path = bundle / "bundle.json"
    path.write_bytes(change) if isinstance(change, bytes) else edit_json(path, change)
    with pytest.raises(WeightsIntegrityError, match="bundle.json"):
        load_bundle(bundle)
    seal(bundle)
    with pytest.raises((InputError, UnsafeFormatError), match="bundle.json"):
        load_bundle(bundle)


@pytest.mark.parametrize("change", ["truncated", "garbage", "empty", "missing"])
def test_a_missing_or_garbage_model_is_a_zoo_error_even_when_resealed(bundle, change):
    model = bundle / "model.onnx"
    if change == "missing":
        model.unlink()
    else:
        model.write_bytes({"truncated": model.read_bytes()[:model.stat().st_size // 2], "garbage": b"\x08\x07garbage" * 100,
                           "empty": b""}[change])
    with pytest.raises(WeightsIntegrityError, match="model.onnx"):
        load_bundle(bundle)
    seal(bundle)
    with pytest.raises((InputError, BackendError), match="model.onnx"):
        load_bundle(bundle)


def test_labels_that_do_not_match_the_output_are_a_zoo_error(bundle):
    edit_json(bundle / "card.json", lambda c: c.update(labels=["a", "b"]))
    seal(bundle)
    with pytest.raises(BackendError, match="expected 4 rows of 2 float logits"):
        load_bundle(bundle).predict(POINTS)


@pytest.mark.parametrize("where", ["missing folder", "a file", "old bundle"])
def test_not_a_bundle_says_so(bundle, tmp_path, where):
    target = {"missing folder": tmp_path / "nope", "a file": bundle / "card.json", "old bundle": bundle}[where]
    if where == "old bundle":
        (bundle / "manifest.sha256").unlink()
    with pytest.raises(InputError, match="expected an exported bundle with manifest.sha256"):
        load_bundle(target)


def test_the_cli_refuses_a_tampered_bundle_in_one_line(bundle, tmp_path):
    edit_json(bundle / "bundle.json", set_shape)
    np.save(tmp_path / "x.npy", POINTS[0])
    result = subprocess.run([sys.executable, "-m", "zoo", "predict", str(bundle), str(tmp_path / "x.npy")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error:")
