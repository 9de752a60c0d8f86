"""Translation: parallel readers and their bad input, the Bible dataset, the two architectures, the task's
predict and CLI, the recipe (loss falls, exact resume), sacreBLEU and the Apertium control arm."""
import json
import logging

import pytest
import torch

from nlp.parallel import load_parallel_splits, read_lines, read_parallel
from zoo.errors import InputError

PAIRS = [("the house is red", "la casa es roja"), ("the dog is big", "el perro es grande"),
         ("the cat is small", "el gato es pequeño"), ("the house is big", "la casa es grande"),
         ("the dog is red", "el perro es rojo"), ("the cat is big", "el gato es grande")] * 8


def write_tsv(path, pairs=PAIRS):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


# -- readers -----------------------------------------------------------------------------
def test_tsv_moses_and_jsonl_read_the_same_pairs(tmp_path):
    tsv = write_tsv(tmp_path / "a.tsv", PAIRS[:3])
    (tmp_path / "a.en").write_text("".join(s + "\n" for s, _ in PAIRS[:3]), encoding="utf-8")
    (tmp_path / "a.es").write_text("".join(t + "\n" for _, t in PAIRS[:3]), encoding="utf-8")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"translation": {"en": s, "es": t}}) + "\n"
                                              for s, t in PAIRS[:3]), encoding="utf-8")
    expected = [list(p) for p in zip(*PAIRS[:3])]
    for data in (tsv, f"{tmp_path}/a.en,{tmp_path}/a.es", tmp_path / "a.jsonl"):
        text = read_parallel(data)
        assert [text.sources, text.targets] == expected


def test_moses_line_counts_must_match_naming_the_first_missing_line(tmp_path):
    (tmp_path / "b.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "b.es").write_text("uno\ndos\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"b\.es has no line 3"):
        read_parallel((tmp_path / "b.en", tmp_path / "b.es"))


