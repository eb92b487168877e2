"""The sweep script's grid and table (the runs themselves are ordinary lab5 runs)."""

from experiments.sweep import grid_flags, table


def test_grid_is_the_product_of_the_flags_values():
    assert grid_flags(["n-critic=1,5", "init=torch"]) == [
        ["--n-critic", "1", "--init", "torch"], ["--n-critic", "5", "--init", "torch"]]
    assert grid_flags([]) == [[]]


def test_table_orders_by_median_ratio():
    results = [{"flags": "--a 1", "seed": s, "ratio": r} for s, r in enumerate([3.0, 1.0, 5.0])] + \
              [{"flags": "--a 2", "seed": s, "ratio": r} for s, r in enumerate([2.0, 2.5])]
    lines = table(results).splitlines()
    assert lines[1].startswith("--a 2") and "2.25" in lines[1] and "2.50" in lines[1]
    assert lines[2].startswith("--a 1") and "3.00" in lines[2] and "5.00" in lines[2]
