"""The sweep script's grid, rows and table (the runs themselves are ordinary lab5 runs)."""

import json

from experiments.sweep import grid_flags, read_results, rows, table


def test_grid_is_the_product_of_the_flags_values():
    assert grid_flags(["n-critic=1,5", "init=torch"]) == [
        ["--n-critic", "1", "--init", "torch"],
        ["--n-critic", "5", "--init", "torch"],
    ]
    assert grid_flags([]) == [[]]


def test_a_value_holding_an_equals_sign_is_one_value():
    assert grid_flags(["vary=ema=0,0.99", "seed=100"]) == [
        ["--vary", "ema=0,0.99", "--seed", "100"]
    ]
    assert grid_flags(["betas=0.5 0.9,0.9 0.999"]) == [
        ["--betas", "0.5", "0.9"],
        ["--betas", "0.9", "0.999"],
    ]


def member(name, final, first, w1):
    return {"name": name, "final": final, "first": first, "fit": None, "w1_by_epoch": w1}


RECORDS = [
    {
        "flags": "--batch-size 16 --vary ema=0,0.99",
        "members": [
            member("seed0_ema0", 3.0, 40, {30: 2.5, 70: 1.9}),
            member("seed0_ema0.99", 1.2, 20, {30: 1.5, 70: 1.1}),
            member("seed1_ema0", 5.0, None, {30: 4.0, 70: 3.0}),
            member("seed1_ema0.99", 1.4, 25, {30: 1.9, 70: 1.3}),
        ],
    },
    {
        "flags": "--batch-size 32",
        "members": [
            member("seed0", 2.0, 50, {30: 3.0, 70: 2.0}),
            member("seed1", 2.2, 60, {30: 3.2}),
        ],
    },
]


def test_rows_split_a_point_by_its_varied_value():
    got = rows(RECORDS)
    assert list(got) == ["--batch-size 16 ema0", "--batch-size 16 ema0.99", "--batch-size 32"]
    assert [m["final"] for m in got["--batch-size 16 ema0.99"]] == [1.2, 1.4]


def test_table_orders_by_final_mean_and_shows_the_worst_seed():
    lines = table(RECORDS).splitlines()
    assert lines[2].startswith(
        "| --batch-size 16 ema0.99 | 2 | 1.70 (1.90) | 1.20 (1.30) | 1.30 ± 0.10 (1.40) | 25 |"
    )
    assert lines[3].startswith("| --batch-size 32 | 2 | 3.10 (3.20) | — |")  # 70 not reached
    assert lines[3].endswith("| 60 |")
    assert lines[4].startswith("| --batch-size 16 ema0 |") and lines[4].endswith("| never (1) |")


def test_results_read_back_with_integer_epochs(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert read_results(path) == RECORDS
