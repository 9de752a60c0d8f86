"""NLP: text encoders and classifiers, their datasets, recipes and benchmark suite.

``register`` only declares specs; nothing here imports torch.
"""
from zoo.registry import Registry


def register(registry: Registry) -> None:
    """Declare the NLP architectures, tasks, datasets, recipes, suites and models."""
