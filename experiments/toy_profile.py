"""\
Where a toy run's generated points fall: within 3 s.d. of a mode (high quality), just outside
(3-5 s.d.: a mode drawn too wide), or between modes (beyond 5 s.d.), for each member of a run.

    python experiments/toy_profile.py runs/experiments/shipped/ring/wgan_gp

Samples 100,000 points from each member's generator.pt (the generator's moving average where the
run kept one) and prints the shares per member and their mean, beside those of the mixture itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.distance import cdist

import lab5
from data.points import TOY_DATA, toy_points
from harness import run_folder
from harness.evaluation import HIGH_QUALITY_SDS

ROOT = Path(__file__).resolve().parents[1]

BANDS = ("within 3 s.d.", "3-5 s.d.", "beyond 5 s.d.")


def distance_shares(points: np.ndarray, means: np.ndarray, std: float) -> np.ndarray:
    """The shares of points whose nearest mode is ≤ 3 (high quality), 3-5 and > 5 standard
    deviations away."""
    r = cdist(points, means).min(axis=1) / std
    return np.array(
        [(r <= HIGH_QUALITY_SDS).mean(), ((r > HIGH_QUALITY_SDS) & (r <= 5)).mean(), (r > 5).mean()]
    )


def member_samples(member: Path, n: int, seed: int = 0) -> np.ndarray:
    cfg = run_folder.config_of(member)
    net = lab5.torch_module(lab5.generator_sizes(cfg))
    net.load_state_dict(run_folder.load_params(member))
    with torch.no_grad():
        return net(lab5.draw_latent(cfg, (n,), torch.Generator().manual_seed(seed))).numpy()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    run = Path(sys.argv[1])
    members = [m for m in run_folder.members(run) if run_folder.has_params(m)]
    toy = run_folder.read_config(members[0])["data"] if members else None
    if toy not in TOY_DATA or TOY_DATA[toy] is None:
        print(f"error: {run} holds no run on a toy mixture (ring8, grid25)", file=sys.stderr)
        return 2
    means = np.array(TOY_DATA[toy]["means"])
    std = TOY_DATA[toy]["std"]
    print(f"{'':>12}" + "".join(f"{band:>16}" for band in BANDS))
    shares = []
    for member in members:
        shares.append(distance_shares(member_samples(member, 100_000), means, std))
        print(f"{member.name:>12}" + "".join(f"{100 * s:>15.1f}%" for s in shares[-1]))
    truth = distance_shares(toy_points(toy, torch.Generator().manual_seed(0), 100_000), means, std)
    for name, row in (("mean", np.mean(shares, axis=0)), ("the mixture", truth)):
        print(f"{name:>12}" + "".join(f"{100 * s:>15.1f}%" for s in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
