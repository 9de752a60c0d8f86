"""nlp/tweets-sentiment and the readers for your own CSV / TSV / JSONL text data."""
import json
import logging

import numpy as np
import pytest

from nlp.datasets import TWEETS_SHA256, load_splits, read_table, text_table, tweets_sentiment
from zoo.errors import InputError, UnknownDatasetError


@pytest.fixture(scope="module")
def tweets():
    return tweets_sentiment()


def test_tweets_are_deduplicated_split_stratified_and_fingerprinted(tweets):
    report = tweets.report
    assert report["rows_read"] == 38_158 and report["dropped_duplicates"] == 915
    sizes = [len(tweets.train), len(tweets.val), len(tweets.test)]
    assert sum(sizes) == 38_158 - 915 and sizes == [report["train_size"], report["val_size"], report["test_size"]]
    assert tweets.classes == ["negative", "neutral", "positive"]
    texts = [set(split.texts) for split in (tweets.train, tweets.val, tweets.test)]
    assert sum(map(len, texts)) == sum(sizes)  # no duplicate inside a split...
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])  # ...nor across splits
    shares = [np.bincount(split.labels, minlength=3) / len(split) for split in (tweets.train, tweets.test)]
    np.testing.assert_allclose(shares[0], shares[1], atol=0.01)
    assert tweets_sentiment().fingerprint == tweets.fingerprint != tweets_sentiment(seed=1).fingerprint
    assert load_splits("nlp/tweets-sentiment").fingerprint == tweets.fingerprint


