"""runs/index.html: every run under a folder on one static page.

One card per run: its GIF and curves, its final distance against the noise floor, when it
fitted, its precision and recall (and mode metrics on a toy mixture), how it ended, and the
flags it changed from its variant's defaults. An ensemble's card shows the means ± s.e. over
its members, whose own cards are folded beneath. Plain HTML and CSS with relative links: the
page opens from the file system, and the folder can be zipped and sent. Everything taken from
a file name or a config is escaped.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from harness.run_folder import (
    atomic_write,
    config_of,
    curves_path,
    find_runs,
    gif_path,
    read_summary,
    read_sweep_mark,
)
from plots.compare import MATCHED

# (summary key, label, format): a run's final row holds the key, an ensemble's key_mean/key_se
NUMBERS = (
    ("w1", "W1", ".4f"),
    ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
    ("modes", "modes", ".1f"),
    ("hq", "high quality", ".3f"),
    ("reverse_kl", "reverse KL", ".3f"),
)
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }
.card .card { margin: 0.6em 0; }
h2 { font-size: 1.15em; margin: 0 0 0.3em; } h2 small { color: #666; font-weight: normal; }
.pictures { display: flex; flex-wrap: wrap; gap: 0.8em; align-items: flex-start; }
.pictures img { max-width: 100%; height: auto; }
.warning { color: #c92a2a; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.1em 0.8em 0.1em 0; }
th { text-align: left; font-weight: 600; } .status-completed { color: #2b8a3e; }
.status-interrupted, .status-running, .status-not-started, .status-pruned { color: #e67700; }
.status-diverged, .status-unwritable { color: #c92a2a; }
code { background: #f3f3f3; padding: 0 0.3em; border-radius: 3px; }
h1 small { color: #666; font-weight: normal; font-size: 0.6em; }
.comparison { border: 2px solid #2b8a3e; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }
.comparison img { max-width: 100%; height: auto; }
.legend dt { font-weight: 600; } .legend dd { margin: 0 0 0.4em 1.5em; }
"""


def relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def link(path: Path, root: Path) -> str:
    """A link to `path` that works from `root`, wherever root is moved to."""
    return escape(quote(relative(path, root)))


def number(key: str, value, text: str) -> str:
    """A number as shown, with its exact value beside it for anyone checking the page."""
    return (
        f'<td class="number" data-key="{escape(key)}" data-value="{escape(repr(value))}">'
        f"{escape(text)}</td>"
    )


def final_numbers(summary: dict) -> list[str]:
    """The final row's numbers, each a table row: a run's value, or an ensemble's mean ± s.e.;
    beside W1, what a perfect generator and a generator of no shape score."""
    final = summary.get("final") or {}
    rows = []
    for key, label, fmt in NUMBERS:
        value = final.get(key, final.get(f"{key}_mean"))
        se = final.get(f"{key}_se")
        if value is None:
            continue
        text = format(value, fmt) + (f" ± {se:{fmt}}" if se is not None else "")
        cells = number(key, value, text) + ratio(summary, key, value)
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
        if key == "w1":
            rows += yardsticks(summary)
    return rows


def ratio(summary: dict, key: str, value: float) -> str:
    """A W1's cell beside it: its multiple of the noise floor."""
    floor = (summary.get("noise_floor") or {}).get("w1")
    if not key.endswith("w1") or not floor:
        return ""
    return number(f"{key}_over_floor", value / floor, f"{value / floor:.2f}× the noise floor")


def yardsticks(summary: dict) -> list[str]:
    """The noise floor (a perfect generator's W1) and a Gaussian blob's W1 (no shape at all)."""
    floor = summary.get("noise_floor") or {}
    blob = summary.get("gaussian_w1")
    rows = []
    if floor.get("w1"):
        text = f"{floor['w1']:.4f} ± {floor.get('w1_sd', 0):.4f}"
        rows.append(
            f"<tr><th>noise floor</th>{number('floor_w1', floor['w1'], text)}"
            "<td colspan=2>W1 of training points: a perfect generator's</td></tr>"
        )
    if blob:
        rows.append(
            f"<tr><th>a Gaussian blob</th>{number('gaussian_w1', blob, f'{blob:.4f}')}"
            f"{ratio(summary, 'gaussian_w1', blob)}<td>the data's mean and covariance, no shape: "
            "a fit must beat it</td></tr>"
        )
    return rows


