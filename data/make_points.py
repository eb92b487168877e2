"""Regenerate data/points.mat, the lab's "M"-shaped point cloud, from its description.

The course file stores xx = 0.04 * vstack(a, b, c, d) + 0.5: four elongated Gaussian clusters of
2048 points each (means and covariances below, as far as the file shows them), rows in cluster
order, and the unscaled clusters as a, b, c, d. This script draws a new sample of the same
distribution with a fixed seed, so the project runs out of the box without the course file.

    python data/make_points.py [--out data/points.mat] [--seed 0]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from errors import UserError
from harness.cli import strict_parser

CLUSTERS = {  # name: (mean, covariance), before scaling
    "a": ((0.0, 0.0), ((4.0, -3.0), (-3.0, 2.5))),
    "b": ((-8.0, 0.0), ((4.0, 3.0), (3.0, 3.0))),
    "c": ((9.0, -1.0), ((4.0, 2.0), (2.0, 2.0))),
    "d": ((15.0, -2.0), ((2.5, -3.0), (-3.0, 5.0))),
}
POINTS_PER_CLUSTER = 2048
SCALE = 0.04
SHIFT = 0.5


def make_points(seed: int = 0) -> dict[str, np.ndarray]:
    """The MAT file's variables: a, b, c, d (2048×2 each, unscaled) and xx (8192×2)."""
    rng = np.random.default_rng(seed)
    clusters = {
        name: rng.multivariate_normal(mean, cov, POINTS_PER_CLUSTER)
        for name, (mean, cov) in CLUSTERS.items()
    }
    return {**clusters, "xx": SCALE * np.vstack(list(clusters.values())) + SHIFT}


def main() -> None:
    p = strict_parser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", default=str(Path(__file__).with_name("points.mat")), help="MAT file to write"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    try:
        args = p.parse_args()
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    scipy.io.savemat(args.out, make_points(args.seed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
