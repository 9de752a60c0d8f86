"""Small local fixtures for the NLP tests: a tiny BERT checkpoint, a fake Hugging Face cache, data files."""
from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "bad", "good", "awful",
         "i", "loved", "it", "hated", "!", "."]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

POSITIVE = ["great product, works perfectly", "I love it", "excellent quality and fast shipping",
            "really happy with this", "five stars, would buy again", "amazing value for the money",
            "fantastic, exceeded my expectations", "very good indeed", "super useful and well made",
            "best purchase this year"]
NEGATIVE = ["terrible, broke after a day", "I hate it", "awful quality", "very disappointed",
            "a waste of money", "do not buy this", "it stopped working", "horrible customer service",
            "cheap and flimsy", "worst purchase ever"]


def make_tiny_bert(directory: Path) -> Path:
    """A 2-label BERT with 16-d hidden states and its WordPiece tokenizer, saved as transformers does."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1}, architectures=["BertForSequenceClassification"],
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(directory)
    return directory


def install_in_hf_cache(checkpoint: Path, hub_dir: Path, repo_id: str, commit: str = COMMIT) -> Path:
    """Lay ``checkpoint`` out as huggingface_hub's cache does: refs/main, snapshots/COMMIT, LFS blobs named by sha256."""
    repo = hub_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for path in checkpoint.iterdir():
        if path.suffix == ".safetensors":  # an LFS file: the blob is named by its sha256
            blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
            shutil.copyfile(path, blob)
            (snapshot / path.name).symlink_to(Path("../..") / "blobs" / blob.name)
        else:
            shutil.copyfile(path, snapshot / path.name)
    return snapshot


def write_reviews(path: Path, *, text_column: str = "review", label_column: str = "stars", extra_rows=()) -> Path:
    """A small labelled CSV: 10 five-star and 10 one-star reviews, plus ``extra_rows``."""
    rows = [(t, "5") for t in POSITIVE] + [(t, "1") for t in NEGATIVE]
    rows = [row for pair in zip(rows[:10], rows[10:]) for row in pair] + list(extra_rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", text_column, label_column])
        for i, (text, label) in enumerate(rows):
            writer.writerow([i, text, label])
    return path