def fit_text(fits) -> str:
    """When W1 came to stay within the fit factor × the floor: an epoch, or a member count."""
    fits = fits if isinstance(fits, list) else [fits]
    fitted = [f for f in fits if f is not None]
    if not fitted:
        return "not fitted"
    if len(fits) == 1:
        return f"from epoch {fitted[0]}"
    return f"{len(fitted)} of {len(fits)} members, from epochs {min(fitted)}–{max(fitted)}"


def status_text(summary: dict, sweep: dict) -> str:
    if sweep.get("state") == "pruned":  # stopped by a sweep's pruner (experiments/sweep.py)
        return f"pruned at epoch {sweep['epoch']} (study {sweep['study']}, trial {sweep['trial']})"
    if not summary:
        return "not started"
    text = f"{summary['status']} at epoch {summary['epochs_done']}"
    diverged = summary.get("diverged_members")
    return text + (f" ({', '.join(diverged)} diverged)" if diverged else "")


def flag_text(name: str, value) -> str:
    """A changed flag as it would be typed (lists and dicts as JSON)."""
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    return f"{flag} {value if isinstance(value, (str, int, float)) else json.dumps(value)}"


def pictures(run: Path, root: Path) -> str:
    images = [
        (gif_path(run), "training, frame by frame"),
        (curves_path(run), "losses and distances per epoch"),
    ]
    # each at its own size (a frame's and the curves' text stay legible), a click opens it alone
    return "".join(
        f'<a href="{link(path, root)}"><img src="{link(path, root)}" alt="{escape(alt)}"></a>'
        for path, alt in images
        if path.exists()
    )


def fit_rows(summary: dict) -> list[str]:
    """When the run fitted, and what its summary warns of its numbers (a test set too small
    to tell a fit from a miss, say)."""
    if not summary:
        return []
    fit = fit_text(summary.get("epochs_to_fit"))
    if summary.get("warnings") and fit != "not fitted":
        fit += ", which a blob would be too"
    rows = [f'<tr><th>fitted</th><td class="fit">{escape(fit)}</td></tr>']
    for warning in summary.get("warnings") or []:
        rows.append(f'<tr><th>warning</th><td class="warning">{escape(warning)}</td></tr>')
    return rows


def training_rows(config: dict, summary: dict) -> list[str]:
    """How much training the run had, in generator updates (equal epochs are not equal
    training: the variants' batch sizes differ), and its variant's own defaults."""
    rows = []
    steps = config.get("steps_per_epoch")
    if steps and summary:
        done = summary["epochs_done"]
        critic = f", {config['n_critic']} critic updates each" if config["n_critic"] > 1 else ""
        text = (
            f"{done} epochs × {steps} = {done * steps:,} generator updates of "
            f"{config['batch_size']} points{critic}"
        )
        rows.append(f'<tr><th>trained</th><td class="trained">{escape(text)}</td></tr>')
    own = config.get("own_defaults")
    if own:
        flags = " ".join(f"<code>{escape(flag_text(k, v))}</code>" for k, v in own.items())
        title = escape(config.get("title", config["variant"]))
        rows.append(f"<tr><th>{title}'s own defaults</th><td>{flags}</td></tr>")
    return rows


def card(run: Path, root: Path, members: list[Path]) -> str:
    """One run's card; an ensemble's holds its members' cards, folded."""
    config = config_of(run)
    summary = read_summary(run)
    sweep = read_sweep_mark(run)
    status = sweep.get("state") or summary.get("status", "not-started")
    # the preset first, then every flag that differs from the defaults (the preset's included)
    flags = {"preset": config["preset"]} if config.get("preset") else {}
    flags.update(config.get("changed") or {})
    changed = " ".join(f"<code>{escape(flag_text(k, v))}</code>" for k, v in flags.items())
    rows = [
        f'<tr><th>status</th><td class="status status-{escape(status)}">'
        f"{escape(status_text(summary, sweep))}</td></tr>",
        *final_numbers(summary),
        *fit_rows(summary),
        *training_rows(config, summary),
        f'<tr><th>changed flags</th><td class="flags">{changed or "none"}</td></tr>',
    ]
    folded = ""
    if members:
        inner = "".join(card(m, root, []) for m in members)
        folded = f"<details><summary>{len(members)} members</summary>{inner}</details>"
    title = config.get("title", config.get("variant", "?"))
    return (
        f'<section class="card" data-run="{link(run, root)}"><h2>{escape(relative(run, root))}'
        f' <small>{escape(title)} · <span title="{escape(str(config.get("data")))}">'
        f"{escape(Path(str(config.get('data'))).name)}</span>"
        f'</small></h2><div class="pictures">{pictures(run, root)}</div>'
        f"<table>{''.join(rows)}</table>{folded}</section>"
    )


