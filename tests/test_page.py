"""runs/index.html against the run folders it shows: every picture, number and status."""

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from harness.main import main
from plots import make_gifs
from plots.compare import TITLE_HEIGHT, compare_frames, latest_runs, title_line, w1_ratios
from plots.page import NUMBERS, write_index
from tests.run_folders import FLOOR, HOSTILE, build_runs, final, run_folder


class Cards(HTMLParser):
    """Each card's (section data-run) pictures, numbers, status and parent card."""

    def __init__(self):
        super().__init__()
        self.cards = {}
        self.stack = []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":  # a run's card, or (None) a comparison's section
            name = unquote(attrs["data-run"]) if "data-run" in attrs else None
            parents = [card for card in self.stack if card]
            if name:
                self.cards[name] = {
                    "parent": parents[-1] if parents else None,
                    "images": [],
                    "numbers": {},
                    "text": {},
                }
            self.stack.append(name)
        elif not (self.stack and self.stack[-1]):
            return
        elif tag == "img":
            self.cards[self.stack[-1]]["images"].append(attrs["src"])
        elif tag == "td":
            self.cell = attrs.get("data-key") or attrs.get("class", "").split(" ")[0]
            self.cards[self.stack[-1]]["numbers"].setdefault(self.cell, attrs.get("data-value"))

    def handle_endtag(self, tag):
        if tag == "section":
            self.stack.pop()
        elif tag == "td":
            self.cell = None

    def handle_data(self, data):
        if self.cell and self.stack and self.stack[-1]:
            text = self.cards[self.stack[-1]]["text"]
            text[self.cell] = text.get(self.cell, "") + data


def read_page(root: Path) -> tuple[str, dict]:
    page = (root / "index.html").read_text()
    parser = Cards()
    parser.feed(page)
    return page, parser.cards


@pytest.fixture
def runs(tmp_path):
    return tmp_path, build_runs(tmp_path)


def test_every_run_has_a_card_and_every_picture_exists(runs):
    root, summaries = runs
    write_index(root)
    _, cards = read_page(root)
    assert set(cards) == set(summaries)
    for name, card in cards.items():
        folder = root / name
        expected = [
            p for p in (folder.with_name(folder.name + ".gif"), folder / "curves.png") if p.exists()
        ]
        assert [root / unquote(src) for src in card["images"]] == expected


def test_the_numbers_are_the_summaries(runs):
    root, summaries = runs
    write_index(root)
    _, cards = read_page(root)
    for name, summary in summaries.items():
        card = cards[name]
        last = summary["final"]
        for key, _, fmt in NUMBERS:
            value = last.get(key, last.get(f"{key}_mean"))
            assert card["numbers"].get(key) == (None if value is None else repr(value)), key
            if value is not None:
                se = last.get(f"{key}_se")
                assert card["text"][key] == format(value, fmt) + (
                    f" ± {se:{fmt}}" if se is not None else ""
                )
        ratio = last.get("w1", last.get("w1_mean")) / summary["noise_floor"]["w1"]
        assert float(card["numbers"]["w1_over_floor"]) == ratio


@pytest.mark.parametrize(
    "name,status",
    [
        ("wgan_gp", "completed at epoch 4"),
        ("gan", "interrupted at epoch 0"),
        ("wgan", "diverged at epoch 2 (seed0 diverged)"),
        ("pruned", "pruned at epoch 2 (study s, trial 5)"),
    ],
)
def test_the_status_says_how_and_when_the_run_ended(runs, name, status):
    write_index(runs[0])
    assert read_page(runs[0])[1][name]["text"]["status"] == status


def test_fit_and_changed_flags(runs):
    write_index(runs[0])
    cards = read_page(runs[0])[1]
    assert cards["wgan_gp"]["text"]["fit"] == "from epoch 3"
    assert cards["gan"]["text"]["fit"] == "not fitted"
    assert cards["ens"]["text"]["fit"] == "1 of 2 members, from epochs 2–2"
    assert cards["wgan_gp"]["text"]["flags"] == "--preset fast --lr 0.0005"  # the preset first
    assert cards["gan"]["text"]["flags"] == "none"


def test_an_ensembles_members_are_folded_under_it(runs):
    write_index(runs[0])
    page, cards = read_page(runs[0])
    assert [n for n, c in cards.items() if c["parent"] == "ens"] == ["ens/seed0", "ens/seed1"]
    assert all(c["parent"] is None for n, c in cards.items() if not n.startswith("ens/"))
    assert "<details><summary>2 members</summary>" in page


def test_names_and_configs_are_escaped(runs):
    write_index(runs[0])
    page, _ = read_page(runs[0])
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "x&lt;b&gt;&amp;&quot;y" in page


def test_make_gifs_writes_the_page_and_the_comparison(runs, capsys):
    root, _ = runs
    for name in ("wgan_gp.gif", "index.html"):
        (root / name).unlink(missing_ok=True)
    assert make_gifs.main(["--root", str(root)]) == 0
    assert (root / "index.html").exists() and (root / "compare.gif").exists()
    assert "index.html" in capsys.readouterr().out


def test_the_folder_can_be_moved(runs, tmp_path_factory):
    root, _ = runs
    write_index(root)
    moved = shutil.copytree(root, tmp_path_factory.mktemp("elsewhere") / "runs")
    for card in read_page(moved)[1].values():
        assert all((moved / unquote(src)).exists() for src in card["images"])
    assert str(root) not in (moved / "index.html").read_text()


