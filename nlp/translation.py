"""The ``translation`` task: source sentences in, translations out; and its joint subword tokenizer.

``model.predict(["source sentence", ...], num_beams=1, max_new_tokens=128,
length_penalty=1.0, batch_size=32)`` returns one translation (a string) per input,
in input order; sentences are sorted by length and decoded in batches (greedy by
default; beam search with ``num_beams > 1``, hypotheses scored by
``log-probability / length**length_penalty``). An input may also be a list of lines
(a text file read by ``zoo predict``): its translation is the list of the lines'
translations.

* Empty or whitespace-only lines translate to ``""``, order kept.
* Sentences over the card's ``max_length`` tokens are truncated; a warning (logger
  ``"nlp"``) names their positions.
* ``source_lang``/``target_lang`` other than the card's pair are an InputError naming it.

The card's ``preprocessing``: ``{"tokenizer": "tokenizer.json", "max_length": 128,
"source_lang": "en", "target_lang": "es", "pad_token_id": 0, "eos_token_id": 1}``.
The tokenizer is one joint subword vocabulary for both languages (trained by the
``translation`` recipe with :func:`train_tokenizer`), pinned in the card beside the weights.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from zoo.card import ModelCard
from zoo.errors import InputError
from zoo.model import TaskAdapter

log = logging.getLogger("nlp")

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: pad (also the decoder start, as Marian's), eos, unk
IGNORE_INDEX = -100


def train_tokenizer(texts: Sequence[str], vocab_size: int, path: str | Path) -> Path:
    """A joint BPE (NFKC, SentencePiece-style ``▁`` word boundaries, byte-free) trained on ``texts``, written
    to ``path``; every encoding ends with ``</s>``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def translation_preprocessing(source_lang: str, target_lang: str, max_length: int) -> dict[str, Any]:
    """The card's ``preprocessing`` for a model trained with :func:`train_tokenizer`'s special tokens."""
    return {"tokenizer": "tokenizer.json", "max_length": int(max_length), "source_lang": source_lang,
            "target_lang": target_lang, "pad_token_id": 0, "eos_token_id": 1}


