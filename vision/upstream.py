"""The upstream zoos behind one door: ``timm:NAME`` and ``torchvision:MODEL[.WEIGHTS]``.

Both prefixes are :class:`zoo.registry.SourceSpec` pass-throughs, so
``zoo.load("timm:resnet50.a1_in1k")``, ``zoo.info(...)``, ``zoo.list_models("timm:*resnet*")``
and ``zoo fetch timm:...`` reach the whole upstream catalogue. The returned
:class:`zoo.Model` carries a card built from the upstream's own metadata (labels,
preprocessing, license, source), so ``Model.save`` writes a directory that
``zoo.load(dir)`` rebuilds through the ``timm`` / ``torchvision`` architectures below.

Naming
------
``timm:NAME``
    any name ``timm.create_model`` takes: ``ARCH.TAG`` (``resnet50.a1_in1k``) or a bare
    ``ARCH``, which timm resolves to its default tag; the card's id is always the
    resolved ``timm:ARCH.TAG``.
``torchvision:MODEL[.WEIGHTS]``
    a classification, detection or segmentation model of ``torchvision.models.list_models`` (the
    detectors and segmenters are :mod:`vision.upstream_dense`'s) and, optionally, the
    name of an entry of its weights enum in any case (``torchvision:resnet50.imagenet1k_v2``);
    without one, the enum's ``DEFAULT``. The card's id is always the resolved, lower-case
    ``torchvision:MODEL.WEIGHTS`` (``torchvision:resnet18.imagenet1k_v1``).

Where the files come from
-------------------------
* timm: the pretrained config's Hugging Face repo, through ``huggingface_hub``'s cache
  (``HF_HUB_CACHE`` / ``HF_HOME``, read when called), ``model.safetensors`` preferred as
  timm does; ``ZOO_OFFLINE=1`` (or ``HF_HUB_OFFLINE``) only looks in that cache. Its
  state dict is then handed to ``timm.create_model(pretrained=True, num_classes=...)``,
  so timm's own head adaptation and checkpoint filters still apply.
* torchvision (and timm configs with only a URL): a pinned file of the zoo store
  (:mod:`zoo.cache`), pinned by the sha256 prefix its upstream file name carries (all
  ``torch.hub`` publishes), taken from torch's hub cache ``$TORCH_HOME/hub/checkpoints/<file>``
  when it is there, else downloaded from the URL, and checked against the prefix either way.
  ``torch.hub.load_state_dict_from_url`` (what torchvision calls) unpickles with
  ``weights_only=False``; the zoo never does: the store reads the pickle once with
  ``torch.load(weights_only=True)``, converts it to safetensors and records that, so every
  later load reads the safetensors file. Offline and not cached:
  :class:`zoo.errors.OfflineError` naming ``zoo fetch``.

Nothing here imports torch, timm or torchvision at module level: ``vision.register``
imports this module to declare the sources and the first-class ids.
"""
from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from zoo.errors import DownloadError, InputError, OfflineError, UnknownModelError
from zoo.hashing import sha256_file
from zoo.hub import assemble
from zoo.registry import ModelSpec, WeightFile

TASK = "image-classification"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


# =============================================================================
# timm
# =============================================================================
def build_timm(model_name: str, num_classes: int | None = None, **kwargs: Any):
    """The ``timm`` architecture: ``timm.create_model(model_name)`` without pretrained weights."""
    import timm

    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return timm.create_model(model_name, pretrained=False, **kwargs)


def list_timm(pattern: str) -> list[str]:
    """timm's pretrained ``ARCH.TAG`` names matching an fnmatch pattern (``*resnet*``)."""
    import timm

    return timm.list_models(pattern or "*", pretrained=True)


