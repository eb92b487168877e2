"""Every flag at the edges of what it takes: a run ends with a status (0 done, 2 a one-line
error, 3 diverged), never with a traceback; a number or a choice is refused exactly where its
rule, written out here apart from the code, refuses it, and an accepted one is what the run's
config.json holds."""

import json
import math

import pytest

from harness.flags import FLAGS, Flag, for_variant
from harness.main import main

TINY = (
    "--train-size 64 --test-size 32 --batch-size 8 --n-critic 1 --epochs 1 "
    "--frame-every 0 --eval-every 0 --no-compile"
).split()
NUMBERS = {
    "a positive integer": ["0", "1", "-1", "2"],
    "a non-negative integer": ["0", "1", "-1"],
    "a positive number": ["0", "-1", "nan", "inf", "1e-30", "1e30"],
    "a non-negative number": ["0", "-1e-9", "nan", "inf", "1e30"],
    "a number of at least 1": ["1", "0.999", "nan", "inf"],
    "in [0, 1)": ["0", "0.999999", "1", "-0.1", "nan"],
    "a count or a fraction in (0, 1)": ["1", "40", "0", "0.5", "1.0", "-1", "nan", "1/5", "1/0"],
    "0, a count or a fraction in (0, 1)": ["0", "1", "0.5", "1.0", "-1", "2/3", "x/y"],
}
SPECIAL = {  # flags whose edges are not numbers of one kind
    "data": [["ring8"], ["grid25"], ["swissroll"], ["missing.mat"], [""]],
    "key": [["nope"], [""]],
    "betas": [["0", "0.999999"], ["1", "0.5"], ["nan", "0.5"], ["-0.1", "0.5"]],
    "vary": [["lr=1e-4"], ["lr="], ["bogus=1"], ["lr=1e-4,1e30"], ["clip=0.1,0.2"]],
    "hidden": [["8"], ["512,512,512"], ["0"], ["64,a"], [""], ["1,2,3,4,5,6,7,8,9"], ["5000"]],
    "critic_hidden": [["4,4"], ["-1"], ["9" * 30]],
    "toy_size": [["4000"]],
    "eval_size": [["2500"], ["-1"]],  # a file's run refuses them
    "anneal": [
        ["lr=5e-4"],
        ["lr=5e-4,gp_weight=0.1"],
        ["lr="],
        ["bogus=1"],
        ["lr=-1"],
        ["lr=1e30"],
        ["clip=0.1"],
        ["ema=0.5,lr=1e-3"],
    ],
    "cooldown": [
        [v, "--cooldown-epochs", "1"]
        for v in ("lr=0", "lr=0,gp_weight=0.1", "lr=-1", "ema=1", "ema=1.5", "bogus=1")
    ],
    "out": [[""]],
    "resume": [["no-such-run"], [""]],
    "train_size": [["8191"], ["63"], ["1"], ["0"], ["0.5"], ["0.99999"], ["1.0"], ["1e-9"]],
    "test_size": [["3"], ["4"], ["0"], ["33"], ["-1"], ["0.001"], ["0.5"], ["0.99"]],
    "delimiter": [[","], ["tab"], [";"], [""]],
    "noise_dim": [["1"], ["0"], ["500"]],
    "batch_size": [["1"], ["64"], ["65"], ["0"]],
}


def number(text: str):
    """A flag's text as a number: an int where it is one, a float, or a fraction a/b."""
    if text.lstrip("-").isdigit():
        return int(text)
    numerator, _, denominator = text.partition("/")
    try:
        return float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        return None


def is_fraction(v) -> bool:
    return isinstance(v, float) and 0 < v < 1


RULES = {  # each rule's text, as a test of a number (None: not a number at all)
    "a positive integer": lambda v: isinstance(v, int) and v >= 1,
    "a non-negative integer": lambda v: isinstance(v, int) and v >= 0,
    "a positive number": lambda v: v is not None and math.isfinite(v) and v > 0,
    "a non-negative number": lambda v: v is not None and math.isfinite(v) and v >= 0,
    "a number of at least 1": lambda v: v is not None and math.isfinite(v) and v >= 1,
    "in [0, 1)": lambda v: v is not None and 0 <= v < 1,
    "a count or a fraction in (0, 1)": lambda v: isinstance(v, int) and v >= 1 or is_fraction(v),
    "0, a count or a fraction in (0, 1)": lambda v: isinstance(v, int) and v >= 0 or is_fraction(v),
}


def expected(name: str, flag: Flag, variant: str, values: list[str]):
    """(accepted, the value config.json holds) by the flag's rule or choices; None where the
    edge is not one rule's (SPECIAL) and the status alone is checked."""
    if name in SPECIAL or name == "device":  # the device: what this machine has decides
        return None
    if flag.default is False:
        return True, True
    if flag.choices:
        return values[0] in for_variant(flag.choices, variant), values[0]
    value = number(values[0])
    if isinstance(for_variant(flag.default, variant), float) and isinstance(value, int):
        value = float(value)  # a float flag given 0 holds 0.0
    return RULES[flag.rule.text](value), value


def edge_values(name: str, flag: Flag, variant: str) -> list[list[str]]:
    if name in SPECIAL:
        return SPECIAL[name]
    if flag.default is False:
        return [[]]
    if flag.choices:
        return [[choice] for choice in for_variant(flag.choices, variant)] + [["bogus"]]
    return [[value] for value in NUMBERS[flag.rule.text]]


CASES = [
    (variant, name, values)
    for name, flag in FLAGS.items()
    for variant in flag.variants
    for values in edge_values(name, flag, variant)
    if variant == "wgan_gp" or len(flag.variants) < 3
]


@pytest.mark.parametrize(
    "variant,name,values", CASES, ids=[f"{v}--{n}={'_'.join(x)}" for v, n, x in CASES]
)
def test_every_flag_at_its_edges_ends_with_a_status(tmp_path, capsys, variant, name, values):
    optimizer = {
        "nesterov": ["--optimizer", "sgd", "--momentum", "0.5"],
        "betas": ["--optimizer", "adam"],
    }.get(name, [])
    flag = "--" + name.replace("_", "-")
    out = [] if name == "out" else ["--out", str(tmp_path / "run")]
    code = main(variant, [*TINY, *optimizer, *out, flag, *values])
    err = capsys.readouterr().err
    assert code in (0, 2, 3), err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
    rule = expected(name, FLAGS[name], variant, values)
    if rule is not None:
        accepted, value = rule
        assert (code != 2) == accepted, err  # 3: accepted, and diverged (lr 1e30, say)
        if accepted:
            saved = json.loads((tmp_path / "run" / "config.json").read_text())[name]
            assert saved == value and type(saved) is type(value)
        else:
            assert flag in err, err


def test_the_two_documented_zero_cadences_still_measure_the_last_epoch(tmp_path):
    """--frame-every 0 --eval-every 0: no frames, W1 at the last epoch only, nothing to fit."""
    out = tmp_path / "run"
    assert main("wgan", [*TINY, "--epochs", "2", "--out", str(out)]) == 0
    summary = (out / "summary.json").read_text()
    assert '"epochs_to_fit": null' in summary or '"epochs_to_fit": 2' in summary
    assert not list((out / "frames").iterdir())
    w1 = [line.split(",")[-2] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert w1[:2] == ["", ""] and math.isfinite(float(w1[2]))