class Translation(TaskAdapter):
    """Sentences in, translations out (see the module docstring)."""

    batch_size = 32
    output_suffixes = (".txt",)
    literal_inputs = True  # `zoo predict ID "a sentence"`: an argument naming no file is the sentence itself

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        from tokenizers import Tokenizer

        super().__init__(card, files)
        pre = card.preprocessing
        self.max_length = int(pre.get("max_length", 128))
        if not 2 <= self.max_length <= 1 << 16:
            raise InputError(f"the card of {card.id!r}: max_length must be 2..65536, got {self.max_length}")
        self.pair = (str(pre.get("source_lang", "")), str(pre.get("target_lang", "")))
        self.pad_token_id, self.eos_token_id = int(pre.get("pad_token_id", 0)), int(pre.get("eos_token_id", 1))
        path = self.path(pre.get("tokenizer", "tokenizer.json"))
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise InputError(f"{path} is not a tokenizer.json file the tokenizers library can read: {exc}") from None
        self.last_truncated: list[int] = []

    # -- tokens -----------------------------------------------------------------------
    def encode(self, texts: Sequence[str], what: str = "sentences") -> list[list[int]]:
        """Token ids (ending with eos), truncated to ``max_length`` with a warning naming the positions."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"expected text to translate, got {type(text).__name__} at position {i}")
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        self.last_truncated = [i for i, row in enumerate(ids) if len(row) > self.max_length]
        if self.last_truncated:
            shown = ", ".join(map(str, self.last_truncated[:10])) + (" ..." if len(self.last_truncated) > 10 else "")
            log.warning("%d of %d %s longer than %d tokens were truncated (positions %s)", len(self.last_truncated),
                        len(ids), what, self.max_length, shown)
        return [row if len(row) <= self.max_length else row[: self.max_length - 1] + [self.eos_token_id] for row in ids]

    def pad(self, rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    def source_batch(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        input_ids = self.pad(rows, self.pad_token_id)
        mask = self.pad([[1] * len(r) for r in rows], 0)
        return {"input_ids": input_ids, "attention_mask": mask}

    def collate(self, batch: Sequence[tuple[list[int], list[int]]]):
        """``(source ids, target ids)`` pairs → network inputs (teacher forcing) and labels (-100 on padding)."""
        sources, targets = zip(*batch)
        inputs = self.source_batch(sources)
        inputs["decoder_input_ids"] = self.pad([[self.pad_token_id] + list(t[:-1]) for t in targets], self.pad_token_id)
        return inputs, self.pad(targets, IGNORE_INDEX)

    @property
    def transform(self):
        """One sentence → its unpadded token ids."""
        return lambda text: torch.tensor(self.encode([text])[0], dtype=torch.long)

    def example_inputs(self) -> list[dict[str, torch.Tensor]]:
        return [self.source_batch(self.encode(["In the beginning was the word.", "Love one another."])),
                self.source_batch(self.encode(["Peace.", "The light shines in the darkness.", "Go in peace."]))]

    # -- predict ----------------------------------------------------------------------
    def check_pair(self, source_lang: str | None, target_lang: str | None) -> None:
        """InputError when the asked pair is not the card's (a card that names no pair takes any)."""
        asked = (source_lang or self.pair[0], target_lang or self.pair[1])
        if all(self.pair) and asked != self.pair:
            raise InputError(f"{self.card.id} translates {self.pair[0]}->{self.pair[1]}, not {asked[0]}->{asked[1]}")

    def predict(self, module, raw_inputs: Sequence[Any], *, device: torch.device, num_beams: int = 1,
                max_new_tokens: int = 128, length_penalty: float = 1.0, batch_size: int | None = None,
                source_lang: str | None = None, target_lang: str | None = None) -> list[Any]:
        self.check_pair(source_lang, target_lang)
        counts = {"num_beams": num_beams, "max_new_tokens": max_new_tokens, "batch_size": batch_size or self.batch_size}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
            raise InputError(f"length_penalty must be a number, got {length_penalty!r}")
        # A learned-position decoder (Marian) has no position past its table: the start token takes one.
        positions = getattr(getattr(module, "config", None), "max_position_embeddings", None)
        if positions is not None and max_new_tokens >= positions:
            raise InputError(f"max_new_tokens must be below {positions} for {self.card.id} (its decoder has "
                             f"{positions} positions), got {max_new_tokens}")
        sentences = [line for item in raw_inputs for line in (item if isinstance(item, list) else [item])]
        translations = self.translate(module, sentences, device=device, num_beams=num_beams,
                                      max_new_tokens=max_new_tokens, length_penalty=float(length_penalty),
                                      batch_size=counts["batch_size"])
        out, start = [], 0
        for item in raw_inputs:  # regroup a file's lines
            count = len(item) if isinstance(item, list) else 1
            out.append(translations[start : start + count] if isinstance(item, list) else translations[start])
            start += count
        return out

    def translate(self, module, sentences: Sequence[str], *, device, batch_size: int, **generate) -> list[str]:
        """Translations of ``sentences`` in order; empty ones stay empty; longest first in batches."""
        pre = self.card.preprocessing
        if pre.get("prefix"):  # T5's task prefix
            sentences = [pre["prefix"] + s if s.strip() else s for s in sentences]
        if pre.get("forced_bos_token_id") is not None:  # NLLB/M2M: the target language code starts the output
            generate["forced_bos_token_id"] = int(pre["forced_bos_token_id"])
        encoded = self.encode(sentences)
        todo = sorted((i for i, s in enumerate(sentences) if s.strip()), key=lambda i: -len(encoded[i]))
        result = [""] * len(sentences)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            inputs = {k: v.to(device) for k, v in self.source_batch([encoded[i] for i in chunk]).items()}
            ids = module.generate(**inputs, **generate, do_sample=False)
            for i, text in zip(chunk, self.tokenizer.decode_batch(ids.tolist(), skip_special_tokens=True)):
                result[i] = text.strip()
        return result

    def postprocess(self, outputs: torch.Tensor) -> list[str]:
        """Generated token ids → text."""
        return [t.strip() for t in self.tokenizer.decode_batch(outputs.tolist(), skip_special_tokens=True)]

    # -- export -------------------------------------------------------------------------
    #: Sentences the exported pair must translate exactly as ``generate`` does (the bundle's own check).
    PARITY_SENTENCES = ("In the beginning was the word.", "Love one another.", "Peace.",
                        "The light shines in the darkness, and the darkness has not overcome it.",
                        "Go in peace, and sin no more.", "Blessed are the poor in spirit, for theirs is the kingdom.",
                        "He went up the mountain.", "Ask, and it will be given to you; seek, and you will find.")

    def write_onnx(self, network, examples, directory: Path, name: str) -> dict[str, Any]:
        """The encoder as ``model.onnx`` and one decoding step as ``decoder.onnx`` (:mod:`nlp.translation_export`);
        their outputs against the eager graphs' on ``examples``."""
        from backends.onnx_backend import OnnxRunner
        from backends.parity import check_parity
        from nlp.translation_export import DECODER_FILE, ENCODER_FILE, MarianEncoderGraph, export_translator

        if not hasattr(network, "model") or not hasattr(network.model, "encoder"):
            raise InputError(f"{name}: only Transformer (Marian) translators export to ONNX; this one is "
                             f"{type(network).__name__}")
        export_translator(network, examples[0], directory)
        encoder = MarianEncoderGraph(network).eval()
        keys = check_parity(lambda **batch: encoder(**batch)[0], OnnxRunner(directory / ENCODER_FILE, output="cross_keys"),
                            examples, name=name, backend="onnxruntime")
        return {**keys.to_dict(), "graphs": [ENCODER_FILE, DECODER_FILE]}

    def runtime_preprocessing(self) -> dict[str, Any]:
        return {"ref": "nlp.transforms:TranslationBatcher",
                "spec": {"tokenizer": self.card.preprocessing.get("tokenizer", "tokenizer.json"),
                         "max_length": self.max_length, "pad_token_id": self.pad_token_id,
                         "eos_token_id": self.eos_token_id}}

    def runtime_postprocessing(self) -> dict[str, Any]:
        from nlp.translation_export import DECODER_FILE

        # The decoder's position table bounds the output: the start token takes the first position.
        positions = int((self.card.arch_args.get("config") or {}).get("max_position_embeddings", 129))
        return {"kind": "translation", "decoder": DECODER_FILE, "decoder_start_token_id": self.pad_token_id,
                "eos_token_id": self.eos_token_id, "max_new_tokens": min(128, positions - 1),
                "max_positions": positions}

    def bundle_checks(self, model, bundle) -> dict[str, Any]:
        """The bundle's greedy token ids against transformers' ``generate`` on :data:`PARITY_SENTENCES`."""
        from nlp.translation_export import greedy_parity

        return greedy_parity(model.net, self, bundle, list(self.PARITY_SENTENCES),
                             max_new_tokens=bundle.spec["postprocessing"]["max_new_tokens"])

    # -- files --------------------------------------------------------------------------
    def read(self, path) -> list[str]:
        """A UTF-8 text file, one sentence a line (empty lines kept)."""
        from nlp.parallel import read_lines

        return read_lines(path)[0]

    def write(self, prediction: Any, path, *, source=None) -> Path:
        from zoo.atomic import write_text_atomic

        lines = prediction if isinstance(prediction, list) else [prediction]
        path = Path(path)
        write_text_atomic(path, "".join(line + "\n" for line in lines))
        return path

    def describe(self, prediction: Any, top_k: int = 1) -> str:
        return "\n".join(prediction) if isinstance(prediction, list) else str(prediction)

    def files(self) -> dict[str, Path]:
        name = self.card.preprocessing.get("tokenizer", "tokenizer.json")
        return {name: self.paths[name]} if name in self.paths else {}

