"""Vision: image classifiers, their datasets, recipes and benchmark suite.

``register`` only declares specs; nothing here imports torch.
"""
from zoo.registry import (
    ArchitectureSpec,
    DatasetSpec,
    RecipeSpec,
    Registry,
    SuiteSpec,
    TaskSpec,
    bundled_model,
)

DIGITS_CLASSES = [str(d) for d in range(10)]


def register(registry: Registry) -> None:
    """Declare the vision architectures, tasks, datasets, recipes, suites and models."""
    registry.add_architecture(ArchitectureSpec("digits_cnn", "vision.models.digits_cnn:digits_cnn"))
    registry.add_task(TaskSpec("image-classification", "vision.tasks:ImageClassification"))
    registry.add_dataset(
        DatasetSpec(
            "vision/digits",
            task="image-classification",
            loader="vision.datasets:digits",
            description="scikit-learn's 1,797 8×8 hand-written digits; fixed stratified 65/15/20 split",
            card={"license": "CC BY 4.0 (UCI ML hand-written digits)", "source": "sklearn.datasets.load_digits", "classes": DIGITS_CLASSES},
        )
    )
    registry.add_recipe(
        RecipeSpec(
            "image-classification",
            task="image-classification",
            recipe="vision.recipes:ImageClassificationRecipe",
            description="fine-tune or train an image classifier on a dataset id or a class-folder tree",
        )
    )
    registry.add_suite(SuiteSpec("vision", "vision.bench:suite", description="image classification: quality, latency, throughput"))
    registry.add_model(
        bundled_model(
            "vision",
            "digits-cnn.sklearn",
            id="vision/digits-cnn.sklearn",
            task="image-classification",
            architecture="digits_cnn",
            arch_args={"num_classes": 10, "in_chans": 1, "widths": [16, 32, 64]},
            description="small CNN for 8×8 grey digits, trained from scratch by the image-classification recipe",
            card={
                "labels": DIGITS_CLASSES,
                "input": {"shape": [1, 8, 8], "dtype": "float32"},
                "preprocessing": {
                    "size": [8, 8],
                    "channels": 1,
                    "mean": [0.5],
                    "std": [0.5],
                    "array_range": [0, 16],
                    "pil": "grey-level, bright ink on dark background, box-resized to 8×8",
                },
                "license": "Apache-2.0",
            },
        )
    )
