"""The docs stay a front door and stay true to the tree: the README is short with the code map
near its top, every file the map names exists, every relative link and anchor resolves, and
every verdict in RESULTS.md is one short cell."""

import re

import pytest
import torch

from harness.main import main
from tests import ROOT

DOCS = [ROOT / "README.md", ROOT / "RESULTS.md", ROOT / "BENCHMARKS.md"]
TRAIN = "pip install -r requirements.txt && python variants/wgan_gp.py && python plots/make_gifs.py"
TEST = "pip install -r requirements-dev.txt && pytest"
DOCS += sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path) -> set[str]:
    lines = path.read_text().splitlines()
    return {slug(line.lstrip("#")) for line in lines if line.startswith("#")}


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    assert lines.index("## How the code reads") < 40  # the code map on the first screen
    first_screen = lines[: lines.index("## How the code reads")]
    assert "```bash" in first_screen  # the two commands, up front, as .ci/run runs them
    assert TRAIN in first_screen and TEST in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert (
        "-r requirements.txt\n" in ci and "-r requirements-dev.txt\n" in ci and "\npytest\n" in ci
    )
    assert any("python experiments/compare_variants.py" in line for line in first_screen)


def test_the_readme_s_notebook_code_trains_the_lab_s_points_as_a_run_does(tmp_path, monkeypatch):
    """The README's Python, two epochs long, gives the state a two-epoch command-line run ends
    with (the same config, data, split and step; compiled here, eager there), and plots."""
    text = (ROOT / "README.md").read_text()
    code = text.split("```python\n")[1].split("```")[0].replace('"20"', '"2"')
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(ROOT)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert main("wgan_gp", ["--epochs", "2", "--no-compile", "--out", str(tmp_path / "run")]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoint.pt")["state"]
    for network in ("g", "d"):
        for name, value in saved[network].items():
            torch.testing.assert_close(
                scope["epoch"]["state"][network][name], value, rtol=1e-4, atol=1e-6
            )
    assert scope["fake"].shape == scope["test"].shape


def test_every_file_the_code_map_names_exists():
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code reads")[1].split("\n## ")[0]
    named = set(re.findall(r"`([\w./]+(?:\.py|/))`", section))
    assert {"lab5.py", "harness/", "plots/", "data/", "run_folder.py", "flags.py"} <= named
    missing = [name for name in named if not any(ROOT.glob(f"**/{name.rstrip('/')}"))]
    assert missing == []


def broken_links(doc) -> list[str]:
    """The relative links in a markdown file whose file, or heading, is not there."""
    broken = []
    for match in LINK.finditer(doc.read_text()):
        target = match.group(1) or match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_resolves(doc):
    assert broken_links(doc) == []


def test_the_link_check_finds_broken_links(tmp_path):
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("## B's part, 2\n")
    links = "[ok](#a-title) [bad](#no-such) [gone](missing.md) [there](b.md#bs-part-2)"
    doc.write_text(f"# A title\n{links} [not](b.md#b) ![x](https://example.com/x.png)\n")
    assert broken_links(doc) == ["#no-such", "missing.md", "b.md#b"]


def test_every_verdict_is_one_short_cell():
    text = (ROOT / "RESULTS.md").read_text()
    table = text.split("## Verdicts")[1].split("\n\n")[1].splitlines()[2:]
    assert len(table) >= 6
    for row in table:
        for cell in (c.strip() for c in row.strip("|").split(" | ")):
            words = re.sub(r"\]\([^)]*\)", "]", cell).split()  # a link's target is no word
            assert len(words) <= 40, cell
            assert cell.count(". ") == 0, cell  # one sentence
