"""Re-make medical's bundled models (``medical/weights/NAME.*``) with the domain's recipes.

    python -m medical.train_bundled unet3d.ct_phantom [--resume] [--threads 1]
    python -m medical.train_bundled --list

(:mod:`zoo.bundled` runs them; the U-Net takes about 13 minutes on one CPU core.) ``zoo reproduce
medical/NAME`` retrains from the card alone and compares the metrics.
"""
from zoo.bundled import main

# NAME (the file stem in weights/) → (recipe, hyper-parameters); everything not given is the recipe's default.
CONFIGS: dict[str, tuple[str, dict]] = {
    "unet3d.ct_phantom": ("segmentation-3d", {
        "model": "medical/unet3d.ct_phantom", "data": "medical/ct-phantom", "pretrained": False, "num_threads": 1,
    }),
}


if __name__ == "__main__":
    main("medical", CONFIGS)
