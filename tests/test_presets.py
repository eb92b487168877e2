"""--preset NAME: a recipe's flags before the ones given. A preset is exactly the recipe it names
(RESULTS.md), a run with it writes what the long command writes, a flag given after it wins,
and config.json says which preset set what."""

import csv
import json

import pytest
import torch

from errors import UserError
from harness import ensemble, presets
from harness.flags import VARIANTS, parse_config
from harness.main import main

SMALL = (
    "--train-size 640 --test-size 200 --batch-size 32 --frame-every 2 --eval-every 2 --no-compile"
).split()
# The fast start's windows made to fit four epochs: anneal over 2, cool down over the last 2
SHORT = "--epochs 4 --anneal-epochs 2 --cooldown-epochs 2".split()


def test_each_preset_is_the_recipe_it_names():
    """The values RESULTS.md measured: §8's fast start, §3's report loop, §4.1's toy rows."""
    fast = parse_config("wgan_gp", ["--preset", "fast"])
    assert fast["anneal"] == {"lr": 5e-4, "gp_weight": 0.3, "ema": 0.99}
    assert (fast["ema"], fast["cooldown"]) == (0.999, {"lr": 0.0})
    # over 200 epochs: annealed by epoch 41, cooled down over the last 100, as measured
    assert [ensemble.span(fast, k) for k in ("anneal_epochs", "cooldown_epochs")] == [40, 100]
    for variant in VARIANTS:
        report = parse_config(variant, ["--preset", "report"])
        loop = {"order": "simultaneous", "n_critic": 1, "batch_size": 64, "init": "torch"}
        assert {k: report[k] for k in loop} == loop
        assert (report["ema"], report["rms_alpha"]) == (0, 0.99)
        toy = parse_config(variant, ["--preset", "toy"])
        assert (toy["data"], toy["toy_size"], toy["eval_size"], toy["epochs"]) == (
            "ring8",
            100000,
            2500,
            150,
        )
        assert (toy["optimizer"], toy["lr"], toy["anneal"]) == ("adam", 1e-5, {"lr": 1e-3})
    assert parse_config("wgan", ["--preset", "report"])["clip"] == 0.1


def run_files(folder):
    """What a run computed: its rows less the timing, its parameters, its frames."""
    with open(folder / "metrics.csv") as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    files = ["generator.pt", "generator_raw.pt", "critic.pt"]
    files += sorted(f"frames/{p.name}" for p in (folder / "frames").iterdir())
    return rows, {name: (folder / name).read_bytes() for name in files}


def test_a_run_with_a_preset_writes_what_the_long_command_writes(tmp_path):
    long = presets.PRESETS["fast"]["wgan_gp"]
    assert main("wgan_gp", [*SMALL, *long, *SHORT, "--out", str(tmp_path / "long")]) == 0
    flags = [*SMALL, "--preset", "fast", *SHORT, "--out", str(tmp_path / "preset")]
    assert main("wgan_gp", flags) == 0
    assert run_files(tmp_path / "preset") == run_files(tmp_path / "long")
    without = [*SMALL, *SHORT, "--out", str(tmp_path / "none")]
    assert main("wgan_gp", without) == 0
    assert run_files(tmp_path / "none") != run_files(tmp_path / "long")  # the preset did matter


