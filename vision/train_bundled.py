"""Re-make vision's bundled models (``vision/weights/NAME.*``) with the domain's recipes.

    python -m vision.train_bundled digits_cnn.sklearn [--resume] [--threads 1]
    python -m vision.train_bundled --list

(:mod:`zoo.bundled` runs them.) ``zoo reproduce vision/NAME`` retrains from the card alone and compares the metrics.
"""
from zoo.bundled import main

# NAME (the file stem in weights/) → (recipe, hyper-parameters); everything not given is the recipe's default.
CONFIGS: dict[str, tuple[str, dict]] = {
    "digits_cnn.sklearn": ("image-classification", {
        "model": "vision/digits_cnn.sklearn", "data": "vision/digits", "pretrained": False, "train": {"epochs": 30},
        "augment": "affine",
    }),
    # The composite's own 128-pixel pictures; ImageNet features of vision/efficientnet_lite0.in1k (the default).
    "fcos_efficientnet_lite0.fashion_composite": ("object-detection", {
        "data": "vision/fashion_composite", "image_size": 128, "train": {"epochs": 22},
    }),
    "lraspp_efficientnet_lite0.fashion_composite": ("semantic-segmentation", {
        "data": "vision/fashion_composite", "image_size": 128, "train": {"epochs": 24},
    }),
}


if __name__ == "__main__":
    main("vision", CONFIGS)
