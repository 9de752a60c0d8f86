"""``nlp/bible-en-es``: English-Spanish verse pairs from two public-domain Bibles Debian ships.

English: the World English Bible (SWORD module ``engWEB2015eb``, Debian ``sword-text-web``);
Spanish: the Reina-Valera 1909 (``spaRV1909eb``, Debian ``sword-text-sparv``). Both are
read with ``pysword`` from their module files, each pinned by sha256 and read through
the zoo store (``file://`` sources under ``/usr/share/sword``).

Alignment, by (book, chapter, verse):

* the WEB module is versified NRSVA, the RV1909 module KJV. For the 39 Old Testament
  books both have, every chapter has the same number of verses in the two
  versifications (929 chapters, 23,145 verses, measured), so those pair 1:1; the 17
  deuterocanonical books only the WEB has are dropped;
* in the New Testament two chapters are numbered differently and are dropped whole:
  3 John 1 (WEB 15 verses, RV 14: NRSV splits KJV's 1:14) and Revelation 12 (WEB 18,
  RV 17: NRSV's 12:18 is KJV's 13:1a); the other 258 chapters (7,926 verses) pair 1:1;
* a verse empty on either side (the WEB leaves a few verses it judges later additions
  empty) is dropped and counted;
* markup is removed: footnotes and non-canonical headings dropped, a psalm's
  canonical title kept (both texts hold it in verse 1), whitespace collapsed.

Splits are whole books (:data:`SPLIT_BOOKS`), so no test verse has a near-duplicate in
training: books with close parallels (the synoptic gospels, Kings/Chronicles,
Ephesians/Colossians, 2 Peter/Jude) stay together in training.
"""
from __future__ import annotations

import functools
import json
import re
import tempfile
from pathlib import Path

from nlp.parallel import ParallelSplits, ParallelText
from zoo.data import fingerprint
from zoo.errors import InputError

SWORD_ROOT = "/usr/share/sword/modules/texts/ztext"

# (Debian package, SWORD module, versification), and the sha256 of each module file it installs
# (sword-text-web 0~20230113, sword-text-sparv 0~20230113 in Debian 12).
MODULES = {
    "en": ("sword-text-web", "engWEB2015eb", "nrsva"),
    "es": ("sword-text-sparv", "spaRV1909eb", "kjv"),
}
MODULE_SHA256 = {
    "engWEB2015eb": {
        "nt.bzs": "bec87a360bbc6bfbcd7de513edf928ceebb428dd2baff813aebf521bb0c6cc83",
        "nt.bzv": "bb7a522d8323ccd7be462fca4dcd53c06d966c140fe260a6295e05393d259338",
        "nt.bzz": "5429389d9331b7a86901a73afa74f32d089cae3d5bd8dfe304b11808714a69ba",
        "ot.bzs": "2c16645bb829c05b20f39769e1fa23212743335143833a819f29e412c6def8ce",
        "ot.bzv": "dbd3b762b7159c5dd4b535f75b6ab643fb62ae44f4655aff3c5098a955a1ae57",
        "ot.bzz": "4633066d3872f1a3e600d2d10e667a13cd6c32bf116ca971d3c8f288bc3ea453",
    },
    "spaRV1909eb": {
        "nt.bzs": "b88dda1e9ab50d158262ab141af7823269acb19c581621683298be5b6e154d58",
        "nt.bzv": "a9583ba1b4c66dfdd8bfb6a0b1833bdaa02f9e2cc3465c5a802cf19cbc2f2533",
        "nt.bzz": "7baf6b1e798b193315fed89d0e84e8e1a033d035316f66c78d456f5fb8c87e20",
        "ot.bzs": "0e39106ae15a29cef56feac683f8482be380536a1c456e006867f9fa94c0338e",
        "ot.bzv": "0f23b1ebff5ecdd352a64feda5bb047cba27ce3624fa7b00717f763835d96e20",
        "ot.bzz": "daae868e179e6cc884ad2c9429a9dfaf9745d61caa6dbb9da2a8b24ec3c01337",
    },
}
# Chapters whose verse numbering differs between the two versifications (OSIS book, chapter): dropped.
DROPPED_CHAPTERS = (("3John", 1), ("Rev", 12))
# Whole books per split (OSIS names); every other book both texts have is training data.
SPLIT_BOOKS = {
    "test": ("John", "Rom", "Ruth", "Jonah"),
    "val": ("Gal", "Jas", "Mic"),
}
TRAIN_BOOKS = (
    "Gen", "Exod", "Lev", "Num", "Deut", "Josh", "Judg", "1Sam", "2Sam", "1Kgs", "2Kgs", "1Chr", "2Chr", "Ezra", "Neh",
    "Esth", "Job", "Ps", "Prov", "Eccl", "Song", "Isa", "Jer", "Lam", "Ezek", "Dan", "Hos", "Joel", "Amos", "Obad",
    "Nah", "Hab", "Zeph", "Hag", "Zech", "Mal", "Matt", "Mark", "Luke", "Acts", "1Cor", "2Cor", "Eph", "Phil", "Col",
    "1Thess", "2Thess", "1Tim", "2Tim", "Titus", "Phlm", "Heb", "1Pet", "2Pet", "1John", "2John", "Jude", "Rev",
)
# The fingerprint of the pairs and splits read from the pinned files (the test checks it).
FINGERPRINT = "3034259f8fbf23165463aad06da6e1edf12d3eb705c7b9e89fa8dbd0fd5467eb"

