"""Every ```python block of every guide in docs/ runs, in order, in a fresh folder."""
import re
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


def code_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("guide", DOCS, ids=lambda p: p.name)
def test_guide_code_runs(guide, tmp_path, monkeypatch):
    blocks = code_blocks(guide)
    assert blocks, f"{guide.name} has no python code block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{guide.name}[block {number}]", "exec"), namespace)


@pytest.mark.parametrize("page", [*DOCS, DOCS[0].parents[1] / "README.md"], ids=lambda p: p.name)
def test_card_tables_match_the_cards(page):
    from zoo.doctables import render

    text = page.read_text(encoding="utf-8")
    assert render(text) == text, f"{page.name}: a table drifted from the cards; run python -m zoo.doctables {page.name}"
