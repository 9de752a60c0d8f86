"""``hf:ORG/REPO[@REVISION]``: any transformers checkpoint with its tokenizer as a ``zoo.Model``.

``zoo.load("hf:distilbert/distilbert-base-uncased-finetuned-sst-2-english")`` reads the
repo through ``huggingface_hub``'s cache (``HF_HUB_CACHE`` / ``HF_HOME``, read when
called; only that cache when ``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set) and builds:

* ``task="text-classification"`` (the default for ``*ForSequenceClassification``
  checkpoints or when ``num_classes`` is given): ``AutoModelForSequenceClassification``,
  labels from the config's ``id2label``; ``num_classes`` re-initialises the head.
* ``task="sentence-embedding"`` (the default otherwise): ``AutoModel`` + mean pooling +
  L2 normalisation (:class:`nlp.models.encoder.TextEncoder`), as sentence-transformers does.
* ``task="translation"`` (the default for encoder-decoder configs): ``AutoModelForSeq2SeqLM``
  decoded with its own ``generate`` (:mod:`nlp.translation`); ``source_lang``/``target_lang``
  name the pair, ``prefix`` is prepended to every source (T5's ``"translate English to
  German: "``), ``forced_bos_token`` starts every translation with that token (NLLB/M2M's
  target language code, e.g. ``"spa_Latn"``).

``hf:PATH`` with a local checkpoint directory (``hf:./my-model``) works the same.
Only safetensors weights are read (``use_safetensors=True``: a repo with only
``pytorch_model.bin`` is refused, never unpickled) and ``trust_remote_code`` is off
unless the caller passes ``trust_remote_code=True``. The tokenizer must be a fast one;
it is serialised to ``tokenizer.json``, pinned by sha256 in the card and kept in the
zoo cache, so ``Model.save`` writes a directory ``zoo.load`` rebuilds without the hub.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import InputError
from zoo.hf import config_dict as _config_dict
from zoo.hf import from_pretrained as _from_pretrained
from zoo.hf import license_of as _license
from zoo.hf import resolve as _resolve
from zoo.hf import source_of
from zoo.hf import split_revision as _split_revision
from zoo.hf import weight_entries as _weight_entries

PREFIX = "hf"
TASKS = ("text-classification", "sentence-embedding", "translation")


def load_hf(
    name: str,
    *,
    pretrained: bool = True,
    num_classes: int | None = None,
    task: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    max_length: int | None = None,
    **translation: str | None,
):
    """A :class:`zoo.Model` for ``hf:ORG/REPO[@REVISION]`` or ``hf:LOCAL_DIR`` (``translation``: the options
    ``source_lang``, ``target_lang``, ``prefix``, ``forced_bos_token`` of a translation model)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from nlp.models.encoder import TextEncoder
    from nlp.models.hf import HFSequenceClassifier

    repo, pinned = _split_revision(name)
    if revision and pinned and revision != pinned:
        raise InputError(f"hf:{name} pins revision {pinned!r} but revision={revision!r} was also given")
    revision = revision or pinned
    folder, commit = _resolve(repo, revision)
    zoo_id = f"hf:{repo}" + (f"@{revision}" if revision else "")
    if task is not None and task not in TASKS:
        raise InputError(f"hf: models support task in {TASKS}, got {task!r}")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ValueError as exc:  # unknown model_type, or remote code not trusted
        raise InputError(
            f"{zoo_id}: transformers cannot build this config ({exc}); if it needs the repo's own code and you "
            "trust it, pass trust_remote_code=True"
        ) from None
    if task is None:
        is_classifier = any(str(a).endswith("ForSequenceClassification") for a in (config.architectures or []))
        task = ("text-classification" if is_classifier or num_classes
                else "translation" if getattr(config, "is_encoder_decoder", False) else "sentence-embedding")
    unknown = sorted(set(translation) - {"source_lang", "target_lang", "prefix", "forced_bos_token"})
    if unknown or (translation and task != "translation"):
        raise InputError(f"hf: options {unknown or sorted(translation)} apply to task 'translation' "
                         "(source_lang, target_lang, prefix, forced_bos_token)")
    weights = _weight_entries(folder, repo, commit) if pretrained else {}  # checked before transformers reads them
    common = {"trust_remote_code": trust_remote_code, "dtype": torch.float32}
    labels = None
    if task == "translation":
        from transformers import AutoModelForSeq2SeqLM

        if num_classes:
            raise InputError("num_classes makes a classifier; a translation model has no classifier head")
        if not getattr(config, "is_encoder_decoder", False):
            raise InputError(f"{zoo_id} is a {config.model_type} checkpoint, not an encoder-decoder: task "
                             "'translation' needs a sequence-to-sequence model (Marian, T5, NLLB, M2M...)")
        net = (_from_pretrained(AutoModelForSeq2SeqLM, folder, zoo_id, config=config, **common) if pretrained
               else AutoModelForSeq2SeqLM.from_config(config, **common))
        module = net
        architecture, arch_args = "hf_seq2seq", {"config": _config_dict(net.config)}
    elif task == "text-classification":
        if num_classes is not None:
            config.num_labels = int(num_classes)
            config.id2label = {i: f"class_{i}" for i in range(int(num_classes))}
            config.label2id = {v: k for k, v in config.id2label.items()}
        if pretrained:
            net = _from_pretrained(AutoModelForSequenceClassification, folder, zoo_id, config=config,
                                   ignore_mismatched_sizes=num_classes is not None, **common)
        else:
            net = AutoModelForSequenceClassification.from_config(config, **common)
        module = HFSequenceClassifier(net)
        labels = [str(net.config.id2label.get(i, f"class_{i}")) for i in range(net.config.num_labels)]
        architecture, arch_args = "hf_sequence_classifier", {"config": _config_dict(net.config), "num_classes": net.config.num_labels}
    else:
        if num_classes:
            raise InputError("num_classes makes a classifier: use task='text-classification' with it")
        net = _from_pretrained(AutoModel, folder, zoo_id, config=config, **common) if pretrained else AutoModel.from_config(config, **common)
        module = TextEncoder(net, pooling="mean", normalize=True)
        architecture, arch_args = "text_encoder", {"config": _config_dict(net.config), "pooling": "mean", "normalize": True}
    tokenizer_entry, preprocessing = _tokenizer(folder, zoo_id, config, trust_remote_code, max_length)
    if task == "translation":
        preprocessing = _translation_preprocessing(preprocessing, config, Path(tokenizer_entry["path"]), translation)
    files = {**weights, "tokenizer.json": tokenizer_entry}
    from zoo.card import ModelCard

    card = ModelCard(
        id=zoo_id,
        domain="nlp",
        task=task,
        architecture=architecture,
        arch_args=arch_args,
        labels=labels,
        input={"type": "text", "max_length": preprocessing["max_length"]},
        preprocessing=preprocessing,
        params=sum(p.numel() for p in module.parameters()),
        license=_license(folder),
        source=source_of(repo, commit),
        description=f"{type(net).__name__} from {zoo_id} through transformers",
        files=files,
    )
    from zoo.hub import assemble

    return assemble(module, card, {"tokenizer.json": Path(tokenizer_entry["path"])})