def test_a_run_s_config_lists_the_flags_it_changed(tmp_path):
    """What the page shows as changed flags: exactly those given, but where the run went."""
    given = {
        "--train-size": "96",
        "--test-size": "32",
        "--batch-size": "32",
        "--epochs": "1",
        "--frame-every": "0",
        "--lr": "0.0005",
        "--order": "d-first",
    }
    argv = [x for pair in given.items() for x in pair]
    assert main("wgan_gp", [*argv, "--no-compile", "--out", str(tmp_path / "r")]) == 0
    changed = json.loads((tmp_path / "r" / "config.json").read_text())["changed"]
    assert set(changed) == {k[2:].replace("-", "_") for k in given} | {"no_compile"}
    assert changed["lr"] == 0.0005 and changed["order"] == "d-first"


def test_the_comparison_takes_each_variant_s_latest_completed_run_with_frames(runs):
    """A newer run with no frames (an ensemble's own folder, or --frame-every 0) is passed over,
    and so is one that did not complete (gan was interrupted, wgan diverged); each picture is
    the runs' frames side by side under one title line."""
    root, _ = runs
    newer = root / "wgan_gp2"
    (newer / "frames").mkdir(parents=True)
    (newer / "config.json").write_text(json.dumps({"variant": "wgan_gp"}))
    (newer / "summary.json").write_text('{"status": "completed"}')
    stopped = root / "gan_stopped"  # GAN's newest run, interrupted
    shutil.copytree(root / HOSTILE, stopped)
    (stopped / "summary.json").write_text('{"status": "interrupted"}')
    latest = latest_runs(root)
    assert latest == [root / HOSTILE, root / "wgan_gp"]  # GAN's last completed run, WGAN-GP's
    pair = [root / "wgan_gp", root / "wgan"]
    frames = compare_frames(pair)
    assert len(frames) == 2  # epochs 0 and 2, the ones both drew
    assert frames[0].size == (2 * 64, 40 + TITLE_HEIGHT)
    ratios = [w1_ratios(run) for run in pair]
    assert ratios[0][2] == pytest.approx((0.5 / 3) / FLOOR["w1"])
    assert title_line(2, pair, ratios) == (
        f"epoch 2   ·   W1 / noise floor:   wgan_gp {ratios[0][2]:.2f}×   wgan {ratios[1][2]:.2f}×"
    )


def test_compare_names_its_runs_and_refuses_a_missing_one(runs, capsys):
    root, _ = runs
    assert (
        make_gifs.main(
            [
                "--root",
                str(root),
                "--compare",
                str(root / "gan"),
                str(root / "toy"),
                str(root / "wgan_gp"),
            ]
        )
        == 0
    )
    gif = Image.open(root / "compare.gif")
    assert gif.n_frames == 1 and gif.size == (3 * 64, 40 + TITLE_HEIGHT)  # epoch 0 only
    assert make_gifs.main(["--root", str(root), "--compare", str(root / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: no run folder at")


def test_a_name_outside_ascii_links_and_shows(tmp_path):
    run_folder(
        tmp_path / "été #1?",
        "gan",
        {"status": "completed", "epochs_done": 2, "final": final(0.05), "epochs_to_fit": 2},
        [0, 2],
    )
    write_index(tmp_path)
    page, cards = read_page(tmp_path)
    assert list(cards) == ["été #1?"] and "été #1?" in page
    assert all((tmp_path / unquote(src)).exists() for src in cards["été #1?"]["images"])


def test_a_card_says_its_training_in_generator_updates_and_its_variant_s_own_defaults(tmp_path):
    """Equal epochs are not equal training: a card says how many generator updates its run had
    and the defaults its variant does not share; the page says what its numbers mean."""
    out = tmp_path / "runs" / "run"
    flags = "--train-size 640 --test-size 200 --epochs 2 --frame-every 0 --no-compile --out"
    assert main("wgan_gp", [*flags.split(), str(out)]) == 0
    page, cards = read_page(write_index(tmp_path / "runs").parent)
    assert cards["run"]["text"]["trained"] == "2 epochs × 40 = 80 generator updates of 16 points"
    own = "<code>--batch-size 16</code> <code>--order g-first</code> <code>--init kaiming</code>"
    assert f"<th>WGAN-GP's own defaults</th><td>{own}" in page
    assert "<h1>lab5: GAN, WGAN and WGAN-GP runs <small>1 run in runs/</small></h1>" in page
    assert "<summary>What the numbers mean</summary>" in page


def test_the_page_shows_a_comparison_and_compare_gif_with_what_they_are(runs):
    root, _ = runs
    folder = root / "compare_variants"
    folder.mkdir()
    for name in ("compare.gif", "fit.png"):
        Image.new("RGB", (8, 8)).save(folder / name)
    (folder / "verdict.md").write_text("# Which? <b>\n\nintro\n\n- GAN first\n- WGAN <i>\n")
    shutil.copy(folder / "compare.gif", root / "compare.gif")
    page, cards = read_page(write_index(root).parent)
    assert (
        '<img src="compare_variants/compare.gif"' in page
        and 'src="compare_variants/fit.png"' in page
    )
    assert (
        "<h3>Which? &lt;b&gt;</h3><p>intro</p><ul><li>GAN first</li><li>WGAN &lt;i&gt;</li></ul>"
        in page
    )
    assert '<img src="compare.gif"' in page and "which are not the same training" in page
    assert all(card["parent"] is None or card["parent"] in cards for card in cards.values())