def load_timm(name: str, *, pretrained: bool = True, num_classes: int | None = None, **options: Any):
    """A :class:`zoo.Model` for ``timm:NAME`` (weights through timm's Hugging Face hub)."""
    if options:
        raise InputError(f"timm:{name} takes no load options, got {sorted(options)}")
    import timm

    cfg = _timm_cfg(timm, name)
    resolved = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    files: dict[str, dict[str, Any]] = {}
    overlay = None
    if pretrained:
        path, files = _timm_weights(cfg, resolved)
        # Local weights override the config's sources; timm still adapts the head and filters keys.
        from zoo.conversions import sniff

        safe = sniff(path) == "safetensors"  # a converted store blob has no .safetensors suffix for timm to see
        overlay = {"state_dict": _read_state(path, f"timm:{resolved}")} if safe else {"file": str(path)}
        overlay["source"] = None
    kwargs = {} if num_classes is None else {"num_classes": int(num_classes)}
    try:
        net = timm.create_model(resolved, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as e:  # load_state_dict mismatch: the file is not this architecture's
        if not pretrained:
            raise
        raise InputError(f"weights {files and next(iter(files.values()))['path']} do not fit "
                         f"timm:{resolved}: {e}") from None
    head_kept = num_classes is None or int(num_classes) == cfg.num_classes
    card = _timm_card(timm, net, cfg, resolved, pretrained=pretrained, head_kept=head_kept, files=files)
    return assemble(net, card, {name: Path(meta["path"]) for name, meta in files.items()})


def _timm_cfg(timm, name: str):
    """timm's pretrained config for NAME (default tag when none is given), or an error naming close matches."""
    cfg = None
    if timm.is_model(name):
        try:
            cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
        except RuntimeError:  # a known architecture with an unknown tag
            cfg = None
        else:
            if cfg is None:  # an architecture with no pretrained config at all: fresh weights only
                from timm.models import PretrainedCfg

                cfg = PretrainedCfg(architecture=name.partition(".")[0])
    if cfg is None:
        known = [f"timm:{n}" for n in timm.list_models(pretrained=True)]
        raise UnknownModelError(f"timm:{name}", known, kind="timm model")
    return cfg


def _timm_weights(cfg, resolved: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The local weights file timm's config points at (fetched if needed) and its card entry."""
    zoo_id = f"timm:{resolved}"
    if cfg.custom_load:
        raise InputError(f"{zoo_id} loads its weights with timm's custom loader (e.g. .npz); "
                         "the zoo only routes state-dict files: use timm.create_model directly")
    if cfg.hf_hub_id:
        return _hf_weights(cfg, zoo_id)
    if cfg.url:
        return _torch_hub_weights(cfg.url, zoo_id)
    if cfg.file and Path(cfg.file).is_file():
        path = Path(cfg.file)
        return path, {path.name: {"sha256": sha256_file(path), "size": path.stat().st_size, "source": str(path),
                                  "format": _format_of(path), "path": str(path)}}
    raise InputError(f"timm has no pretrained weights for {zoo_id}; load it with pretrained=False, "
                     f"or pick a tagged name from `zoo list 'timm:{cfg.architecture}*'`")


def _hf_candidates(filename: str | None) -> list[str]:
    """Files to try in a timm Hugging Face repo: safetensors first, as timm does."""
    if not filename:
        return ["model.safetensors", "pytorch_model.bin"]
    if filename.endswith(".safetensors"):
        return [filename]
    safe = {"pytorch_model.bin": "model.safetensors", "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}
    return [safe[filename], filename] if filename in safe else [filename]


def _hf_weights(cfg, zoo_id: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """hf_hub_download of the repo's weights (only its local cache when offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled

    from zoo.cache import hf_cache_dir, hub_offline, offline_reason

    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    candidates = _hf_candidates(cfg.hf_hub_filename)
    offline = hub_offline()
    not_cached = False
    for filename in candidates:
        try:
            local = hf_hub_download(repo_id, filename, revision=revision or None, cache_dir=hf_cache_dir(),
                                    local_files_only=offline)
        except (LocalEntryNotFoundError, OfflineModeIsEnabled):
            not_cached = True  # offline (ours or HF_HUB_OFFLINE) and not in the HF cache: try the next name
            continue
        except EntryNotFoundError:  # the repo has no such file: try the next name
            continue
        except Exception as e:  # huggingface_hub raises many types; all mean "could not get it"
            raise DownloadError(f"download of hf://{repo_id}/{filename} for {zoo_id} failed: "
                                f"{type(e).__name__}: {e}") from None
        return Path(local), {filename: _hf_entry(Path(local), repo_id, filename)}
    if not_cached:
        raise OfflineError(
            f"{zoo_id!r} needs {candidates[0]} from hf://{repo_id}, which is not in the Hugging Face cache "
            f"({hf_cache_dir() or '~/.cache/huggingface/hub'}) and {offline_reason()}; "
            f"run `zoo fetch {zoo_id}` while online, then retry"
        )
    raise DownloadError(f"hf://{repo_id} has none of {candidates} for {zoo_id}")


def _hf_entry(local: Path, repo_id: str, filename: str) -> dict[str, Any]:
    """Card entry for a file in the HF cache, checked in place: its snapshot commit and sha256 (LFS blobs are
    named by it)."""
    from zoo import cache

    blob = local.resolve()
    sha = blob.name if _SHA256_RE.match(blob.name) else sha256_file(blob)
    cache.verify_in_place(blob, sha)
    commit = local.parent.name if local.parent.parent.name == "snapshots" else None
    source = f"hf://{repo_id}/{filename}" + (f"@{commit}" if commit else "")
    return {"sha256": sha, "size": blob.stat().st_size, "source": source, "format": _format_of(blob),
            "path": str(local)}


def _timm_card(timm, net, cfg, resolved: str, *, pretrained: bool, head_kept: bool, files: dict):
    from timm.data import resolve_data_config

    from zoo.card import ModelCard

    data = resolve_data_config({}, model=net)
    channels, height, width = data["input_size"]
    num_classes = int(getattr(net, "num_classes", cfg.num_classes or 0))
    labels = _timm_labels(cfg, num_classes) if head_kept else None
    provenance: dict[str, Any] = {"upstream": {"library": "timm", "version": timm.__version__, "name": resolved,
                                               "pretrained": pretrained}}
    if not head_kept:
        provenance["finetune_from"] = f"timm:{resolved}"
    return ModelCard(
        id=f"timm:{resolved}",
        domain="vision",
        task=TASK,
        architecture="timm",
        arch_args={"model_name": resolved, "num_classes": num_classes},
        labels=labels or [f"class_{i}" for i in range(num_classes)],
        input={"shape": [channels, height, width], "dtype": "float32"},
        preprocessing=preprocessing(
            (height, width), data["mean"], data["std"], data.get("crop_pct"), data.get("interpolation"),
            data.get("crop_mode"), channels=channels,
        ),
        params=sum(p.numel() for p in net.parameters()),
        license=cfg.license,
        source=f"hf://{cfg.hf_hub_id}" if cfg.hf_hub_id else (cfg.url or None),
        description=f"timm {resolved}" + (f" ({cfg.paper_name})" if cfg.paper_name else ""),
        files=files,
        provenance=provenance,
    )


def _timm_labels(cfg, num_classes: int) -> list[str] | None:
    """Class names for a timm head: the config's own, else the ImageNet subset its size implies."""
    names = cfg.label_descriptions or cfg.label_names
    if names is not None and len(names) == num_classes:
        return list(names.values()) if isinstance(names, dict) else list(names)
    from timm.data import ImageNetInfo, infer_imagenet_subset

    offset = cfg.label_offset or 0
    subset = infer_imagenet_subset({"num_classes": num_classes - offset})
    if subset is None:
        return None
    descriptions = ImageNetInfo(subset).label_descriptions()
    if len(descriptions) + offset != num_classes:
        return None
    return ["background"] * offset + descriptions


# =============================================================================
# torchvision
# =============================================================================
def build_torchvision(model_name: str, num_classes: int = 1000, weights: str | None = None, **kwargs: Any):
    """The ``torchvision`` architecture: ``torchvision.models.get_model(model_name)`` without weights loaded;
    ``weights`` (an enum member's name) builds the network torchvision makes for those weights
    (detectors and segmenters: :func:`vision.upstream_dense.build_for_weights`)."""
    import torchvision.models as tvm

    if weights is not None:
        from vision.upstream_dense import build_for_weights

        return build_for_weights(model_name, weights, num_classes=num_classes, **kwargs)
    return tvm.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)


def _tv_models(tvm) -> list[str]:
    """torchvision's classification, detection and semantic segmentation models."""
    return [model for module in (tvm, tvm.detection, tvm.segmentation) for model in tvm.list_models(module=module)]


def list_torchvision(pattern: str) -> list[str]:
    """``MODEL.WEIGHTS`` names of torchvision's classification, detection and segmentation weights whose
    model or full name match."""
    import torchvision.models as tvm

    pattern = (pattern or "*").lower()
    out = []
    for model in _tv_models(tvm):
        for weights in tvm.get_model_weights(model):
            full = f"{model}.{weights.name.lower()}"
            if fnmatch.fnmatchcase(model, pattern) or fnmatch.fnmatchcase(full, pattern):
                out.append(full)
    return out


def load_torchvision(name: str, *, pretrained: bool = True, num_classes: int | None = None, **options: Any):
    """A :class:`zoo.Model` for ``torchvision:MODEL[.WEIGHTS]``; pickles read with ``weights_only=True``."""
    if options:
        raise InputError(f"torchvision:{name} takes no load options, got {sorted(options)}")
    import torchvision.models as tvm

    model, weights = _tv_resolve(tvm, name)
    zoo_id = f"torchvision:{model}.{weights.name.lower()}"
    from vision.upstream_dense import dense_task, load_dense

    task = dense_task(tvm, model)
    if task is not None:
        return load_dense(model, weights, zoo_id, task, pretrained=pretrained, num_classes=num_classes)
    categories = list(weights.meta["categories"])
    n = len(categories) if num_classes is None else int(num_classes)
    head_kept = n == len(categories)
    arch_kwargs = _tv_arch_kwargs(model, weights)
    files: dict[str, dict[str, Any]] = {}
    if not pretrained:
        net = tvm.get_model(model, weights=None, num_classes=n, **arch_kwargs)
    else:
        remap = "vision.upstream:densenet_keys" if model.startswith("densenet") else None
        path, files = _torch_hub_weights(weights.url, zoo_id, remap)
        state = _read_state(path, zoo_id)
        # googlenet's checkpoint holds the auxiliary heads; torchvision loads them, then drops them.
        load_kwargs = {**arch_kwargs, "aux_logits": True} if model == "googlenet" else arch_kwargs
        if head_kept:
            from zoo.hub import skip_init  # every tensor is overwritten by the strict load below

            with skip_init():
                net = tvm.get_model(model, weights=None, num_classes=n, **load_kwargs)
            _load_strict(net, state, zoo_id, path)
        else:
            net = tvm.get_model(model, weights=None, num_classes=n, **load_kwargs)
            _load_except_head(net, state, zoo_id, path)
        if model == "googlenet":
            net.aux_logits, net.aux1, net.aux2 = False, None, None
    card = _tv_card(net, model, weights, zoo_id, arch_kwargs, pretrained=pretrained, head_kept=head_kept,
                    num_classes=n, files=files)
    return assemble(net, card, {name: Path(meta["path"]) for name, meta in files.items()})


def _tv_resolve(tvm, name: str):
    """``(model, weights enum member)`` for ``MODEL[.WEIGHTS]``; unknown names list the close ones."""
    model, _, tag = name.partition(".")
    model = model.lower()
    known = _tv_models(tvm)
    if model not in known:
        raise UnknownModelError(f"torchvision:{name}", [f"torchvision:{m}" for m in known], kind="torchvision model")
    enum = tvm.get_model_weights(model)
    if not tag or tag.upper() == "DEFAULT":
        return model, enum.DEFAULT
    try:
        return model, enum[tag.upper()]
    except KeyError:
        known = [f"torchvision:{model}.{w.name.lower()}" for w in enum]
        raise UnknownModelError(f"torchvision:{name}", known, kind="torchvision weights") from None


def _tv_arch_kwargs(model: str, weights) -> dict[str, Any]:
    """Builder arguments torchvision's own builders derive from the weights (besides num_classes)."""
    if model.startswith("vit_"):
        return {"image_size": int(weights.meta["min_size"][0])}
    if model.startswith("maxvit_"):
        return {"input_size": [int(s) for s in weights.meta["min_size"]]}
    if model == "inception_v3":
        return {"transform_input": True, "aux_logits": True, "init_weights": True}
    if model == "googlenet":
        return {"transform_input": True, "aux_logits": False, "init_weights": True}
    return {}


def densenet_keys(state: dict) -> dict:
    """torchvision's densenet checkpoints use old ``norm.1``-style keys; rename them as its loader does."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = {}
    for key, value in state.items():
        match = pattern.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def _load_strict(net, state: dict, zoo_id: str, path: Path) -> None:
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:  # a missing key would leave uninitialised memory: never allowed
        raise InputError(f"weights {path} do not fit {zoo_id}: missing keys {list(missing)[:5]}, "
                         f"unexpected keys {list(unexpected)[:5]}")


def _load_except_head(net, state: dict, zoo_id: str, path: Path) -> None:
    """Load every tensor whose shape fits; the mismatched ones (the classifier) keep their fresh init."""
    own = net.state_dict()
    unexpected = [k for k in state if k not in own]
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing, _ = net.load_state_dict(kept, strict=False)
    resized = set(state) - set(kept) - set(unexpected)
    if unexpected or set(missing) - resized:
        raise InputError(f"weights {path} do not fit {zoo_id}: missing keys {sorted(set(missing) - resized)[:5]}, "
                         f"unexpected keys {unexpected[:5]}")


def _tv_card(net, model: str, weights, zoo_id: str, arch_kwargs: dict, *, pretrained: bool, head_kept: bool,
             num_classes: int, files: dict):
    import torchvision

    from zoo.card import ModelCard

    transform = weights.transforms()
    crop, resize = int(transform.crop_size[0]), int(transform.resize_size[0])
    meta = weights.meta
    metrics = []
    if pretrained and head_kept:
        for dataset, values in (meta.get("_metrics") or {}).items():
            for key, name in (("acc@1", "accuracy"), ("acc@5", "top5_accuracy")):
                if key in values:
                    metrics.append({"name": name, "value": values[key] / 100, "dataset": dataset.lower(),
                                    "split": "val", "source": "torchvision weights meta"})
    provenance: dict[str, Any] = {"upstream": {"library": "torchvision", "version": torchvision.__version__,
                                               "name": f"{model}.{weights.name.lower()}", "pretrained": pretrained,
                                               "recipe": meta.get("recipe")}}
    if not head_kept:
        provenance["finetune_from"] = zoo_id
    return ModelCard(
        id=zoo_id,
        domain="vision",
        task=TASK,
        architecture="torchvision",
        arch_args={"model_name": model, "num_classes": num_classes, **arch_kwargs},
        labels=list(meta["categories"]) if head_kept else [f"class_{i}" for i in range(num_classes)],
        input={"shape": [3, crop, crop], "dtype": "float32"},
        preprocessing=preprocessing((crop, crop), transform.mean, transform.std, crop / resize,
                                    transform.interpolation.value, "center"),
        metrics=metrics,
        params=sum(p.numel() for p in net.parameters()),
        # torchvision's code is BSD-3-Clause; the SWAG weights are CC-BY-NC-4.0 (see their docs).
        license="CC-BY-NC-4.0" if "SWAG" in weights.name else "BSD-3-Clause",
        source=weights.url,
        description=f"torchvision {model} with weights {type(weights).__name__}.{weights.name}",
        files=files,
        provenance=provenance,
    )


# =============================================================================
# shared: torch hub checkpoints through the store, cards
# =============================================================================
def _torch_hub_weights(url: str, zoo_id: str, remap: str | None = None) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A torch-hub checkpoint through the zoo store (torch's hub cache first, then the URL), converted once to
    safetensors; its path and card entry."""
    import urllib.parse

    from zoo import cache

    filename = os.path.basename(urllib.parse.urlsplit(url).path)
    prefix = _HUB_HASH_RE.search(filename)
    if prefix is None:
        raise InputError(f"{url} for {zoo_id}: its file name carries no sha256 prefix (NAME-<hex>.EXT), "
                         "so the zoo has nothing to check it against")
    wf = WeightFile(filename, None, f"torch-hub://checkpoints/{filename}", mirrors=(url,), format="torch-pickle",
                    digest=f"sha256-prefix:{prefix.group(1)}", remap=remap)
    path = cache.fetch(wf, model_id=zoo_id)
    entry = {"sha256": None, "sha256_prefix": prefix.group(1), "size": path.stat().st_size, "source": url,
             "format": "torch-pickle", "path": str(path)}
    return path, {filename: entry}


def _read_state(path: Path, zoo_id: str) -> dict:
    """The state dict of a verified safetensors file from the store."""
    from safetensors import SafetensorError

    from backends.state import load_state

    try:
        return load_state(path)
    except SafetensorError as exc:
        raise InputError(f"{path} for {zoo_id} is not readable safetensors ({exc}); "
                         f"run `zoo cache verify`, then retry") from None


def _format_of(path: Path) -> str:
    return "safetensors" if path.name.endswith(".safetensors") else "torch-pickle"


# torch.hub's HASH_REGEX: the sha256 prefix in a checkpoint's file name (resnet18-f37072fd.pth).
_HUB_HASH_RE = re.compile(r"-([a-f0-9]+)\.")


def preprocessing(size, mean, std, crop_pct=None, interpolation=None, crop_mode=None, channels: int = 3) -> dict:
    """A card ``preprocessing`` dict as :class:`vision.transforms.ImageTransform` reads it (ImageNet style)."""
    spec: dict[str, Any] = {
        "size": [int(s) for s in size],
        "channels": int(channels),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }
    if crop_pct is not None:
        spec["crop_pct"] = float(crop_pct)
        spec["crop_mode"] = crop_mode or "center"
    spec["interpolation"] = interpolation if interpolation in _PIL_FILTERS else "bilinear"
    return spec


_PIL_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")


# =============================================================================
# first-class ids: popular timm weights pinned by sha256, loaded through the zoo cache
# =============================================================================
# (name, HF revision, sha256 of model.safetensors, size in bytes, interpolation, crop_pct, license, params)
# Every sha256 below was read from a public record of that exact file, never computed here (no network):
#   resnet18.tv_in1k: https://huggingface.co/timm/resnet18.tv_in1k/blob/main/model.safetensors ("Git LFS
#     Details", last changed by commit a987fd6 "Add model"); size and the same digest at revision
#     a987fd6b60f845221bfff84b6f0191273ba56ead in independent pinned manifests on GitHub.
#   resnet50.a1_in1k: https://huggingface.co/timm/resnet50.a1_in1k/blob/5d9e13b8fdab4d9718bcf2c8f5c3af01878367e8/model.safetensors
#     ("Git LFS Details"); size from an HfApi.model_info(files_metadata=True) record on GitHub.
#   mobilenetv3_large_100.ra_in1k: https://huggingface.co/timm/mobilenetv3_large_100.ra_in1k/blob/main/model.safetensors
#     (last changed by 20b1312 "Adding safetensors variant"; the tree at 6bb94b5210be... holds it);
#     size from the same HfApi record.
#   efficientnet_b0.ra_in1k: HfApi.model_info(files_metadata=True) records on GitHub (repo revision
#     1b5383e5f79cc0f7fc067e372f8f26a5fa73f26a, 21,355,344 bytes); the same digest in a second, unrelated
#     project's pinned registry. (No Hugging Face page for this file was available to read.)
#   convnext_tiny.in12k_ft_in1k: https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/blob/82e66eaa8f64015e07bab574834728820a6652a7/model.safetensors
#     ("Git LFS Details"); size from pinned manifests on GitHub.
# vit_small_patch16_224.augreg_in21k_ft_in1k is not registered: no record of its file's sha256 was found.
_PINNED = (
    ("resnet18.tv_in1k", "a987fd6b60f845221bfff84b6f0191273ba56ead",
     "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81", 46_807_446,
     "bilinear", 0.875, "bsd-3-clause", 11_689_512),
    ("resnet50.a1_in1k", "5d9e13b8fdab4d9718bcf2c8f5c3af01878367e8",
     "773525d5821de224f8f30c33377b7a795d7863e08522698200d3217d3f2a41bb", 102_469_840,
     "bicubic", 0.95, "apache-2.0", 25_557_032),
    ("mobilenetv3_large_100.ra_in1k", "6bb94b5210be33364f802aa99ef7109990a86c5f",
     "f425af34cc1cead2b5d6211f789a1f30b94835dc32f9c0fcc5a916e4fd2dde85", 22_058_321,
     "bicubic", 0.875, "apache-2.0", 5_483_032),
    ("efficientnet_b0.ra_in1k", "1b5383e5f79cc0f7fc067e372f8f26a5fa73f26a",
     "d569899762ea9b1384ee07f4af64805cf8caa1c55f9253ebb1080dc40e87a2cd", 21_355_344,
     "bicubic", 0.875, "apache-2.0", 5_288_548),
    ("convnext_tiny.in12k_ft_in1k", "82e66eaa8f64015e07bab574834728820a6652a7",
     "a1aefa409b513cf209b085424eb3efffe4e4a9f511491bc2c12ea35209e6bb95", 114_374_272,
     "bicubic", 0.95, "apache-2.0", 28_589_128),
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pinned_models(labels: list[str] | None = None) -> list[ModelSpec]:
    """The first-class ``vision/<timm name>`` ids: architecture ``timm``, weights pinned in the zoo cache.

    ``labels`` are the ImageNet-1k class descriptions (timm's, in its class order).
    """
    specs = []
    for name, revision, sha256, size, interpolation, crop_pct, license_, params in _PINNED:
        card: dict[str, Any] = {
            "input": {"shape": [3, 224, 224], "dtype": "float32"},
            "preprocessing": preprocessing((224, 224), IMAGENET_MEAN, IMAGENET_STD, crop_pct, interpolation, "center"),
            "params": params,
            "license": license_,
            "source": f"hf://timm/{name}@{revision}",
        }
        if labels is not None:
            card["labels"] = labels
        specs.append(ModelSpec(
            id=f"vision/{name}",
            task=TASK,
            architecture="timm",
            arch_args={"model_name": name, "num_classes": 1000},
            weights=(WeightFile(name="model.safetensors", sha256=sha256, size=size,
                                source=f"hf://timm/{name}/model.safetensors@{revision}"),),
            card=card,
            description=f"timm's {name} ImageNet-1k classifier, weights pinned by sha256",
        ))
    return specs
