"""The benchmark's own arithmetic: the FLOP count and the medians of alternating repetitions."""

import itertools

import torch
import torch.nn.functional as F

from bench.speed import CountFlops, alternate


def test_flops_of_matrix_multiplies_are_counted():
    a = torch.randn(64, 256)
    b = torch.randn(256, 32)
    w = torch.randn(10, 256)
    bias = torch.randn(10)
    with CountFlops() as counter:
        a @ b  # 2·64·256·32
        F.linear(a, w, bias)  # 2·64·256·10
        torch.relu(a)  # not a matrix multiply: not counted
    assert counter.total == 2 * 64 * 256 * 32 + 2 * 64 * 256 * 10


def test_flops_of_a_backward_pass_are_counted_too():
    x = torch.randn(8, 16)
    w = torch.randn(16, 4, requires_grad=True)
    with CountFlops() as counter:
        (x @ w).sum().backward()  # forward 2·8·16·4, and the weight gradient xᵀ·g of the same size
    assert counter.total == 2 * (2 * 8 * 16 * 4)


def test_alternate_takes_the_median_of_each_runner():
    times = {"a": itertools.cycle([1.0, 3.0, 2.0]), "b": itertools.cycle([0.5, 0.5, 10.0])}
    order = []

    def runner(name):
        def run():
            order.append(name)
            return next(times[name])

        return run

    result = alternate({"a": runner("a"), "b": runner("b")}, steps=100, reps=3)
    assert result == {"a": 100 / 2.0, "b": 100 / 0.5}
    assert order == ["a", "b"] * 3  # alternating, not one after the other
