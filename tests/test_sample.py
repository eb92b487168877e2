"""Sampling-time correction (experiments/sample.py) against known answers: rejection sampling and
the Metropolis-adjusted Langevin moves recover a two-mode target from a one-mode proposal, the
classifier's logit is the log ratio of two known Gaussians, and a saved run's members sample
alone as they do in their ensemble."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from experiments import sample
from harness.main import main

ROOT = Path(__file__).resolve().parents[1]
SPREAD = 2.0  # the proposal: N(0, SPREAD² I)
CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0]])  # the target: an even mixture of N(c, WIDTH² I)
WIDTH = 0.5


def log_normal(x: np.ndarray, centre, sd: float) -> np.ndarray:
    return -((x - centre) ** 2).sum(-1) / (2 * sd**2) - np.log(2 * math.pi * sd**2)


def log_target(x: np.ndarray) -> np.ndarray:
    return logsumexp([log_normal(x, c, WIDTH) for c in CENTRES], axis=0) - math.log(2)


def torch_log_target(x: torch.Tensor) -> torch.Tensor:
    """log_target, differentiable (for the Langevin moves)."""
    centres = torch.as_tensor(CENTRES, dtype=x.dtype)
    squares = (x[..., None, :] - centres).square().sum(-1) / (2 * WIDTH**2)
    return torch.logsumexp(-squares, -1) - math.log(2 * 2 * math.pi * WIDTH**2)


def target_cdf(x: np.ndarray) -> np.ndarray:
    """The target's first coordinate's distribution function."""
    return sum(stats.norm.cdf(x, c[0], WIDTH) for c in CENTRES) / 2


def torch_of(f):
    return lambda x: torch.as_tensor(f(x.double().numpy()))


def draws(members: int, dims: int = 2, seed: int = 0):
    rngs = [torch.Generator().manual_seed(seed + i) for i in range(members)]
    return sample.member_draws([{"noise_dim": dims} for _ in rngs], rngs)


def test_rejection_keeps_r_over_m_of_the_proposals_and_recovers_the_two_modes():
    def log_ratio(x):
        return torch_of(lambda p: log_target(p) - log_normal(p, 0.0, SPREAD))(x)

    generated = []

    def generate(z):  # the generator, its calls counted
        generated.append(z.shape[1])
        return SPREAD * z

    found = sample.rejection(draws(1), generate, log_ratio, 20_000, pilot=200_000, batch=50_000)
    x = found["points"][0].numpy()
    # the bound M: the ratio's supremum, at the modes' centres (numerically, on a fine line)
    line = np.stack([np.linspace(-4, 4, 80_001), np.zeros(80_001)], 1)
    m = np.exp((log_target(line) - log_normal(line, 0.0, SPREAD)).max())
    accepted = found["acceptance"][0]
    assert found["above_bound"][0] < 1e-3
    # kept with probability 1/M from about 20,000·M proposals: its standard error (±0.0005 here)
    assert abs(accepted - 1 / m) < 4 * math.sqrt(accepted * (1 - accepted) / (20_000 * m))
    # the calls it counts are the proposals up to the 20,000th kept: within the last batch of
    # those the generator was called for after the pilot's
    proposals = sum(generated[1:])
    assert proposals - 50_000 < found["calls_per_point"][0] * 20_000 <= proposals
    assert stats.kstest(x[:, 0], target_cdf).pvalue > 1e-3
    assert stats.kstest(x[:, 1] / WIDTH, "norm").pvalue > 1e-3
    assert abs((x[:, 0] > 0).mean() - 0.5) < 4 * math.sqrt(0.25 / 20_000)
    # and the proposal itself is far from it: the test can fail
    z = SPREAD * torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    assert stats.kstest(z[:, 0].numpy(), target_cdf).pvalue < 1e-6


def test_mala_samples_the_target_and_is_exact_at_a_large_step():
    found = sample.mala(draws(1), torch_log_target, 4000, 2, steps=300, step_size=0.2)
    x = found["latents"][0].numpy()
    assert 0.3 < found["acceptance"][0] < 1
    assert stats.kstest(x[:, 0], target_cdf).pvalue > 1e-3
    assert abs((x[:, 0] > 0).mean() - 0.5) < 4 * math.sqrt(0.25 / 4000)

    # From N(0, I) toward N(0, I) at step 1: Langevin moves alone would widen it to a variance
    # of 1 / (1 − 1/4); the Metropolis test keeps it at 1.
    def standard(z):
        return -z.square().sum(-1) / 2

    kept = sample.mala(draws(1), standard, 20_000, 2, steps=20, step_size=1.0)["latents"][0]
    assert kept.var(0).numpy() == pytest.approx([1.0, 1.0], abs=0.05)


def test_mala_moves_the_noise_and_never_the_code():
    z0 = draws(2, dims=3)(500)[0]
    found = sample.mala(draws(2, dims=3), lambda z: -z.square().sum(-1), 500, 2, 5, 0.1)
    assert torch.equal(found["latents"][..., 2], z0[..., 2])
    assert not torch.equal(found["latents"][..., :2], z0[..., :2])


def test_the_classifier_logit_is_the_log_ratio_of_two_gaussians():
    """p = N(0, I), q = N((1, 0), I): log p/q (x) = 1/2 − x₁, wherever either has mass."""
    rng = torch.Generator().manual_seed(0)
    real = torch.randn(20_000, 2, generator=rng)

    def fake(count: int) -> torch.Tensor:
        return (torch.randn(count, 2, generator=rng) + torch.tensor([1.0, 0.0]))[None]

    log_ratio = sample.fit_classifier(real, fake, [rng], steps=1500, batch=512, lr=1e-3)
    x = torch.rand(2000, 2, generator=rng) * torch.tensor([3.0, 3.0]) - torch.tensor([1.0, 1.5])
    error = (log_ratio(x[None])[0] - (0.5 - x[:, 0])).abs()
    assert error.mean() < 0.1
    assert error.max() < 0.5


TINY_TOY = (
    "--preset toy --data ring8 --toy-size 3000 --train-size 2500 --test-size 200 --eval-size 300 "
    "--epochs 2 --anneal-epochs 2 --frame-every 0 --no-compile"
).split()
TINY_SAMPLE = (
    "--points 300 --pilot 2000 --batch-size 2000 --classifier-steps 30 --steps 3"
).split()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "ring"
    assert main("wgan_gp", [*TINY_TOY, "--seeds", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("method", ["rejection", "mala"])
def test_an_ensemble_samples_as_its_members_alone_and_the_same_seed_the_same(trained, method):
    flags = [*TINY_SAMPLE, "--method", method]
    assert sample.main([str(trained), *flags]) == 0
    both = [json.loads((m / "sampled" / f"{method}.json").read_text()) for m in members(trained)]
    assert sample.main([str(trained / "seed1"), *flags]) == 0
    alone = json.loads((trained / "seed1" / "sampled" / f"{method}.json").read_text())
    for key in ("calls_per_point", "acceptance", "modes", "hq", "reverse_kl", "w1"):
        assert alone[key] == pytest.approx(both[1][key], rel=1e-6, nan_ok=True), key
    assert both[0]["w1"] != both[1]["w1"]  # the members are not one model twice
    assert alone["settings"]["method"] == method and alone["settings"]["points"] == 300
    assert (trained / "seed0" / "frames" / f"sampled_{method}.png").stat().st_size > 10_000
    assert sample.main([str(trained / "seed1"), *flags, "--seed", "1"]) == 0
    other = json.loads((trained / "seed1" / "sampled" / f"{method}.json").read_text())
    assert other["w1"] != alone["w1"]


def members(run: Path) -> list[Path]:
    return sorted(p for p in run.iterdir() if (p / "generator.pt").exists())


def test_the_generator_as_it_is_scores_as_training_scored_it(trained):
    """--method none with the run's own evaluation noise would be the last epoch's row; with
    the sampler's, it is the same generator on other draws: close, on 300 points."""
    assert sample.main([str(trained / "seed0"), *TINY_SAMPLE, "--method", "none"]) == 0
    found = json.loads((trained / "seed0" / "sampled" / "none.json").read_text())
    final = json.loads((trained / "seed0" / "summary.json").read_text())["final"]
    assert found["calls_per_point"] == 1.0
    assert found["w1"] == pytest.approx(final["w1"], rel=0.3)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--ratio", "discriminator"], "a wgan_gp critic's score is not a density ratio"),
        (["--points", "0"], "--points must be a positive integer"),
    ],
)
def test_mistakes_are_one_line_errors(trained, flags, message, capsys):
    try:
        code = sample.main([str(trained), *flags])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_a_folder_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert sample.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path} holds no trained generator (generator.pt, or members with one)"
    )
