"""Hugging Face checkpoints for the ``hf:`` pass-through loaders of every domain.

Several domains load ``hf:ORG/REPO[@REVISION]`` ids (text models in ``nlp``, detectors and
segmenters in ``vision``: each claims the checkpoints of its own model classes, see
:class:`zoo.registry.SourceSpec`); what they share lives here, so every one resolves a repo,
checks its files and refuses pickles the same way:

* :func:`resolve` — the checkpoint's folder: a local directory, or a snapshot of the Hugging
  Face cache (``HF_HUB_CACHE`` / ``HF_HOME``, read when called; only that cache when
  ``ZOO_OFFLINE``, ``HF_HUB_OFFLINE`` or an unreachable Hub says so), and its commit;
* :func:`weight_entries` — the card entries of its safetensors files, each checked in place
  against the sha256 the cache names its LFS blob by (:func:`zoo.cache.verify_in_place`);
* :func:`from_pretrained` — ``use_safetensors=True`` always: a repo with only
  ``pytorch_model.bin`` is refused, never unpickled;
* :func:`read_config` / :func:`config_from_dict` / :func:`config_dict` — ``config.json`` as
  transformers reads it (no remote code), and back as a card's JSON.

Nothing here imports transformers or huggingface_hub at module level.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

from zoo.errors import InputError, OfflineError, UnsafeFormatError, ZooError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


def split_revision(name: str) -> tuple[str, str | None]:
    """``ORG/REPO[@REVISION]`` → ``(ORG/REPO, REVISION or None)``."""
    repo, at, revision = name.rpartition("@")
    if not at:
        return name, None
    if not repo or not revision or "/" in revision:
        raise InputError(f"expected hf:ORG/REPO[@REVISION], got hf:{name}")
    return repo, revision


def resolve(repo: str, revision: str | None, patterns: list[str] | None = None) -> tuple[Path, str | None]:
    """The local folder holding the checkpoint, and its commit when it came from the hub cache
    (``patterns``: the files to fetch, by default configs, safetensors and tokenizer files)."""
    local = Path(repo).expanduser()
    if local.is_dir():
        if revision:
            raise InputError(f"hf:{repo} is a local directory; a revision (@{revision}) only applies to hub repos")
        return local.resolve(), None
    if repo.count("/") != 1 or repo.startswith((".", "/", "~")):
        raise InputError(f"expected hf:ORG/REPO[@REVISION] or hf:PATH to a local checkpoint directory, got hf:{repo}")
    from huggingface_hub import snapshot_download

    from zoo.cache import hf_cache_dir, hub_offline, offline_reason

    offline = hub_offline()
    try:
        folder = snapshot_download(repo, revision=revision, cache_dir=hf_cache_dir(), local_files_only=offline,
                                   allow_patterns=patterns or _DOWNLOAD_PATTERNS)
    except Exception as exc:  # huggingface_hub raises many types; all mean "not available here"
        where = hf_cache_dir() or "~/.cache/huggingface/hub"
        if offline:
            raise OfflineError(
                f"hf:{repo}" + (f"@{revision}" if revision else "") + f" is not in the Hugging Face cache ({where}) "
                f"and {offline_reason()}; load it once while online "
                f"(or `huggingface-cli download {repo}`), then retry"
            ) from None
        from zoo.errors import DownloadError

        raise DownloadError(f"could not get hf:{repo}: {type(exc).__name__}: {exc}") from None
    folder = Path(folder)
    commit = folder.name if folder.parent.name == "snapshots" else None
    return folder, commit


def read_config(name: str) -> dict[str, Any] | None:
    """The ``config.json`` of ``hf:NAME`` as a dict, fetching only that file; None when it cannot be had here
    (not cached and offline, no such repo, not JSON): the loader that takes the id then says why."""
    try:
        repo, revision = split_revision(name)
        folder, _ = resolve(repo, revision, patterns=["config.json"])
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ZooError, OSError, ValueError):  # the loader that takes the id says what went wrong
        return None
    return data if isinstance(data, dict) else None


def from_pretrained(auto_class, folder: Path, zoo_id: str, **kwargs):
    """``auto_class.from_pretrained(folder)`` from safetensors only, quietly (the load report on a re-initialised
    head is expected)."""
    if not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.glob("*.bin")) or ["no weights file"]
        raise UnsafeFormatError(
            f"{zoo_id} has no safetensors weights (found {', '.join(pickles)}); the zoo never unpickles "
            "checkpoints: convert it to safetensors, or pick a revision that has them"
        )
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return auto_class.from_pretrained(folder, use_safetensors=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def config_dict(config) -> dict[str, Any]:
    """A transformers config as a card's JSON: what rebuilds the network, without paths or remote code."""
    data = config.to_dict()
    for key in ("_name_or_path", "transformers_version", "auto_map", "architectures"):
        data.pop(key, None)
    return json.loads(json.dumps(data))  # int keys of id2label become strings, as in config.json


def config_from_dict(config: dict[str, Any]):
    """A transformers config from a ``config.json`` dict (its ``model_type`` picks the class; no network)."""
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise InputError(
            f"config model_type {model_type!r} is not an architecture transformers knows; "
            "custom (remote-code) architectures are not rebuilt by the zoo"
        )
    return CONFIG_MAPPING[model_type].from_dict(dict(config))


def weight_entries(folder: Path, repo: str, commit: str | None) -> dict[str, dict[str, Any]]:
    """Card entries for the checkpoint's safetensors files, each checked in place: LFS blobs in the HF cache are
    named by their sha256."""
    from zoo import cache

    entries = {}
    for path in sorted(folder.glob("*.safetensors")):
        blob = path.resolve()
        digest = blob.name if _SHA256_RE.match(blob.name) else cache.sha256_file(blob)
        cache.verify_in_place(blob, digest)
        source = str(blob) if commit is None else f"hf://{repo}/{path.name}@{commit}"
        entries[path.name] = {"sha256": digest, "size": blob.stat().st_size, "source": source,
                              "format": "safetensors", "path": str(path)}
    return entries


def source_of(repo: str, commit: str | None) -> str:
    """A card's ``source``: ``hf://REPO[@COMMIT]``, or the local checkpoint directory."""
    if Path(repo).is_dir():
        return str(Path(repo).resolve())
    return f"hf://{repo}" + (f"@{commit}" if commit else "")


def license_of(folder: Path) -> str | None:
    """The ``license:`` of the model card's YAML header, when there is one."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    match = re.search(r"^license:\s*(\S+)", readme.read_text(encoding="utf-8", errors="replace")[:4000], re.M)
    return match.group(1) if match else None


def list_cached(pattern: str) -> list[str]:
    """Model repos in the local Hugging Face cache matching an fnmatch pattern (nothing is listed online)."""
    from huggingface_hub import scan_cache_dir

    from zoo.cache import hf_cache_dir

    try:
        info = scan_cache_dir(hf_cache_dir())
    except Exception:  # no cache dir yet (CacheNotFound) or an unreadable one: nothing cached
        return []
    names = sorted(repo.repo_id for repo in info.repos if repo.repo_type == "model")
    return [n for n in names if fnmatch.fnmatchcase(n, pattern or "*")]
