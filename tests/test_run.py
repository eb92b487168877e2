"""Whole runs, short and eager: the run folder, loading the saved networks into plain
nn.Sequential, determinism, and what an interrupted or diverged run keeps."""

import csv
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from html import escape

import numpy as np
import pytest
import torch
from torch import nn

import harness.main
import lab5
from harness import endings, evaluation
from harness.flags import VARIANTS, parse_config
from harness.main import main
from harness.run_folder import lock_folder, unlocked_after
from plots.page import write_index
from tests import ROOT
from tests.conftest import posix_only
from tests.test_metrics import two_noisy_circles

SMALL = (
    "--train-size 640 --test-size 200 --batch-size 32 --epochs 3 --frame-every 2 --no-compile"
).split()


def train(tmp_path, variant="wgan_gp", *flags, name="run"):
    out = tmp_path / name
    return main(variant, [*SMALL, "--out", str(out), *flags]), out


def rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def untimed(out):
    """A run's metrics rows without their timing."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows(out)]


def report_sequential(sizes, sigmoid=False):
    """The report's nn.Sequential, written out here rather than taken from lab5."""
    layers = [
        nn.Linear(sizes[0], 256),
        nn.ReLU(),
        nn.Linear(256, 64),
        nn.ReLU(),
        nn.Linear(64, sizes[1]),
    ]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_folder_holds_everything(tmp_path, variant):
    code, out = train(tmp_path, variant, "--noise-dim", "5")
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["variant"] == variant and saved["noise_dim"] == 5 and saved["lr"] == 1e-4
    assert set(parse_config(variant, [])) <= set(saved)  # every flag is recorded
    table = rows(out)
    assert [r["epoch"] for r in table] == ["0", "1", "2", "3"]
    assert list(table[0]) == evaluation.metric_columns(variant)
    assert all(math.isfinite(float(r["g_loss"])) and float(r["energy"]) > 0 for r in table[1:])
    assert table[2]["w1"] and table[3]["w1"] and not table[1]["w1"]  # at frames and the last epoch
    assert sorted(p.name for p in (out / "frames").iterdir()) == [
        f"epoch_{epoch:04d}.{kind}" for epoch in (0, 2, 3) for kind in ("npz", "png")
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 3
    assert summary["final"]["w1"] == pytest.approx(float(table[3]["w1"]))

    g_params = torch.load(out / "generator.pt")
    d_params = torch.load(out / "critic.pt")
    G = report_sequential((5, 2))
    D = report_sequential((2, 1), sigmoid=variant == "gan")
    G.load_state_dict(g_params)
    D.load_state_dict(d_params)
    z = torch.randn(10, 5)
    x = torch.rand(10, 2)
    with torch.no_grad():
        torch.testing.assert_close(G(z), lab5.generator(g_params, z))
        score = lab5.critic(d_params, x)
        torch.testing.assert_close(
            D(x).squeeze(1), torch.sigmoid(score) if variant == "gan" else score
        )


def test_other_widths_train_and_load_into_plain_sequentials(tmp_path):
    """--hidden and --critic-hidden: the saved dicts load into nn.Sequential written out here."""
    code, out = train(tmp_path, "wgan", "--hidden", "32,16,8", "--critic-hidden", "24")
    assert code == 0
    G = nn.Sequential(
        nn.Linear(8, 32),
        nn.ReLU(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Linear(8, 2),
    )
    D = nn.Sequential(nn.Linear(2, 24), nn.ReLU(), nn.Linear(24, 1))
    G.load_state_dict(torch.load(out / "generator.pt"))
    D.load_state_dict(torch.load(out / "critic.pt"))
    z = torch.randn(10, 8)
    x = torch.rand(10, 2)
    with torch.no_grad():
        torch.testing.assert_close(G(z), lab5.generator(dict(G.state_dict()), z))
        torch.testing.assert_close(D(x).squeeze(1), lab5.critic(dict(D.state_dict()), x))


def test_the_toy_size_and_the_mode_metrics_sample(tmp_path):
    """--toy-size points are drawn before the split; --eval-size generated points (from the
    run's fixed evaluation noise) are what the mode metrics count, the distances keep the test
    set's size."""
    code, out = train(
        tmp_path,
        "gan",
        "--data",
        "ring8",
        "--toy-size",
        "3000",
        "--train-size",
        "0.8",
        "--test-size",
        "0",
        "--eval-size",
        "2500",
        "--epochs",
        "1",
    )
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train_points"] + saved["test_points"] == 3000
    z = torch.randn(2500, 8, generator=lab5.make_rng(0, "eval"))
    with torch.no_grad():
        fake = lab5.generator(torch.load(out / "generator.pt"), z).double().numpy()
    modes = harness.main.load_data(parse_config("gan", ["--data", "ring8"]))[1]
    expected = evaluation.mode_metrics(fake, **modes)
    last = rows(out)[-1]
    assert int(last["modes"]) == expected["modes"] and float(last["hq"]) == expected["hq"]
    assert float(last["reverse_kl"]) == pytest.approx(expected["reverse_kl"], rel=1e-12)
    test = harness.main.split_data(
        parse_config("gan", ["--data", "ring8", "--toy-size", "3000", "--train-size", "0.8"]),
        harness.main.load_data(parse_config("gan", ["--data", "ring8", "--toy-size", "3000"]))[0],
        "ring8",
    )[1]
    assert float(last["w1"]) == pytest.approx(evaluation.wasserstein1(fake[: len(test)], test))


def test_a_toy_mixture_run_scores_the_modes(tmp_path):
    code, out = train(tmp_path, "gan", "--data", "grid25", "--epochs", "2")
    assert code == 0
    table = rows(out)
    assert list(table[0]) == evaluation.metric_columns("gan", modes=True)
    assert all(0 <= int(r["modes"]) <= 25 and 0 <= float(r["hq"]) <= 1 for r in table)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise_floor"]["modes"] == 25 and summary["noise_floor"]["hq"] > 0.95
    assert json.loads((out / "config.json").read_text())["data"] == "grid25"


def test_epochs_to_fit_is_in_the_summary(tmp_path):
    # so loose that epoch 0 already fits
    code, out = train(tmp_path, "wgan", "--fit-factor", "1000")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_to_fit"] == 0
    code, out = train(tmp_path, "wgan", "--fit-factor", "1", name="strict")
    # 3 epochs never fit
    assert json.loads((out / "summary.json").read_text())["epochs_to_fit"] is None


def test_same_seed_same_numbers(tmp_path):
    runs = [
        train(tmp_path, "wgan_gp", "--seed", seed, name=name)[1]
        for seed, name in (("3", "a"), ("3", "b"), ("4", "c"))
    ]
    assert untimed(runs[0]) == untimed(runs[1])
    assert untimed(runs[0]) != untimed(runs[2])
    for name in ("generator.pt", "critic.pt"):
        a = torch.load(runs[0] / name)
        b = torch.load(runs[1] / name)
        assert all(torch.equal(a[k], b[k]) for k in a)


def stop_in_epoch(monkeypatch, epoch, how):
    """Make lab5's epoch loop fail in `epoch`, the way a user's Ctrl-C, a blow-up or a bug would."""
    real_stepwise = lab5.stepwise
    calls = []

    def stepwise(step):
        real_epoch = real_stepwise(step)

        def one_epoch(*args):
            calls.append(1)
            if len(calls) == epoch and how == "interrupt":
                raise KeyboardInterrupt
            if len(calls) == epoch and how == "crash":
                raise RuntimeError("a bug")
            state, losses = real_epoch(*args)
            if len(calls) == epoch and how == "nan-params":
                g = {**state["g"], "0.weight": state["g"]["0.weight"] * math.nan}
                state = {**state, "g": g}
            if len(calls) == epoch and how == "inf-loss":  # one step's, of every member
                losses = {
                    **losses,
                    "d_loss": losses["d_loss"].index_fill(0, torch.tensor(3), math.inf),
                }
            return state, losses

        return one_epoch

    monkeypatch.setattr(lab5, "stepwise", stepwise)


@pytest.mark.parametrize(
    "how,code,status",
    [
        ("interrupt", 130, "interrupted"),
        ("nan-params", 3, "diverged"),
        ("inf-loss", 3, "diverged"),
    ],
)
def test_a_stopped_run_keeps_its_last_good_epoch(tmp_path, monkeypatch, how, code, status, capsys):
    _, reference = train(tmp_path, "wgan", "--epochs", "2", name="two-epochs")
    stop_in_epoch(monkeypatch, 3, how)
    assert train(tmp_path, "wgan", "--epochs", "5", name="stopped")[0] == code
    out = tmp_path / "stopped"
    assert status in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and summary["epochs_done"] == 2
    assert [r["epoch"] for r in rows(out)] == ["0", "1", "2"]
    assert (out / "frames" / "epoch_0002.png").exists()
    for name in ("generator.pt", "critic.pt"):  # the parameters after epoch 2, finite
        kept = torch.load(out / name)
        expected = torch.load(reference / name)
        assert all(torch.equal(kept[k], expected[k]) for k in expected)


def test_a_crash_is_not_recorded_as_a_finished_run(tmp_path, monkeypatch):
    stop_in_epoch(monkeypatch, 2, "crash")
    with pytest.raises(RuntimeError, match="a bug"):
        train(tmp_path, "gan", name="crashed")
    summary = json.loads((tmp_path / "crashed" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_done"] == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_an_epoch_is_handed_over_waits_for_the_hand_over(signum):
    """A Ctrl-C (or SIGTERM, as a run takes it) inside interrupts_held() takes effect when the
    block is done, not in it, as the interrupt of its signal."""
    done = []
    with endings.signals_stop_the_run(), pytest.raises(KeyboardInterrupt) as stopped:
        with endings.interrupts_held():
            signal.raise_signal(signum)
            done.append("the rest of the block")
    assert done == ["the rest of the block"]
    assert endings.signal_number(stopped.value) == signum


@pytest.mark.parametrize(
    "setup",
    [
        lambda d: (d / "notes.txt").write_text("mine"),
        lambda d: (d / "config.json").write_text('{"mine": 1}'),
    ],
)
def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path, capsys, setup):
    """Not even with --overwrite, which deletes only a lab5 run; without it the run goes to
    the first free numbered folder beside it."""
    folder = tmp_path / "precious"
    folder.mkdir()
    setup(folder)
    before = {p.name: p.read_text() for p in folder.iterdir()}
    assert main("gan", [*SMALL, "--out", str(folder), "--overwrite"]) == 2
    assert "holds files that are not a lab5 run" in capsys.readouterr().err
    assert main("gan", [*SMALL, "--out", str(folder)]) == 0
    assert f"run folder: {tmp_path / 'precious_2'}/" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_a_new_run_never_deletes_an_earlier_one(tmp_path, capsys):
    """The same --out twice: the second run goes to OUT_2 and the first keeps every file;
    --overwrite replaces the run in OUT (old frames and all)."""
    train(tmp_path, "gan", "--frame-every", "1", name="r")
    first = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    train(tmp_path, "gan", "--epochs", "2", name="r")
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == first
    assert (tmp_path / "r_2" / "summary.json").exists()
    train(tmp_path, "gan", "--epochs", "2", "--overwrite", name="r")
    assert sorted(p.name for p in (tmp_path / "r" / "frames").glob("*.png")) == [
        "epoch_0000.png",
        "epoch_0002.png",
    ]
    assert len(list((tmp_path / "r" / "frames").glob("*.npz"))) == 2
    assert not (tmp_path / "r_3").exists()


def test_a_folder_being_written_is_refused_to_a_second_process_with_one_line(tmp_path):
    """While a process writes a run folder (here this one, holding its lock as lab5 does), a
    second process's --overwrite or --resume into it exits 2 with one line and changes
    nothing; once the lock is let go, --resume goes on."""
    folder = train(tmp_path, "gan", "--epochs", "2")[1]
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    with unlocked_after(folder):
        lock_folder(folder)
        for argv in (
            ["--resume", folder, "--epochs", "3"],
            [*SMALL, "--out", folder, "--overwrite"],
        ):
            done = subprocess.run(
                [sys.executable, ROOT / "variants" / "gan.py", *argv],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 2
            assert done.stderr == (
                f"error: {folder} is being written by {holder}; wait for it to end, or write "
                "elsewhere\n"
            )
        assert {p: p.read_bytes() for p in files} == files
    assert main("gan", ["--resume", str(folder), "--epochs", "3"]) == 0


def test_empty_out_is_an_error(capsys):
    assert main("gan", ["--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--toy-size", "4000"], "--toy-size is for the built-in toy distributions (ring8"),
        (["--eval-size", "2500"], "--eval-size is for the built-in toy distributions"),
        (["--hidden", "64,0"], "--hidden must be 1 to 8 widths in 1..4096 (got [64, 0])"),
        (["--hidden", "64,x"], "expected widths like 256,64, got '64,x'"),
        (["--anneal", "bogus=1"], "--anneal bogus: WGAN-GP can anneal lr, gp_weight, ema"),
        (["--anneal", "lr=-1"], "--anneal lr must be a positive number (got -1.0)"),
        (["--cooldown", "bogus=1"], "--cooldown bogus: WGAN-GP can cool down lr, gp_weight, ema"),
        (
            ["--cooldown", "lr=-1"],  # what the last epoch would take: 1e-4 + (-1 - 1e-4) * 99/100
            "--cooldown lr must be a positive number (got -0.989999) in epoch 200",
        ),
        (["--cooldown", "ema=1.5"], "--cooldown ema must be in [0, 1) (got 1.4949) in epoch 200"),
        (
            ["--cooldown", "lr=0", "--epochs", "99"],
            "--cooldown-epochs 100 is more than --epochs 99",
        ),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--epochs", "-2"], "--epochs must be a positive integer"),
        (
            ["--batch-size", "5000", "--n-critic", "2"],
            "needs more training points than --train-size 7000",
        ),
        (["--nesterov"], "--nesterov is for --optimizer sgd, not rmsprop"),
        (["--optimizer", "sgd", "--nesterov"], "--nesterov must be used with --momentum > 0"),
        (
            ["--optimizer", "adam", "--momentum", "0.9"],
            "--momentum is for --optimizer sgd or rmsprop, not adam",
        ),
        (["--optimizer", "sgd", "--centered"], "--centered is for --optimizer rmsprop, not sgd"),
        (["--betas", "0.5", "0.9"], "--betas is for --optimizer adam, not rmsprop"),
        (["--test-size", "5000", "--train-size", "3000"], "give --test-size 4096 or less"),
        (["--seeds", "0"], "--seeds must be a positive integer"),
        (["--vary", "clip=0.1,0.2"], "--vary clip: WGAN-GP can vary lr, gp_weight, ema"),
        (["--vary", "lr=1e-4,-1"], "--lr must be a positive number (got -1.0)"),
        (["--vary", "lr=fast"], "argument --vary: expected NAME=V1,V2,... with numbers"),
        (["--gp-weight", "nan"], "--gp-weight must be a non-negative number"),
        (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--train-size", "8192"], "points.mat:xx has 8192 rows, not more than --train-size 8192"),
        (
            ["--test-size", "1193"],
            "points.mat:xx has 8192 rows, fewer than --train-size 7000 + --test-size 1193",
        ),
        (["--key", "yy"], "has no variable 'yy'; it has: a, b, c, d, xx"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, message, capsys, tmp_path):
    assert main("wgan_gp", [*flags, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()  # nothing was started


def test_scripts_run_from_anywhere(tmp_path):
    """The variant scripts as users run them: from another folder, the shipped data found."""
    script = ROOT / "variants" / "gan.py"
    done = subprocess.run(
        [sys.executable, script, *SMALL, "--epochs", "1", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "generator.pt").exists() and "done in" in done.stdout
    bad = subprocess.run(
        [sys.executable, script, "--data", "missing.mat"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr == "error: data file not found: missing.mat\n"


@pytest.mark.parametrize(
    "variant,specific",
    [
        ("gan", ["--gan-loss"]),
        ("wgan", ["--clip"]),
        ("wgan_gp", ["--gp-weight"]),
    ],
)
def test_help_documents_every_common_flag(variant, specific, capsys):
    with pytest.raises(SystemExit) as done:
        main(variant, ["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in [
        *(
            "--data --key --train-size --epochs --batch-size --lr --optimizer --noise-dim "
            "--seed --device --no-compile --frame-every --out --order --n-critic"
        ).split(),
        *specific,
    ]:
        assert flag in text


def run_on_a_terminal(argv: list[str], folder) -> str:
    """What a command writes to a 100-column terminal (a pseudo-terminal), escapes removed."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(argv, stdout=follower, stderr=follower, cwd=folder)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait() == 0
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode())


@posix_only
def test_a_terminal_gets_a_progress_bar_and_a_pipe_only_the_lines(tmp_path):
    """Every line fits 100 columns but the run folder's full path, printed on its own, and a
    warning, which says how to mend what it warns of."""
    shutil.copy(ROOT / "data" / "points.mat", tmp_path / "points.mat")
    argv = [
        sys.executable,
        ROOT / "variants" / "wgan.py",
        *SMALL,
        "--epochs",
        "30",
        "--frame-every",
        "10",
        "--data",
        "points.mat",
    ]
    shown = run_on_a_terminal([*argv, "--out", "tty"], tmp_path)
    lines = [line for line in re.split(r"[\r\n]", shown) if line.strip()]
    assert any(re.match(r"wgan +\d+/30 \|.*steps/s", line) for line in lines)  # the bar
    long = [line for line in lines if len(line) > 100]
    assert long == [line for line in long if line.startswith(("run folder: /", "warning: "))]
    assert "run folder: " + str(tmp_path / "tty") + "/" in lines
    piped = subprocess.run([*argv, "--out", "pipe"], capture_output=True, text=True, cwd=tmp_path)
    assert piped.returncode == 0 and "steps/s" not in piped.stdout and "\r" not in piped.stdout
    assert [line.split()[1] for line in piped.stdout.splitlines() if line.startswith("epoch")] == [
        "0/30",
        "1/30",
        *(f"{e}/30" for e in range(5, 31, 5)),
    ]
    long = [line for line in piped.stdout.splitlines() if len(line) > 100]
    assert long == [line for line in long if line.startswith("warning: ")]


def test_a_small_test_set_is_warned_of_in_the_console_the_summary_and_the_page(tmp_path, capsys):
    path = tmp_path / "circles.csv"
    np.savetxt(path, two_noisy_circles(500, np.random.default_rng(0)), delimiter=",")
    out = tmp_path / "runs" / "run"
    flags = [
        "--data",
        str(path),
        *"--epochs 1 --frame-every 0 --no-compile --out".split(),
        str(out),
    ]
    assert main("wgan_gp", flags) == 0
    summary = json.loads((out / "summary.json").read_text())
    ratio = summary["gaussian_w1"] / summary["noise_floor"]["w1"]
    warning = f"a Gaussian blob scores {ratio:.1f}× the floor (73 test points): within 2×"
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]
    assert said[0] == f"warning: {summary['warnings'][0]}" and len(said[0]) <= 100
    assert summary["warnings"][0].startswith(warning) and ratio <= 2
    page = write_index(tmp_path / "runs").read_text()
    assert f'<td class="warning">{warning}' in page and "which a blob would be too" in page


def a_circle(points: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, points)
    return np.c_[np.cos(angle), np.sin(angle)] + 0.05 * rng.normal(size=(points, 2))


def test_a_fit_worse_than_a_gaussian_is_warned_of_with_what_to_try(tmp_path, capsys):
    """A circle of 2,000 points after one epoch (106 steps): no better than a Gaussian blob of
    its mean and covariance. The shipped data after 5 epochs of GAN beats the blob: no warning."""
    path = tmp_path / "circle.csv"
    np.savetxt(path, a_circle(2000), delimiter=",")
    out = tmp_path / "runs" / "circle"
    quick = "--frame-every 0 --no-compile --out".split()
    assert main("wgan_gp", ["--data", str(path), "--epochs", "1", *quick, str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    w1 = summary["final"]["w1"]
    blob = summary["gaussian_w1"]
    assert w1 >= blob
    warning = (
        f"the fit failed: the run ends with W1 {w1:.4f}, no better than a Gaussian blob's "
        f"{blob:.4f}; try more epochs (an epoch is one pass over the 1,709 training points: "
        "106 steps here)"
    )
    said = capsys.readouterr().out
    assert summary["warnings"] == [warning] and f"\nwarning: {warning}\n" in said
    assert f"scores {blob:.4f} ({blob / summary['noise_floor']['w1']:.1f}× floor)" in said
    page = write_index(tmp_path / "runs").read_text()
    assert f'<td class="warning">{escape(warning)}' in page
    assert f'data-key="gaussian_w1" data-value="{blob!r}"' in page
    fitted = tmp_path / "runs" / "fitted"
    assert main("gan", ["--epochs", "5", *quick, str(fitted)]) == 0
    summary = json.loads((fitted / "summary.json").read_text())
    assert summary["final"]["w1"] < summary["gaussian_w1"]
    assert summary["warnings"] == [] and "warning" not in capsys.readouterr().out


def test_a_resumed_run_says_so_and_does_not_repeat_its_last_epoch(tmp_path, capsys):
    code, out = train(tmp_path, "gan", "--epochs", "2")
    assert code == 0 and "epoch    2/2" in capsys.readouterr().out
    assert main("gan", ["--resume", str(out), "--epochs", "3"]) == 0
    said = capsys.readouterr().out
    assert f"resuming {out} from epoch 2 of 3" in said
    assert "epoch    2/" not in said and "epoch    3/3" in said