def test_bad_bytes_name_the_line_and_empty_lines_are_kept(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\nalso fine\n\xff broken\n")
    with pytest.raises(InputError, match=r"bad\.txt, line 4: not valid UTF-8"):
        read_lines(bad)
    (tmp_path / "ok.txt").write_bytes(b"one\n\nthree\r\n")
    assert read_lines(tmp_path / "ok.txt")[0] == ["one", "", "three"]


def test_tsv_with_a_missing_tab_and_jsonl_without_the_pair_are_errors(tmp_path):
    (tmp_path / "c.tsv").write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.tsv, line 2: expected 'source<TAB>target'"):
        read_parallel(tmp_path / "c.tsv")
    (tmp_path / "c.jsonl").write_text(json.dumps({"translation": {"en": "a", "fr": "b"}}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1: expected .*found \['en', 'fr'\]"):
        read_parallel(tmp_path / "c.jsonl")


def test_splits_of_a_file_drop_empty_pairs_and_hold_out_validation(tmp_path):
    splits = load_parallel_splits(write_tsv(tmp_path / "d.tsv", PAIRS[:10] + [("", "")]), val_fraction=0.2)
    assert splits.report["dropped_empty"] == 1 and len(splits.train) == 8 and len(splits.val) == 2
    assert splits.fingerprint == load_parallel_splits(tmp_path / "d.tsv", val_fraction=0.2).fingerprint


# -- the Bible -------------------------------------------------------------------------------
def test_bible_pairs_split_by_whole_books():
    from nlp.bible import FINGERPRINT, SPLIT_BOOKS, TRAIN_BOOKS, bible_en_es, sword_available
    from zoo.registry import get_registry

    why = sword_available()
    if why:
        pytest.skip(why)
    splits = bible_en_es()
    report = splits.report
    assert report["chapters_dropped"] == ["3John 1", "Rev 12"] and report["verses_dropped_numbering"] == 33
    assert len(splits.train) + len(splits.val) + len(splits.test) == report["pairs"] == 31046
    assert sorted(report["test_books"]) == sorted(SPLIT_BOOKS["test"]) and report["train_books"] == list(TRAIN_BOOKS)
    assert splits.fingerprint == FINGERPRINT == get_registry().dataset("nlp/bible-en-es").card["fingerprint"]
    john = splits.test.sources.index(next(s for s in splits.test.sources if s.startswith("For God so loved")))
    assert splits.test.targets[john].startswith("Porque de tal manera amó Dios al mundo")
    assert "<" not in "".join(splits.test.sources[:200])  # markup removed


# -- architectures ----------------------------------------------------------------------------
def test_gru_beam_search_with_one_beam_is_greedy_and_beams_score_no_worse():
    from nlp.models.gru import gru_translator

    torch.manual_seed(0)
    net = gru_translator(40, embed_dim=16, hidden_size=24).eval()
    ids = torch.randint(3, 40, (3, 7))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    greedy = net.generate(ids, mask, max_new_tokens=8)
    assert greedy.shape[0] == 3 and (greedy[:, 0] == 0).all()
    assert net(ids, mask, greedy[:, :-1]).shape == (3, greedy.shape[1] - 1, 40)
    beam = net.generate(ids, mask, max_new_tokens=8, num_beams=4, length_penalty=0.0)

    def logprob(sequence, row):
        seq = torch.tensor([[t for t in sequence if t != 0 or sequence.index(t) == 0]])
        logits = net(ids[row : row + 1], mask[row : row + 1], seq[:, :-1]).log_softmax(-1)
        return logits[0].gather(1, seq[0, 1:, None]).sum().item()

    for row in range(3):  # beam search finds a sequence at least as likely as greedy's (same eos rule)
        g, b = greedy[row].tolist(), beam[row].tolist()
        if 1 in g and 1 in b:
            assert logprob(b[: b.index(1) + 1], row) >= logprob(g[: g.index(1) + 1], row) - 1e-4


def test_marian_translator_is_a_transformers_marian():
    from transformers import MarianMTModel

    from nlp.models.marian import marian_translator

    net = marian_translator({"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                             "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
                             "max_position_embeddings": 32}, vocab_size=50)
    assert isinstance(net, MarianMTModel) and net.config.decoder_start_token_id == 0


# -- recipe, task and CLI -------------------------------------------------------------------------
TINY_GRU = {"embed_dim": 24, "hidden_size": 32, "dropout": 0.0}


def recipe(tmp_path, **train):
    from nlp.translation_recipe import TranslationRecipe

    tsv = write_tsv(tmp_path / "train.tsv")
    return TranslationRecipe(model="nlp/gru_translator.small", data=str(tsv), test_data=str(tsv), val_fraction=0.25,
                             vocab_size=60, max_length=16, eval_max_new_tokens=8, arch_args=TINY_GRU,
                             train={"epochs": 4, "batch_size": 8, "lr": 1e-2, "device": "cpu", "progress": False,
                                    "checkpoint_every_steps": 3, "keep_checkpoints": 10, **train})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gru")
    result = recipe(out).run(out / "model", progress=False)
    return out, result


def test_recipe_loss_falls_and_scores_bleu_and_chrf(trained):
    out, result = trained
    lines = [json.loads(line) for line in (out / "model" / "metrics.jsonl").read_text().splitlines()]
    losses = [line["val_loss"] for line in lines if "val_loss" in line]
    assert losses[-1] < losses[0]
    names = {m["name"] for m in result.metrics}
    assert {"loss", "bleu", "chrf"} <= names
    card = json.loads((out / "model" / "card.json").read_text())
    assert card["provenance"]["sacrebleu"]["bleu_signature"].startswith("nrefs:1|")
    assert "tokenizer.json" in card["files"] and card["preprocessing"]["source_lang"] == "en"


def test_recipe_resume_is_exact(tmp_path, trained):
    import zoo
    from backends.state import load_state

    out = tmp_path / "resumed"  # continued from the straight run's step-3 checkpoint (mid-epoch: 5 batches an epoch)
    checkpoint = trained[0] / "model" / "checkpoints" / "step-00000003"
    recipe(tmp_path).run(out, resume=str(checkpoint), progress=False)
    assert not (out / "checkpoints" / "step-00000003").exists()  # it went on from step 3, not from scratch
    straight = load_state(trained[0] / "model" / "weights.safetensors")
    resumed = load_state(out / "weights.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert zoo.load(out).predict("the dog is red") == zoo.load(trained[0] / "model").predict("the dog is red")


def test_predict_keeps_order_and_empty_lines_and_refuses_another_pair(trained, caplog):
    import zoo

    model = zoo.load(trained[0] / "model")
    texts = ["the house is red", "", "the cat is big " * 20]
    with caplog.at_level(logging.WARNING, logger="nlp"):
        out = model.predict(texts, num_beams=3, max_new_tokens=6)
    assert out[1] == "" and len(out) == 3 and all(isinstance(t, str) for t in out)
    assert "positions 2" in caplog.text  # the long one was truncated, and named
    assert model.predict(texts[:1])[0] == model.predict(texts[0])
    with pytest.raises(InputError, match="translates en->es, not en->fr"):
        model.predict("hola", target_lang="fr")
    with pytest.raises(InputError, match="num_beams must be a whole number >= 1, got 0"):
        model.predict("the dog", num_beams=0)
    with pytest.raises(InputError, match="expected text to translate, got NoneType at position 1"):
        model.predict(["the dog", None])


def test_zoo_predict_translates_a_sentence_and_a_file(trained, tmp_path):
    from typer.testing import CliRunner

    from zoo.cli import app

    model_dir = str(trained[0] / "model")
    runner = CliRunner()
    said = runner.invoke(app, ["predict", model_dir, "the dog is big"])
    assert said.exit_code == 0, said.output
    source = tmp_path / "in.txt"
    source.write_text("the dog is big\n\nthe cat is red\n", encoding="utf-8")
    wrote = runner.invoke(app, ["predict", model_dir, str(source), "--out", str(tmp_path / "out.txt")])
    assert wrote.exit_code == 0, wrote.output
    lines = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


# -- metrics --------------------------------------------------------------------------------------
def test_sacrebleu_scores_and_signatures():
    from nlp.mt_metrics import corpus_scores, copy_source

    perfect = corpus_scores(["la casa es roja"], ["la casa es roja"])
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0 and "tok:13a" in perfect["bleu_signature"]
    assert corpus_scores(copy_source(["the house"]), ["la casa"])["bleu"] < 10


def test_apertium_control_arm():
    from nlp.mt_metrics import apertium_available, apertium_translate

    why = apertium_available()
    if why:
        pytest.skip(why)
    out = apertium_translate(["The house is red.", "", "I love the world."])
    assert len(out) == 3 and out[1] == "" and "casa" in out[0].lower()


# -- transformers -----------------------------------------------------------------------------
TINY_MARIAN = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
               "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "max_position_embeddings": 32}


def test_a_trained_marian_loads_in_transformers_and_decodes_the_same(tmp_path):
    from safetensors.torch import load_file
    from transformers import MarianMTModel

    import zoo
    from nlp.models.marian import marian_config
    from nlp.translation_recipe import TranslationRecipe

    tsv = write_tsv(tmp_path / "t.tsv")
    TranslationRecipe(model="nlp/marian_translator.small", data=str(tsv), vocab_size=60, max_length=16,
                      arch_args={"config": TINY_MARIAN},
                      train={"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False, "ema_decay": 0.9},
                      ).run(tmp_path / "m", progress=False)
    model = zoo.load(tmp_path / "m")
    marian = MarianMTModel(marian_config(**model.card.arch_args)).eval()
    marian.load_state_dict(load_file(tmp_path / "m" / "weights.safetensors"))
    inputs = model.adapter.source_batch(model.adapter.encode(["the dog is red", "the cat"]))
    theirs = marian.generate(**inputs, max_new_tokens=6, num_beams=2, do_sample=False)
    ours = model.predict(["the dog is red", "the cat"], max_new_tokens=6, num_beams=2)
    assert ours == model.adapter.postprocess(theirs)
    assert len(model.predict("the dog is red", max_new_tokens=31)) >= 0  # the start token and 31: all 32 positions
    with pytest.raises(InputError, match="max_new_tokens must be below 32 .* has 32 positions\\), got 32"):
        model.predict("the dog is red", max_new_tokens=32)


def test_hf_seq2seq_checkpoint_passes_through_and_saves(tmp_path):
    from transformers import MarianMTModel, PreTrainedTokenizerFast

    import zoo
    from nlp.models.marian import marian_config
    from nlp.translation import train_tokenizer

    checkpoint = tmp_path / "tiny-marian"
    tokenizer_file = train_tokenizer([s for pair in PAIRS for s in pair], 60, tmp_path / "tokenizer.json")
    PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(checkpoint)
    torch.manual_seed(0)
    net = MarianMTModel(marian_config(TINY_MARIAN, 60)).eval()
    net.save_pretrained(checkpoint)
    model = zoo.load(f"hf:{checkpoint}", source_lang="en", target_lang="es", device="cpu")
    assert model.card.task == "translation" and model.card.architecture == "hf_seq2seq"
    ids = model.adapter.source_batch(model.adapter.encode(["the dog is red"]))
    expected = model.adapter.postprocess(net.generate(**ids, max_new_tokens=5, do_sample=False))
    assert model.predict(["the dog is red"], max_new_tokens=5) == expected
    with pytest.raises(InputError, match="translates en->es, not en->fr"):
        model.predict("the dog", target_lang="fr")
    model.save(tmp_path / "saved")
    assert zoo.load(tmp_path / "saved").predict(["the dog is red"], max_new_tokens=5) == expected


def test_architecture_sizes_come_from_the_command_line_as_yaml():
    from nlp.translation_recipe import TranslationRecipe

    recipe = TranslationRecipe.from_overrides({"arch_args": "{hidden_size: 8, embed_dim: 4}", "train.ema_decay": "0.99"})
    assert recipe.arch_args == {"hidden_size": 8, "embed_dim": 4} and recipe.train.ema_decay == 0.99


def test_checkpoint_averaging_takes_the_mean_of_the_last_epoch_ends(tmp_path):
    from backends.state import load_state
    from zoo.checkpoint import average_checkpoints, list_checkpoints, load_checkpoint
    from zoo.errors import CheckpointError

    run = recipe(tmp_path, epochs=3, keep_checkpoints=1)  # the recipe keeps what averaging needs
    run.average_checkpoints = 2
    result = run.run(tmp_path / "avg", progress=False)
    card = json.loads((tmp_path / "avg" / "card.json").read_text())
    averaged = card["provenance"]["checkpoint_average"]["checkpoints"]
    epoch_ends = [p for p in list_checkpoints(tmp_path / "avg") if load_checkpoint(p).state["batch"] == 0]
    # Mid-epoch checkpoints (every 3 steps, 5 steps an epoch) sit between the epoch ends and are not averaged.
    assert averaged == [p.name for p in epoch_ends[-2:]] == ["step-00000010", "step-00000015"]
    last_two = [load_checkpoint(p).model for p in epoch_ends[-2:]]
    saved = load_state(tmp_path / "avg" / "weights.safetensors")
    name = next(k for k, v in last_two[0].items() if v.is_floating_point() and not torch.equal(v, last_two[1][k]))
    # Checkpoints hold the zoo model's state (``net.`` keys), the saved weights the network's.
    assert torch.allclose(saved[name.removeprefix("net.")], (last_two[0][name] + last_two[1][name]) / 2, atol=1e-6)
    assert {m["name"] for m in result.metrics} >= {"loss", "bleu", "chrf"}
    with pytest.raises(CheckpointError, match=r"needs 3 epoch-end checkpoints .* found 2"):
        average_checkpoints(tmp_path / "avg", 3, like=last_two[0])
    with pytest.raises(InputError, match="choose one"):
        run.train.ema_decay = 0.99
        run.run(tmp_path / "ema", progress=False)