def verdict_html(text: str) -> str:
    """A comparison's verdict.md as HTML: its heading, its paragraphs and its lists."""
    parts = []
    listing = False
    for line in text.splitlines():
        if line.startswith("- ") != listing:
            listing = not listing
            parts.append("<ul>" if listing else "</ul>")
        if line.startswith("# "):
            parts.append(f"<h3>{escape(line[2:])}</h3>")
        elif listing:
            parts.append(f"<li>{escape(line[2:])}</li>")
        elif line.strip():
            parts.append(f"<p>{escape(line)}</p>")
    return "".join(parts) + ("</ul>" if listing else "")


def comparisons(root: Path) -> str:
    """Each matched comparison of the variants under root (experiments/compare_variants.py):
    its GIF, its figure and its verdict; then runs/compare.gif, with what it is."""
    sections = []
    for folder in sorted(p.parent for p in root.glob(f"*/{MATCHED['verdict']}")):
        images = [folder / MATCHED["gif"], folder / MATCHED["figure"]]
        shown = "".join(
            f'<a href="{link(i, root)}"><img src="{link(i, root)}" alt="{escape(i.name)}"></a>'
            for i in images
            if i.exists()
        )
        verdict = verdict_html((folder / MATCHED["verdict"]).read_text(encoding="utf-8"))
        sections.append(
            f'<section class="comparison" data-folder="{link(folder, root)}"><h2>Which variant '
            f"fits best? <small>{escape(relative(folder, root))}</small></h2>"
            f'<div class="pictures">{shown}</div>{verdict}</section>'
        )
    if (root / "compare.gif").exists():
        sections.append(
            '<section class="comparison"><h2>The latest run of each variant <small>compare.gif'
            "</small></h2><p>At the same epochs, which are not the same training: the cards say "
            "how many generator updates each had (python experiments/compare_variants.py "
            f'matches them).</p><img src="{link(root / "compare.gif", root)}" '
            'alt="the latest completed run of each variant, side by side"></section>'
        )
    return "".join(sections)


LEGEND = (
    "<details class=legend><summary>What the numbers mean</summary><dl>"
    "<dt>W1</dt><dd>how far the generated points are from the held-out test points: the mean "
    "distance of the best one-to-one matching between them (lower is better)</dd>"
    "<dt>noise floor</dt><dd>the W1 of training points against the test points: what a "
    "perfect generator scores, so 1× the floor is as good as it gets</dd>"
    "<dt>a Gaussian blob</dt><dd>the W1 of a Gaussian with the data's mean and covariance: a "
    "generator that learnt no shape; a fit must beat it</dd>"
    "<dt>fitted</dt><dd>from the epoch on which W1 stays within the fit factor (2×) of the "
    "floor</dd><dt>precision, recall</dt><dd>the share of generated points that lie near test "
    "points, and of test points that lie near generated ones (near: within a point's distance "
    "to its 3rd nearest neighbour)</dd><dt>energy</dt><dd>another distance between the two "
    "sets, cheap enough to take every epoch</dd></dl></details>"
)


def write_index(root: Path) -> Path:
    """root/index.html, written whole (a reader never sees half a page)."""
    runs = find_runs(root)
    cards = "".join(card(run, root, members) for run, members in runs)
    where = f"{len(runs)} {'run' if len(runs) == 1 else 'runs'} in {root.resolve().name}/"
    page = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>lab5: your runs</title>"
        f"<style>{STYLE}</style><h1>lab5: GAN, WGAN and WGAN-GP runs <small>{escape(where)}"
        f"</small></h1>{LEGEND}{comparisons(root)}"
        f"{cards or '<p>No runs yet: python variants/wgan_gp.py</p>'}</html>\n"
    )
    atomic_write(root / "index.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return root / "index.html"