def test_tweets_corpus_is_pinned_and_read_through_the_cache(tweets, isolated_zoo_home):
    blob = isolated_zoo_home / "blobs" / "sha256" / TWEETS_SHA256
    tweets_sentiment()
    assert blob.is_file()


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_tsv_and_jsonl_with_configurable_columns(tmp_path):
    csv_file = write(tmp_path / "r.csv", 'review,stars\n"Great, really",5\nbad,1\n"multi\nline",5\n')
    table = read_table(csv_file, text_column="review", label_column="stars")
    assert table.texts == ["Great, really", "bad", "multi\nline"] and table.labels == ["5", "1", "5"]
    tsv = write(tmp_path / "r.tsv", "q\td\tlabel\nwhat?\tthis.\tyes\nwhy?\tbecause.\tno\n")
    pairs = read_table(tsv, text_column="q", text_pair_column="d")
    assert pairs.pairs == ["this.", "because."] and pairs.labels == ["yes", "no"]
    jsonl = write(tmp_path / "r.jsonl", '{"text": "fine", "label": 2}\n\n{"text": "meh", "label": 10}\n')
    assert read_table(jsonl).labels == ["2", "10"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbftext,label\nhello,a\n")
    assert read_table(bom).texts == ["hello"]


def test_missing_columns_name_the_ones_found(tmp_path):
    csv_file = write(tmp_path / "r.csv", "review,stars\ngood,5\n")
    with pytest.raises(InputError, match=r"has no column 'text'.*its columns are \['review', 'stars'\].*--text-column"):
        read_table(csv_file)
    jsonl = write(tmp_path / "r.jsonl", '{"body": "x", "label": 1}\n')
    with pytest.raises(InputError, match=r"line 1: no field 'text'; this row has \['body', 'label'\]"):
        read_table(jsonl)
    with pytest.raises(InputError, match="line 2: not valid JSON"):
        read_table(write(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n{oops\n'))
    with pytest.raises(InputError, match=r"expected a .csv, .jsonl"):
        read_table(write(tmp_path / "data.xlsx", "x"))


def test_empty_texts_and_labels_are_dropped_and_counted(tmp_path, caplog):
    csv_file = write(tmp_path / "r.csv", "text,label\ngood,pos\n   ,pos\nbad,\nfine,pos\n,neg\n")
    with caplog.at_level(logging.WARNING, logger="nlp"):
        table = read_table(csv_file)
    assert table.texts == ["good", "fine"]
    assert table.report == {"rows_read": 5, "dropped_empty_text": 2, "dropped_empty_label": 1, "rows": 2}
    assert "dropped 2 row(s) with empty text (line 3, 6)" in caplog.text
    with pytest.raises(InputError, match="no usable rows: 2 read, 2 with empty text"):
        read_table(write(tmp_path / "empty.csv", "text,label\n ,a\n,b\n"))


def test_non_utf8_bytes_name_the_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9,pos\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message and "byte 0xe9 at offset 14 (line 2)" in message and "encoding='latin-1'" in message
    assert read_table(path, encoding="latin-1").texts == ["café"]


def test_duplicates_dropped_before_splitting_and_labels_sorted_numerically(tmp_path, caplog):
    rows = "".join(f"text {i % 30},{i % 3 * 5 or 10}\n" for i in range(60))  # every text twice
    with caplog.at_level(logging.WARNING, logger="nlp"):
        splits = text_table(write(tmp_path / "d.csv", "text,label\n" + rows), val_fraction=0.2, test_fraction=0.2)
    assert splits.report["dropped_duplicates"] == 30 and "30 exact duplicate" in caplog.text
    assert splits.classes == ["5", "10"]  # numerically, not "10" < "5"
    texts = [set(s.texts) for s in (splits.train, splits.val, splits.test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_fixed_labels_reject_unknown_classes(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,pos\nb,neg\nc,mixed\nd,mixed\n")
    with pytest.raises(InputError, match=r"labels the model does not know: 'mixed' \(2 rows\); its classes are \['neg', 'pos'\]"):
        load_splits(path, labels=["neg", "pos"])
    with pytest.raises(UnknownDatasetError, match="nlp/tweets-sentiment"):
        load_splits("nlp/tweets")
    val = write(tmp_path / "val.jsonl", json.dumps({"text": "x", "label": "other"}) + "\n")
    with pytest.raises(InputError, match="'other'"):
        load_splits(write(tmp_path / "t.csv", "text,label\na,pos\nb,neg\n"), val_data=val)


# -- issue 13, item 9: ragged and merged rows, label types, fractions ------------------
SIXTEEN_ROWS = "text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(16))


@pytest.mark.parametrize("content, message", [
    # An unclosed quote at the end of the file swallows the rows after it.
    ('text,label\n"unclosed,a\nsecond row,b\nthird,a\n', r"line 2: malformed CSV .*unexpected end of data"),
    # ... and one closed later merges two rows into one with too few fields.
    ('text,label\nfirst,a\n"unclosed,a\nsecond row,b"\nthird,a\n', r"2 fields in every row.* line 3 has 1"),
    ('text,label\n"quoted" then text,a\n', r"line 2: malformed CSV"),
    ("text,label\nan extra, comma,a\nfine,b\n", r"line 2 has 3"),
    ("text,label\nno delimiter\nfine,b\n", r"line 2 has 1"),
])
def test_ragged_or_merged_csv_rows_are_errors_naming_the_line(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        read_table(write(tmp_path / "d.csv", content))


def test_ragged_tsv_rows_are_errors_too(tmp_path):
    with pytest.raises(InputError, match=r"line 3 has 3"):
        read_table(write(tmp_path / "d.tsv", "text\tlabel\nfine\ta\ntoo\tmany\tb\n"))


def test_quoted_fields_may_span_lines_and_blank_lines_are_skipped(tmp_path):
    table = read_table(write(tmp_path / "d.csv", 'text,label\n"two\nlines",a\n\n"with ""quotes"", and comma",b\n\n'))
    assert table.texts == ["two\nlines", 'with "quotes", and comma'] and table.labels == ["a", "b"]


def test_a_column_named_twice_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"names the column\(s\) \['text'\] more than once"):
        read_table(write(tmp_path / "d.csv", "text,text,label\na,b,c\n"))


def test_jsonl_labels_are_one_class_whatever_their_json_type(tmp_path):
    rows = [("a", 1), ("b", 1.0), ("c", "1"), ("d", " 1 "), ("e", 2), ("f", 2.5), ("g", None), ("h", float("nan"))]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    splits = text_table(path, val_fraction=0)
    assert splits.classes == ["1", "2", "2.5"]
    assert splits.train.labels.tolist() == [0, 0, 0, 0, 1, 2]
    assert splits.report["dropped_empty_label"] == 2  # null and NaN are missing labels


def test_jsonl_lines_end_only_at_newline(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "a\u2028b\x85c", "label": "x"}, ensure_ascii=False) + "\n")
    assert read_table(path).texts == ["a\u2028b\x85c"]


def test_jsonl_nested_too_deep_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="line 1: JSON nested too deeply"):
        read_table(write(tmp_path / "d.jsonl", "[" * 100_000 + "\n"))


@pytest.mark.parametrize("fractions, message", [
    ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\), got -0.1"),
    ({"val_fraction": 1.5}, r"val_fraction must be in \[0, 1\), got 1.5"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, r"val_fraction=0.5 \+ test_fraction=0.5 is at least 1"),
])
def test_held_out_fractions_outside_their_range_are_errors(tmp_path, fractions, message):
    with pytest.raises(InputError, match=message):
        text_table(write(tmp_path / "d.csv", SIXTEEN_ROWS), **fractions)