# -- helpers ------------------------------------------------------------------------
def _tokenizer(folder: Path, zoo_id: str, config, trust_remote_code: bool, max_length: int | None):
    """The checkpoint's fast tokenizer as a pinned ``tokenizer.json`` in the zoo cache, and the preprocessing."""
    from transformers import AutoTokenizer

    from zoo import cache
    from zoo.registry import WeightFile

    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise InputError(f"{zoo_id}: could not load its tokenizer: {type(exc).__name__}: {exc}") from None
    if not getattr(tok, "is_fast", False):
        raise InputError(f"{zoo_id}: its tokenizer ({type(tok).__name__}) has no fast (tokenizers) version; the zoo needs one")
    limit = getattr(config, "max_position_embeddings", None) or 512
    model_max = int(tok.model_max_length) if tok.model_max_length and tok.model_max_length < 1_000_000 else limit
    length = min(int(max_length or model_max), model_max)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        tok.backend_tokenizer.save(str(path))
        digest = cache.sha256_file(path)
        wf = WeightFile("tokenizer.json", digest, str(path), format="raw", size=path.stat().st_size)
        blob = cache.fetch(wf, model_id=zoo_id)
    entry = {"sha256": digest, "size": wf.size, "source": f"{zoo_id} (serialised by transformers)", "format": "raw",
             "path": str(blob)}
    preprocessing = {
        "tokenizer": "tokenizer.json",
        "max_length": length,
        "pad_token_id": int(tok.pad_token_id if tok.pad_token_id is not None else 0),
        "model_input_names": list(tok.model_input_names),
        "strip": False,
    }
    return entry, preprocessing


def _translation_preprocessing(preprocessing: dict, config, tokenizer: Path, options: dict) -> dict[str, Any]:
    """What :class:`nlp.translation.Translation` reads: the pair, special tokens, prefix and forced first token."""
    from tokenizers import Tokenizer

    result = {"tokenizer": "tokenizer.json", "max_length": preprocessing["max_length"],
              "source_lang": options.get("source_lang") or "", "target_lang": options.get("target_lang") or "",
              "pad_token_id": preprocessing["pad_token_id"], "eos_token_id": int(config.eos_token_id or 1)}
    if options.get("prefix"):
        result["prefix"] = str(options["prefix"])
    token = options.get("forced_bos_token")
    if token:
        token_id = Tokenizer.from_file(str(tokenizer)).token_to_id(str(token))
        if token_id is None:
            raise InputError(f"forced_bos_token {token!r} is not in the checkpoint's vocabulary")
        result["forced_bos_token_id"] = int(token_id)
    return result


