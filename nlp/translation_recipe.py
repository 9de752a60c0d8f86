"""The ``translation`` recipe on the shared Trainer: a Transformer (Marian) or a GRU with attention.

From scratch (a registered ``nlp/marian_translator.*`` or ``nlp/gru_translator.*`` id,
or ``pretrained=False``) it first trains a joint BPE tokenizer on the training
sources and targets (``vocab_size``), written beside the weights and pinned in the
card; a trained translation model (a folder) is fine-tuned with its own tokenizer.

Training: label-smoothed cross-entropy over target tokens (padding ignored), AdamW
with warm-up then the schedule of ``train`` (``train.warmup_ratio``), length-bucketed
batches (sentences of similar length share a batch), an optional EMA of the weights
(``train.ema_decay``), exact resume (the Trainer's checkpoints). The best epoch by
validation loss is kept, or with ``average_checkpoints=N`` (N >= 2; not with an EMA) the
mean of the last N epochs' weights, as fairseq and Marian average checkpoints: the run keeps
the checkpoints it needs, the card records which were averaged and the average's validation
loss. The test split (when the data has one) is translated and scored with sacreBLEU BLEU
and chrF, their signatures in the card's provenance.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from zoo.errors import InputError
from zoo.recipes import Recipe, RecipeResult, TrainerRecipe, bounded, card_metrics


@dataclass
class TranslationRecipe(TrainerRecipe, Recipe):
    """Train or fine-tune a translation model on a dataset id or your parallel file(s)."""

    name: ClassVar[str] = "translation"
    cli_options: ClassVar[Mapping[str, str]] = {"--source-lang": "source_lang", "--target-lang": "target_lang"}
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "epochs": 10, "batch_size": 32, "lr": 5e-4, "weight_decay": 0.01, "warmup_ratio": 0.05,
        "schedule": "cosine", "monitor": "val_loss", "monitor_mode": "min",
    }

    model: str = "nlp/marian_translator.small"
    data: str = "nlp/bible-en-es"
    val_data: str | None = None
    test_data: str | None = None
    source_lang: str = "en"
    target_lang: str = "es"
    val_fraction: float = bounded(0.1, "[0, 1)")
    max_train_samples: int | None = bounded(None, "[1, inf)")
    max_eval_samples: int | None = bounded(None, "[1, inf)")
    vocab_size: int = bounded(8000, "[16, inf)")
    max_length: int = bounded(128, "[4, inf)")
    label_smoothing: float = bounded(0.1, "[0, 1)")
    length_bucketing: bool = True
    eval_num_beams: int = bounded(1, "[1, inf)")
    eval_max_new_tokens: int = bounded(160, "[1, inf)")
    average_checkpoints: int = bounded(0, "[0, inf)")  # N >= 2: the final weights are the last N epochs' mean
    pretrained: bool = True
    arch_args: dict | None = None  # sizes that replace the architecture's (a fresh model only)

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        from functools import partial

        from backends.seed import seed_everything, set_deterministic
        from nlp.recipes import LengthBucketSampler
        from zoo.train import Trainer

        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = self._splits()
        model = self._model(splits, Path(out_dir))
        adapter = model.adapter
        train = _encoded(adapter, splits.train)
        val = _encoded(adapter, splits.val) if splits.val is not None else None
        sampler_fn = (partial(LengthBucketSampler, lengths=[len(s) + len(t) for s, t in train])
                      if self.length_bucketing else None)
        trainer = Trainer(
            model, train, val, config=self._train_config(progress, len(train)), out_dir=out_dir,
            loss_fn=LabelSmoothedLoss(self.label_smoothing), collate_fn=adapter.collate, sampler_fn=sampler_fn,
            provenance={**self.provenance(splits.fingerprint), "data_report": splits.report},
        )
        result = trainer.fit(resume=resume)
        validation = self._averaged(trainer, out_dir) if self.average_checkpoints >= 2 else result.best_metrics
        metrics = [{"name": "loss", "value": round(float(validation["val_loss"]), 6), "dataset": self.data,
                    "split": "val"}] if "val_loss" in validation else []
        if splits.test is not None:
            scores = self.score(model, splits.test)
            model.card.provenance["sacrebleu"] = {k: scores.pop(k) for k in ("bleu_signature", "chrf_signature")}
            metrics += card_metrics({f"test_{k}": v for k, v in scores.items()}, "test", self.data)
        model.card.metrics = metrics
        if trainer.env.is_main:
            model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)

    def _train_config(self, progress: bool, train_size: int):
        """The Trainer's config; averaging keeps enough checkpoints to hold the last epochs' ends (mid-epoch ones
        at ``checkpoint_every_steps`` come between them)."""
        import dataclasses
        import math

        config = self.train_config(progress)
        if self.average_checkpoints < 2:
            return config
        if config.ema_decay is not None:
            raise InputError("average_checkpoints and train.ema_decay both average the weights: choose one")
        batches = math.ceil(train_size / config.batch_size)
        per_epoch = 1 + (batches // config.checkpoint_every_steps if config.checkpoint_every_steps else 0)
        return dataclasses.replace(config, keep_checkpoints=max(config.keep_checkpoints,
                                                                self.average_checkpoints * per_epoch))

    def _averaged(self, trainer, out_dir) -> dict[str, float]:
        """Put the mean of the last ``average_checkpoints`` epochs' weights into the model; its validation loss."""
        from zoo.checkpoint import average_checkpoints

        model = trainer.model
        state, paths = average_checkpoints(out_dir, self.average_checkpoints, like=model.state_dict())
        model.load_state_dict(state)
        model.card.provenance["checkpoint_average"] = {"checkpoints": [p.name for p in paths],
                                                     "best_single_epoch": trainer.best_metrics}
        return trainer.evaluate(trainer.val_data, prefix="val") if trainer.val_data is not None else {}

    def score(self, model, test) -> dict[str, Any]:
        """BLEU and chrF of the model's translations of ``test`` (greedy unless ``eval_num_beams``)."""
        from nlp.mt_metrics import corpus_scores

        hypotheses = model.predict(list(test.sources), num_beams=self.eval_num_beams,
                                   max_new_tokens=self.eval_max_new_tokens)
        return {**corpus_scores(hypotheses, test.targets), "n": len(test)}

    def _splits(self):
        import numpy as np

        from nlp.parallel import load_parallel_splits

        splits = load_parallel_splits(self.data, val_data=self.val_data, test_data=self.test_data,
                                      val_fraction=self.val_fraction, source_lang=self.source_lang,
                                      target_lang=self.target_lang, seed=self.seed)
        rng = np.random.default_rng(self.seed)
        for name, limit in (("train", self.max_train_samples), ("val", self.max_eval_samples),
                            ("test", self.max_eval_samples)):
            split = getattr(splits, name)
            if split is not None and limit is not None and len(split) > limit:
                setattr(splits, name, split.subset(sorted(rng.permutation(len(split))[:limit].tolist())))
                splits.report[f"{name}_used"] = limit
        return splits

    def _model(self, splits, out_dir: Path):
        """The model to train: a fine-tuned translation model (its tokenizer), or a fresh one with a new tokenizer."""
        from zoo.hub import info, load

        card = info(self.model)
        if card.task != "translation":
            raise InputError(f"the translation recipe trains translation models, got {self.model} (task {card.task!r})")
        if self.pretrained and card.files:
            model = load(self.model, device=self.train.device)
            model.adapter.check_pair(self.source_lang, self.target_lang)
            model.card.provenance["finetune_from"] = self.model
            return model
        return self._fresh_model(card, splits, out_dir)

    def _fresh_model(self, card, splits, out_dir: Path):
        from nlp.translation import train_tokenizer, translation_preprocessing
        from zoo.hub import build

        tokenizer = train_tokenizer(splits.train.sources + splits.train.targets, self.vocab_size,
                                    out_dir / "tokenizer.json")
        from tokenizers import Tokenizer

        vocab = Tokenizer.from_file(str(tokenizer)).get_vocab_size(with_added_tokens=True)
        card.arch_args = {**card.arch_args, **(self.arch_args or {}), "vocab_size": vocab, "pad_token_id": 0,
                          "eos_token_id": 1}
        card.preprocessing = translation_preprocessing(self.source_lang, self.target_lang, self.max_length)
        card.input = {"type": "text", "language": self.source_lang, "max_length": self.max_length,
                      "output": f"text in {self.target_lang}"}
        card.metrics, card.provenance, card.files = [], {}, {}
        model = build(card, {"tokenizer.json": tokenizer})
        return model.to(self.train.device if self.train.device != "auto" else "cpu")


class LabelSmoothedLoss:
    """Cross-entropy over target tokens with label smoothing; padding (-100) ignored; Marian's output or logits."""

    def __init__(self, smoothing: float):
        self.smoothing = smoothing

    def __call__(self, outputs, targets):
        import torch.nn.functional as F

        logits = getattr(outputs, "logits", outputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                               ignore_index=-100, label_smoothing=self.smoothing)


class EncodedPairs:
    """Token ids of parallel text: ``ds[i]`` is ``(source ids, target ids)`` for the adapter's ``collate``."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]]):
        self.sources, self.targets = sources, targets

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int):
        return self.sources[index], self.targets[index]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _encoded(adapter, text) -> EncodedPairs:
    return EncodedPairs(adapter.encode(text.sources, "source sentences"), adapter.encode(text.targets, "target sentences"))