def test_flags_given_override_the_preset_and_config_json_says_what_it_set(tmp_path):
    out = tmp_path / "run"
    flags = [*SMALL, "--preset", "fast", "--ema", "0.99", *SHORT, "--epochs", "5"]
    assert main("wgan_gp", [*flags, "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["preset"], saved["ema"], saved["epochs"]) == ("fast", 0.99, 5)
    assert saved["set_by_preset"] == {
        "anneal": {"lr": 5e-4, "gp_weight": 0.3, "ema": 0.99},
        "cooldown": {"lr": 0.0},
    }
    assert {"anneal", "cooldown", "epochs"} <= set(saved["changed"])
    assert "preset" not in saved["changed"] and "ema" not in saved["changed"]  # the default


def test_a_resumed_run_keeps_its_preset_and_checks_one_given_again(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--train-size", "640", "--test-size", "200", "--frame-every", "0", "--no-compile"]
    assert main("gan", [*flags, "--preset", "report", "--epochs", "2", "--out", str(out)]) == 0
    assert main("gan", ["--resume", str(out), "--epochs", "3"]) == 0
    assert json.loads((out / "config.json").read_text())["preset"] == "report"
    assert main("gan", ["--resume", str(out), "--preset", "report", "--epochs", "4"]) == 0
    assert main("gan", ["--resume", str(out), "--preset", "toy", "--epochs", "5"]) == 2
    assert "would change the training of" in capsys.readouterr().err
    # a run that overrode one of its preset's flags is not resumed with the preset alone
    out = tmp_path / "overridden"
    flags += ["--preset", "report", "--batch-size", "32", "--epochs", "2", "--out", str(out)]
    assert main("gan", flags) == 0
    assert main("gan", ["--resume", str(out), "--preset", "report", "--epochs", "3"]) == 2
    assert capsys.readouterr().err.startswith("error: --batch-size 64 would change the training")


def test_a_preset_the_variant_lacks_is_one_line(capsys, tmp_path):
    assert main("gan", ["--preset", "fast", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == "error: argument --preset: invalid choice: 'fast' (choose from 'report', 'toy')\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_help_lists_each_preset_the_variant_has_with_its_flags(variant, capsys):
    with pytest.raises(SystemExit):
        parse_config(variant, ["--help"])
    listing = capsys.readouterr().out.split("\npresets (--preset NAME")[1]
    listed = [
        line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line[2] != " "
    ]
    assert listed == [name for name, flags in presets.PRESETS.items() if variant in flags]
    text = " ".join(listing.split())
    for name in listed:
        assert f"{name} {' '.join(presets.PRESETS[name][variant])}" in text


def test_a_folder_written_before_the_redesign_resumes_to_what_an_unbroken_run_writes(tmp_path):
    """A run folder of the version before: its config.json has neither "preset" nor
    "set_by_preset", its metrics.csv no weighted_penalty column, and its checkpoint keeps the
    state's hyper-parameters in another order. It goes on in its own columns."""
    old = tmp_path / "old"
    assert main("wgan_gp", [*SMALL, "--epochs", "2", "--out", str(old)]) == 0
    saved = json.loads((old / "config.json").read_text())
    for key in ("preset", "set_by_preset"):
        del saved[key]
    (old / "config.json").write_text(json.dumps(saved))
    write_rows(old / "metrics.csv", without_weighted_penalty(read_rows(old / "metrics.csv")))
    checkpoint = torch.load(old / "checkpoint.pt", weights_only=True)
    hyper = checkpoint["state"]["hyper"]
    checkpoint["state"]["hyper"] = {k: hyper[k] for k in ("ema", "gp_weight", "ema_first")}
    torch.save(checkpoint, old / "checkpoint.pt")
    assert main("wgan_gp", ["--resume", str(old), "--epochs", "4"]) == 0
    whole = tmp_path / "whole"
    assert main("wgan_gp", [*SMALL, "--epochs", "4", "--out", str(whole)]) == 0
    rows, files = run_files(old)
    whole_rows, whole_files = run_files(whole)
    assert files == whole_files and rows == without_weighted_penalty(whole_rows)
    assert json.loads((old / "config.json").read_text())["preset"] is None


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def without_weighted_penalty(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "weighted_penalty"} for row in rows]


def test_a_preset_given_again_on_resume_keeps_the_runs_own_epochs(tmp_path, monkeypatch):
    """What a preset sets that --resume may change (here --epochs) stays the run's own: only a
    flag typed on the command line changes it."""
    monkeypatch.setitem(presets.PRESETS["report"], "gan", [*presets.REPORT_LOOP, "--epochs", "150"])
    out = tmp_path / "run"
    flags = "--train-size 640 --test-size 200 --frame-every 0 --no-compile --preset report"
    assert main("gan", [*flags.split(), "--epochs", "2", "--out", str(out)]) == 0
    again = ["--resume", str(out), "--preset", "report"]
    assert parse_config("gan", again)["epochs"] == 2
    assert parse_config("gan", [*again, "--epochs", "3"])["epochs"] == 3


@pytest.mark.parametrize(
    "epochs,windows",
    [(40, [40, 20]), (80, [40, 40]), (10, [40, 5]), (3, [40, 2]), (1000, [40, 500])],
)
def test_the_fast_start_anneals_over_40_epochs_and_cools_down_over_the_last_half(epochs, windows):
    """Any length of run: what makes the fit fast is in epochs, the cooldown a share of the run
    (in a run of under 80 epochs the two overlap)."""
    cfg = parse_config("wgan_gp", ["--preset", "fast", "--epochs", str(epochs)])
    assert [ensemble.span(cfg, k) for k in ("anneal_epochs", "cooldown_epochs")] == windows
    lrs = [ensemble.scheduled(cfg, epoch)["lr"] for epoch in range(1, epochs + 1)]
    assert lrs[0] == 5e-4 and all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 5e-4


@pytest.mark.parametrize(
    "flags",
    [
        "--cooldown lr=0 --epochs 40",
        "--anneal lr=5e-4 --cooldown lr=0 --cooldown-epochs 50 --epochs 30",
    ],
)
def test_a_cooldown_longer_than_the_run_is_refused_with_one_that_fits(flags, capsys):
    assert main("wgan_gp", flags.split()) == 2
    message = capsys.readouterr().err
    suggested = message.split(": give ")[1].split(" or less")[0].split()
    assert parse_config("wgan_gp", [*flags.split(), *suggested])  # it fits


def test_a_run_annealed_over_a_fraction_of_it_is_not_extended(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [*SMALL, "--anneal", "lr=5e-4", "--anneal-epochs", "0.5", "--epochs", "2"]
    assert main("wgan_gp", [*flags, "--out", str(out)]) == 0
    assert main("wgan_gp", ["--resume", str(out), "--epochs", "4"]) == 2
    assert "anneals over its first 1 of 2 epochs (--anneal-epochs 0.5)" in capsys.readouterr().err


def test_the_fast_start_without_its_cooldown():
    cfg = parse_config("wgan_gp", ["--preset", "fast", "--cooldown-epochs", "0"])
    lrs = [ensemble.scheduled(cfg, epoch)["lr"] for epoch in (1, 41, 100, 200)]
    assert lrs == pytest.approx([5e-4, 1e-4, 1e-4, 1e-4])


def test_a_window_given_again_on_resume_agrees_in_epochs(tmp_path):
    """A run saved with --cooldown-epochs 2 of 4 resumes with the window given again as 0.5 of
    the run (the same 2 epochs), not as 0.75 (3): so a fast run of the version before, saved with
    100 of 200, resumes with --preset fast's 0.5."""
    out = tmp_path / "run"
    flags = [*SMALL, *presets.FAST_START, "--cooldown-epochs", "2", "--epochs", "4"]
    assert main("wgan_gp", [*flags, "--anneal-epochs", "1", "--out", str(out)]) == 0
    again = ["--resume", str(out), "--anneal-epochs", "1", "--epochs", "4"]
    assert parse_config("wgan_gp", [*again, "--cooldown-epochs", "0.5"])  # 2 of 4
    with pytest.raises(UserError, match="--cooldown-epochs 0.75 would change the training"):
        parse_config("wgan_gp", [*again, "--cooldown-epochs", "0.75"])  # 3 of 4
