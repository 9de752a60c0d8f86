"""A bundle's image preprocessing (vision.transforms:ImageBatcher): a bad spec in bundle.json is a zoo error,
even when the bundle is resealed, and only the allow-listed batcher class of the module is imported."""
import shutil

import pytest

from tests.bundles import edit_json
from zoo.errors import InputError, UnsafeFormatError, WeightsIntegrityError
from zoo.export import export
from zoo.runtime import load_bundle, seal


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export("vision/digits_cnn.sklearn", tmp_path_factory.mktemp("export") / "digits")


@pytest.fixture
def bundle(exported, tmp_path):
    return shutil.copytree(exported, tmp_path / "bundle")


def test_another_class_of_the_image_module_is_refused(bundle):
    edit_json(bundle / "bundle.json", lambda b: b["preprocessing"].update(ref="vision.transforms:ImageTransform"))
    seal(bundle)
    with pytest.raises(UnsafeFormatError, match="not one of the zoo's batchers"):
        load_bundle(bundle)


BAD_IMAGE_SPECS = {
    "size missing": lambda b: b["preprocessing"]["spec"].pop("size"),
    "size a number": lambda b: b["preprocessing"]["spec"].update(size=8),
    "channels text": lambda b: b["preprocessing"]["spec"].update(channels="many"),
    "size a word": lambda b: b["preprocessing"]["spec"].update(size="this:x"),
    "size of three": lambda b: b["preprocessing"]["spec"].update(size=[8, 8, 8]),
    "mean of two": lambda b: b["preprocessing"]["spec"].update(mean=[0.5, 0.5]),
    "std zero": lambda b: b["preprocessing"]["spec"].update(std=[0]),
    "array_range reversed": lambda b: b["preprocessing"]["spec"].update(array_range=[16, 0]),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGE_SPECS))
def test_a_bad_image_spec_is_a_zoo_error_even_when_resealed(bundle, case):
    edit_json(bundle / "bundle.json", BAD_IMAGE_SPECS[case])
    with pytest.raises(WeightsIntegrityError, match="bundle.json"):
        load_bundle(bundle)
    seal(bundle)
    with pytest.raises((InputError, UnsafeFormatError), match="bundle.json"):
        load_bundle(bundle)