_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_HEADING = re.compile(r"<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>", re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?])")


def clean_verse(raw: str) -> str:
    """A verse's OSIS markup as plain text: footnotes and headings out, a psalm's canonical title kept."""
    text = _TAG.sub("", _HEADING.sub(" ", _NOTE.sub(" ", raw)))
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))


def sword_available() -> str | None:
    """None when both Debian packages are installed, else why not (for skips and errors)."""
    missing = [package for package, module, _ in MODULES.values() if not Path(SWORD_ROOT, module).is_dir()]
    if missing:
        return f"nlp/bible-en-es needs the Debian packages {' and '.join(missing)} (apt-get install {' '.join(missing)})"
    try:
        import pysword  # noqa: F401
    except ImportError:
        return "nlp/bible-en-es reads the SWORD modules with pysword: pip install pysword (or 'domain-zoo[nlp]')"
    return None


def _module_files(module: str, folder: Path) -> None:
    """The module's six files, verified against their pins through the store, linked into ``folder``."""
    from zoo import cache
    from zoo.registry import WeightFile

    folder.mkdir(parents=True)
    for name, sha256 in MODULE_SHA256[module].items():
        wf = WeightFile(name, sha256, f"file://{SWORD_ROOT}/{module}/{name}", format="raw")
        (folder / name).symlink_to(cache.fetch(wf, model_id="nlp/bible-en-es"))


def _open(versification: str, folder: Path):
    from pysword.bible import SwordBible

    bible = SwordBible(str(folder), "ztext", versification, "utf-8", "OSIS")
    # pysword decompresses a book's whole block for every verse it reads; keep the last few blocks.
    bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    return bible


@functools.lru_cache(maxsize=1)
def read_verses() -> tuple[list[tuple[str, int, int, str, str]], dict]:
    """Every aligned ``(book, chapter, verse, english, spanish)`` in canonical order, and what was dropped."""
    why = sword_available()
    if why:
        raise InputError(why)
    with tempfile.TemporaryDirectory(prefix="zoo-sword-") as tmp:
        bibles = {}
        for lang, (_, module, versification) in MODULES.items():
            _module_files(module, Path(tmp, module))
            bibles[lang] = _open(versification, Path(tmp, module))
        return _aligned(bibles["en"], bibles["es"])


def _aligned(english, spanish):
    verses, report = [], {"chapters_dropped": [f"{b} {c}" for b, c in DROPPED_CHAPTERS], "verses_dropped_numbering": 0,
                          "verses_dropped_empty": 0, "books_only_in_english": []}
    structure_es = spanish.get_structure().get_books()
    for testament, books in english.get_structure().get_books().items():
        spanish_books = {book.osis_name: book for book in structure_es[testament]}
        for book in books:
            other = spanish_books.get(book.osis_name)
            if other is None:
                report["books_only_in_english"].append(book.osis_name)
                continue
            for chapter in range(1, min(book.num_chapters, other.num_chapters) + 1):
                count = book.chapter_lengths[chapter - 1]
                if (book.osis_name, chapter) in DROPPED_CHAPTERS or count != other.chapter_lengths[chapter - 1]:
                    report["verses_dropped_numbering"] += max(count, other.chapter_lengths[chapter - 1])
                    continue
                numbers = list(range(1, count + 1))
                en = english.get_iter(books=[book.name], chapters=[chapter], verses=numbers, clean=False)
                es = spanish.get_iter(books=[other.name], chapters=[chapter], verses=numbers, clean=False)
                for verse, (source, target) in enumerate(zip(en, es), 1):
                    source, target = clean_verse(source), clean_verse(target)
                    if not (source and target):
                        report["verses_dropped_empty"] += 1
                        continue
                    verses.append((book.osis_name, chapter, verse, source, target))
    return verses, report


def bible_en_es() -> ParallelSplits:
    """The aligned verse pairs split by whole books (:data:`SPLIT_BOOKS`); see the module docstring."""
    verses, report = read_verses()
    held_out = {book: split for split, books in SPLIT_BOOKS.items() for book in books}
    parts: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    books: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for book, _, _, source, target in verses:
        split = held_out.get(book, "train")
        parts[split][0].append(source), parts[split][1].append(target)
        if not books[split] or books[split][-1] != book:
            books[split].append(book)
    # Over the pairs themselves (not only the pinned files), so a change in pysword's reading shows too.
    pairs = "\n".join(f"{book}\t{chapter}\t{verse}\t{source}\t{target}" for book, chapter, verse, source, target in verses)
    digest = fingerprint(json.dumps(MODULE_SHA256, sort_keys=True), json.dumps(SPLIT_BOOKS, sort_keys=True), pairs)
    splits = {name: ParallelText(*pair, digest) for name, pair in parts.items()}
    return ParallelSplits(
        splits["train"], splits["val"], splits["test"], "en", "es", digest, "nlp/bible-en-es",
        {**report, "pairs": len(verses), **{f"{name}_size": len(s) for name, s in splits.items()},
         **{f"{name}_books": b for name, b in books.items()}},
    )
