"""Translation quality: sacreBLEU's BLEU and chrF with their signatures, and the suite's control arms.

Control arms: copying the source (what a model that learned nothing scores), and
Apertium's rule-based English→Spanish (Debian ``apertium`` + ``apertium-eng-spa``,
GPL), run as an external command, never linked.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Any, Sequence

from zoo.errors import InputError

APERTIUM_PAIRS = {("en", "es"): "eng-spa", ("es", "en"): "spa-eng"}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacreBLEU defaults: 13a tokenisation, chrF n=6, beta=2) with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise InputError(f"expected one hypothesis per reference, got {len(hypotheses)} and {len(references)}")
    if not references:
        raise InputError("expected at least one reference to score against, got none")
    bleu, chrf = BLEU(), CHRF()
    hypotheses, references = list(hypotheses), [list(references)]
    return {"bleu": round(bleu.corpus_score(hypotheses, references).score, 4),
            "chrf": round(chrf.corpus_score(hypotheses, references).score, 4),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def copy_source(sources: Sequence[str]) -> list[str]:
    """The copy-the-source control arm: each sentence is its own 'translation'."""
    return list(sources)


def apertium_available(source_lang: str = "en", target_lang: str = "es") -> str | None:
    """None when Apertium can translate the pair here, else why not (for skips and errors)."""
    pair = APERTIUM_PAIRS.get((source_lang, target_lang))
    if pair is None:
        return f"no Apertium pair for {source_lang}->{target_lang}; known: {sorted(APERTIUM_PAIRS)}"
    if shutil.which("apertium") is None:
        return "the apertium command is not installed (apt-get install apertium apertium-eng-spa)"
    listed = subprocess.run(["apertium", "-l"], capture_output=True, text=True, timeout=60).stdout.split()
    if pair not in listed:
        return f"Apertium has no {pair} mode installed (apt-get install apertium-eng-spa); it has {listed}"
    return None


def apertium_translate(sentences: Sequence[str], source_lang: str = "en", target_lang: str = "es", *,
                       timeout: float = 600.0) -> list[str]:
    """Apertium's translations, one per sentence (``apertium -u``: unknown words unmarked), in one call.

    Sentences go in one a line; newlines inside a sentence become spaces so lines stay aligned.
    """
    why = apertium_available(source_lang, target_lang)
    if why:
        raise InputError(why)
    text = "".join(" ".join(s.split()) + "\n" for s in sentences)
    done = subprocess.run(["apertium", "-u", APERTIUM_PAIRS[(source_lang, target_lang)]], input=text,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise InputError(f"apertium failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
    lines = done.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(sentences):
        raise InputError(f"apertium returned {len(lines)} lines for {len(sentences)} sentences")
    return [line.strip() for line in lines]


def corpus_statistic(hypotheses: Sequence[str], references: Sequence[str], n_boot: int = 1000):
    """BLEU and chrF as an :class:`~zoo.bench_stats.ExampleStatistic` over sentences, for bootstrap CIs.

    Corpus BLEU/chrF are no mean of sentence scores: each resample sums the resampled sentences' n-gram
    match counts and recomputes the corpus score from them, as sacreBLEU's own paired bootstrap does
    (its per-sentence statistics are extracted once; ``of(None)`` is the whole corpus's score).
    """
    import numpy as np
    from sacrebleu.metrics import BLEU, CHRF

    from zoo.bench_stats import ExampleStatistic

    if len(hypotheses) != len(references) or not references:
        raise InputError(f"expected one hypothesis per reference and some of each, got {len(hypotheses)} "
                         f"and {len(references)}")
    metrics = {"bleu": BLEU(), "chrf": CHRF()}
    stats = {name: np.asarray(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=float)
             for name, metric in metrics.items()}

    def scores(indices=None) -> dict[str, float]:
        counts = np.bincount(np.arange(len(references)) if indices is None else indices, minlength=len(references))
        return {name: float(metric._compute_score_from_stats(counts @ stats[name]).score)
                for name, metric in metrics.items()}

    return ExampleStatistic(len(references), scores, n_boot)
