"""Turn every run's frames into a GIF and draw its loss and distance curves.

    python plots/make_gifs.py                 # every run folder under runs/
    python plots/make_gifs.py runs/wgan_gp    # just this run (an ensemble: each of its members)

For a run folder runs/<name>/ it writes runs/<name>.gif (frames in epoch order, the last held
longer) and runs/<name>/curves.png (losses and distances per epoch, from metrics.csv). A run
whose GIF cannot be made is skipped with a warning; the others are still made, and no half-
written GIF is left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from plots.frames import plot_curves  # noqa: E402
from plots.records import atomic_write, read_table  # noqa: E402

FRAME_MS, LAST_FRAME_MS = 150, 2000


def read_frames(run: Path) -> list[Image.Image]:
    """The run's frames in epoch order, as RGB (a GIF has no alpha channel); a frame that cannot
    be read is skipped with a warning rather than losing the whole GIF."""
    images = []
    for path in sorted((run / "frames").glob("epoch_*.png")):
        try:
            images.append(Image.open(path).convert("RGB"))
        except OSError as e:
            print(f"warning: skipping {path}: {e}", file=sys.stderr)
    return images


def make_gif(run: Path, scale: float = 1.0) -> Path | None:
    """runs/<name>.gif from runs/<name>/frames, written beside and then renamed, so that a
    failure never leaves a broken GIF; a run with one frame gets a one-frame GIF."""
    images = read_frames(run)
    if not images:
        return None
    gif = run.with_name(run.name + ".gif")
    if scale != 1.0:
        size = (round(images[0].width * scale), round(images[0].height * scale))
        images = [im.resize(size, Image.LANCZOS) for im in images]
    durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
    # Pillow takes a list of durations for several frames, a number for one
    atomic_write(gif, lambda tmp: iio.imwrite(
        tmp, [np.asarray(im) for im in images], extension=".gif", loop=0,
        duration=durations if len(images) > 1 else LAST_FRAME_MS))
    return gif


def make_curves(run: Path) -> Path | None:
    if not (run / "metrics.csv").exists():
        return None
    summary_file = run / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    path = run / "curves.png"
    plot_curves(read_table(run / "metrics.csv"), summary.get("noise_floor"), run.name, path)
    return path


def usage_error(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.error = usage_error
    parser.add_argument("runs", nargs="*", type=Path,
                        help="run or ensemble folders (default: every run under --root)")
    parser.add_argument("--root", type=Path, default=Path("runs"),
                        help="where to look for run folders")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="resize the GIF's frames by this factor")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 4:
        print(f"error: --scale must be in (0, 4] (got {args.scale})", file=sys.stderr)
        return 2
    missing = [str(r) for r in args.runs if not r.is_dir()]
    # run folders at any depth: an ensemble keeps one per member inside its own
    runs = sorted({m.parent for top in args.runs or [args.root] for m in top.rglob("metrics.csv")})
    if missing or not runs:
        where = ", ".join(missing or map(str, args.runs)) or args.root
        print(f"error: no run folder at {where} (train one with python variants/wgan_gp.py)",
              file=sys.stderr)
        return 2
    for run in runs:
        try:
            made = [str(path) for path in (make_gif(run, args.scale), make_curves(run)) if path]
        except (OSError, ValueError) as e:
            print(f"warning: skipping {run}: {e}", file=sys.stderr)
            continue
        print(f"{run}: {', '.join(made) or 'no frames or metrics yet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
