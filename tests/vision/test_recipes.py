"""The image-classification recipe's declared ranges (its training runs are tested in test_digits_cnn.py)."""
import pytest

from vision.recipes import ImageClassificationRecipe
from zoo.errors import InputError


def test_image_recipe_ranges_hold_for_python_kwargs():
    with pytest.raises(InputError, match=r"'val_fraction' must be in \(0, 1\), got 0"):
        ImageClassificationRecipe(val_fraction=0)
