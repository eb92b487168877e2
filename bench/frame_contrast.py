"""How much of the colour scale do a run's frames give the critic where the data is, and how
much does the picture flicker from frame to frame? Measured on the PNG files themselves.

    python bench/frame_contrast.py runs/gan runs/wgan runs/wgan_gp

For each frame, every pixel of the heat-map inside the data's bounding box is mapped back to the
nearest of the colour map's 256 colours (pixels under the points, which match none closely, are
left out). Spread: the 2nd to 98th percentile of those indices, as a fraction of the scale.
Flicker: the median change of a pixel's index from the previous frame, as a fraction.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy.spatial import cKDTree

from errors import UserError
from harness import run_folder
from harness.cli import strict_parser
from harness.flags import with_added_flags
from harness.main import load_data, split_data
from plots.frames import critic_label, frame_figure, plot_window

CLOSE = 6.0  # RGB distance to the nearest colour of the map, beyond which a pixel is a point's


def data_box_pixels(run: Path) -> tuple[slice, slice]:
    """The rows and columns of a frame that show the test points' bounding box, laid out as
    the recorder laid the run's frames out."""
    saved = run_folder.read_config(run)
    cfg = with_added_flags(saved, saved["variant"])
    points, _, source = load_data(cfg)
    train, test = split_data(cfg, points, source)
    window = plot_window(np.vstack([train, test]))
    parts = frame_figure(window, test, critic_label(cfg["variant"] == "gan"))
    height = parts["fig"].bbox.height
    (x0, y0), (x1, y1) = parts["ax"].transData.transform([test.min(0), test.max(0)])
    return slice(round(height - y1) + 1, round(height - y0) - 1), slice(
        round(x0) + 1, round(x1) - 1
    )


def colour_indices(frame: Path, box: tuple[slice, slice], tree: cKDTree) -> np.ndarray:
    """Each pixel's index in the colour map (NaN where it shows a point instead)."""
    pixels = np.asarray(Image.open(frame).convert("RGB"), float)[box]
    distance, index = tree.query(pixels.reshape(-1, 3))
    return np.where(distance < CLOSE, index, np.nan).reshape(pixels.shape[:2])


def measure(run: Path) -> list[dict]:
    tree = cKDTree(colormaps["PuBuGn"](np.linspace(0, 1, 256))[:, :3] * 255)
    box = data_box_pixels(run)
    rows = []
    previous = None
    for epoch, frame in sorted(run_folder.frames(run).items()):
        index = colour_indices(frame, box, tree)
        low, high = np.nanpercentile(index, [2, 98])
        flicker = None if previous is None else float(np.nanmedian(abs(index - previous)) / 255)
        rows.append({"epoch": epoch, "spread": (high - low) / 255, "flicker": flicker})
        previous = index
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = strict_parser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with frames")
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="*",
        default=[10, 30, 70, 200],
        help="epochs to list (and the least spread over every frame)",
    )
    try:
        args = parser.parse_args(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = ["run", *(f"spread at {e}" for e in args.epochs), "least (epoch)", "flicker"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for run in args.runs:
        rows = measure(run)
        if not rows:
            print(f"| {run.name} | no frames |")
            continue
        spread = {r["epoch"]: r["spread"] for r in rows}
        worst = min(rows, key=lambda r: r["spread"])
        flicker = np.median([r["flicker"] for r in rows if r["flicker"] is not None])
        print(
            f"| {run.name} | "
            + " | ".join(f"{spread[e]:.2f}" if e in spread else "–" for e in args.epochs)
            + f" | {worst['spread']:.2f} ({worst['epoch']}) | {flicker:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
