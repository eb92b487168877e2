"""Turn every run's frames into a GIF, draw its curves, and show all the runs on one page.

    python plots/make_gifs.py                 # every run folder under runs/
    python plots/make_gifs.py runs/wgan_gp    # just this run (an ensemble: each of its members)
    python plots/make_gifs.py --compare runs/gan runs/wgan_gp   # these runs side by side

For a run folder runs/<name>/ it writes runs/<name>.gif (frames in epoch order, the last held
longer) and runs/<name>/curves.png (losses and distances per epoch, from metrics.csv; an
ensemble's from ensemble.csv, its members beneath). Then runs/index.html, a page with every run
under runs/, and runs/compare.gif, runs side by side at the same epochs (by default the latest
completed run of each variant, when there are two or more). A GIF or curves newer than every
file they are made from are kept (--force makes them again); a run whose GIF cannot be made is
skipped with a warning; the others are still made, and no half-written file is left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

from errors import UserError
from harness import run_folder
from harness.cli import strict_parser
from harness.run_folder import atomic_write, curves_path, frames, gif_path, picture_inputs
from plots.compare import compare_frames, latest_runs
from plots.curves import plot_curves
from plots.page import write_index

FRAME_MS = 150
LAST_FRAME_MS = 2000
DITHER_LEVELS = 12  # the dither's amplitude, of 255: about the step between the palette's colours
EXACT_COLOURS = 32  # a GIF's most frequent colours, kept exactly


def read_frames(run: Path) -> list[Image.Image]:
    """The run's frames in epoch order, as RGB (a GIF has no alpha channel); a frame that cannot
    be read is skipped with a warning rather than losing the whole GIF."""
    images = []
    for _, path in sorted(frames(run).items()):
        try:
            images.append(Image.open(path).convert("RGB"))
        except OSError as e:
            print(f"warning: skipping {path}: {e}", file=sys.stderr)
    return images


def bayer_matrix(size: int) -> np.ndarray:
    """The ordered-dithering threshold map of side `size` (a power of 2), centred in (-½, ½)."""
    m = np.zeros((1, 1))
    while m.shape[0] < size:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / m.size - 0.5


def one_palette(images: list[Image.Image]) -> Image.Image:
    """256 colours for a whole GIF, from (up to 8 of) its frames: their most frequent colours
    exactly (the white around the axes, the text, the points' colours), then the rest by maximum
    coverage. The still parts keep their colours, and the GIF holds one colour table."""
    sample = images[:: max(1, len(images) // 8)][:8]
    montage = Image.new("RGB", (sample[0].width, sample[0].height * len(sample)))
    for i, im in enumerate(sample):
        montage.paste(im, (0, i * im.height))
    counted = sorted(montage.getcolors(montage.width * montage.height), reverse=True)
    frequent = [colour for _, colour in counted[:EXACT_COLOURS]]
    covering = montage.quantize(256 - len(frequent), method=Image.Quantize.MAXCOVERAGE)
    spread = np.array(covering.getpalette()[: 3 * (256 - len(frequent))]).reshape(-1, 3)
    palette = Image.new("P", (1, 1))
    palette.putpalette([int(c) for colour in [*frequent, *spread] for c in colour])
    return palette


def colour_codes(pixels: np.ndarray) -> np.ndarray:
    """Each RGB pixel as one integer."""
    rgb = pixels.astype(np.int32)
    return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]


def quantized(images: list[Image.Image]) -> list[Image.Image]:
    """The frames in one palette, dithered by a fixed pattern: a smooth landscape is not cut
    into bands, and a pixel that does not change between two frames does not change in the GIF
    (error diffusion would carry a change above or left of it into it: shimmer). A pixel of a
    palette colour (the white around the axes, black text) is taken as it is; every other one
    goes to its nearest colour (Pillow's own mapping rounds the colours first: bands again)."""
    palette = one_palette(images)
    colours = np.array(palette.getpalette()[: 3 * 256]).reshape(-1, 3)
    nearest = cKDTree(colours)
    width, height = images[0].size
    pattern = np.tile(bayer_matrix(8), (height // 8 + 1, width // 8 + 1))[:height, :width]
    out = []
    for im in images:
        pixels = np.asarray(im).astype(float)
        exact = np.isin(colour_codes(pixels), colour_codes(colours))
        dithered = pixels + np.where(exact, 0.0, DITHER_LEVELS * pattern)[..., None]
        indices = nearest.query(np.clip(dithered, 0, 255).reshape(-1, 3))[1]
        frame = Image.fromarray(indices.reshape(height, width).astype(np.uint8), mode="P")
        frame.putpalette(palette.getpalette())
        out.append(frame)
    return out


def write_gif(
    gif: Path, images: list[Image.Image], scale: float = 1.0, made_from: str = ""
) -> Path:
    """Frames in order, resized by `scale`, the last held longer, in one palette (quantized),
    written beside and then renamed, so that a failure never leaves a broken GIF; `made_from` is
    kept in its comment."""
    sizes = sorted({im.size for im in images})
    if len(sizes) > 1:  # a frame from another layout: the GIF would crop or pad it silently
        raise ValueError(f"frames of {len(sizes)} sizes: {', '.join(map(str, sizes))}")
    if scale != 1.0:
        images = [im.resize(scaled(images[0].size, scale), Image.LANCZOS) for im in images]
    images = quantized([im.convert("RGB") for im in images])
    durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
    atomic_write(
        gif,
        lambda tmp: images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            loop=0,
            append_images=images[1:],
            duration=durations,
            comment=made_from,
        ),
    )
    return gif


def make_gif(run: Path, scale: float = 1.0) -> Path | None:
    """runs/<name>.gif from runs/<name>/frames; a run with one frame gets a one-frame GIF."""
    images = read_frames(run)
    if not images:
        return None
    return write_gif(gif_path(run), images, scale, made_from([run], scale))


def make_curves(run: Path) -> Path | None:
    """runs/<name>/curves.png from a run's metrics.csv, or from an ensemble's ensemble.csv
    with its members' metrics.csv beneath. An unreadable config raises (UserError): main skips
    the run with a warning."""
    if not run_folder.has_table(run):
        return None
    members = run_folder.members(run)
    rows = [run_folder.read_metrics(m) for m in members] if members != [run] else []
    config = run_folder.read_config(run)
    summary = run_folder.read_summary(run)
    path = curves_path(run)
    plot_curves(
        run_folder.read_table(run_folder.table_of(run)), rows, config, summary, run.name, path
    )
    return path


def scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (round(size[0] * scale), round(size[1] * scale))


def made_from(runs: list[Path], scale: float) -> str:
    """What a GIF is made from, as its comment keeps it: the run folders and the --scale."""
    return json.dumps({"runs": [str(run.resolve()) for run in runs], "scale": scale})


def was_made_from(gif: Path, what: str) -> bool:
    """Is the GIF there, and made from `what` (made_from)? An unreadable one was not."""
    try:
        with Image.open(gif) as image:
            return image.info.get("comment", b"").decode() == what
    except (OSError, UnicodeDecodeError):
        return False


def up_to_date(outputs: list[Path], inputs: list[Path]) -> bool:
    """Are all the outputs there, and newer than every input?"""
    if not all(path.exists() for path in outputs):
        return False
    newest = max((path.stat().st_mtime_ns for path in inputs if path.exists()), default=0)
    return min(path.stat().st_mtime_ns for path in outputs) >= newest


def run_outputs(run: Path) -> list[Path]:
    gif = [gif_path(run)] if frames(run) else []
    curves = [curves_path(run)] if run_folder.has_table(run) else []
    return gif + curves


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = strict_parser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs",
        nargs="*",
        type=Path,
        help="run or ensemble folders (default: every run under --root)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("runs"),
        help="where to look for run folders, and to write index.html and compare.gif "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="resize the GIFs' frames (compare.gif's too) by this factor (default: %(default)s)",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="the runs of compare.gif (default: each variant's latest completed run)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="make every GIF and curves again, also those newer than what they are made from",
    )
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 4:
        raise UserError(f"--scale must be in (0, 4] (got {args.scale})")
    missing = [str(r) for r in [*args.runs, *(args.compare or [])] if not r.is_dir()]
    if missing:
        raise UserError(f"no run folder at {', '.join(missing)}")
    return args


def make_compare(runs: list[Path], root: Path, scale: float = 1.0) -> Path | None:
    """root/compare.gif from two runs or more that share frame epochs."""
    frames = compare_frames(runs)
    if not frames:
        return None
    return write_gif(root / "compare.gif", frames, scale, made_from(runs, scale))


def show_together(runs: list[Path] | None, root: Path, scale: float, force: bool) -> None:
    """root/compare.gif of `runs` (default: each variant's latest completed run), kept where
    it is newer than their frames; with fewer than two runs, a note of what makes one; where
    it cannot be made, a warning that says why."""
    runs = runs or latest_runs(root)
    if len(runs) < 2:
        print(
            f"note: {root / 'compare.gif'} shows runs of two variants or more side by side: "
            "python experiments/compare_variants.py trains all three, at matched training"
        )
        return
    inputs = [path for run in runs for path in picture_inputs(run)]
    same = was_made_from(root / "compare.gif", made_from(runs, scale))
    if not force and same and up_to_date([root / "compare.gif"], inputs):
        print(f"{root / 'compare.gif'}: up to date")
        return
    try:
        compared = make_compare(runs, root, scale)
    except (OSError, ValueError, KeyError) as e:
        compared = None
        why = str(e)
    else:
        why = "no epoch at which all of them drew a frame"
    print(
        compared or f"warning: no {root / 'compare.gif'}: {why}",
        file=sys.stdout if compared else sys.stderr,
    )


def find_runs(args: argparse.Namespace) -> list[Path]:
    """The run folders asked for, or under --root, and their members (a GIF each)."""
    found = [r for top in args.runs or [args.root] for r in run_folder.find_runs(top)]
    runs = sorted({m for run, members in found for m in (run, *members)})
    if not runs:
        raise UserError(
            f"no run folder at {', '.join(map(str, args.runs)) or args.root} "
            "(train one with python variants/wgan_gp.py)"
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        runs = find_runs(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for run in runs:
        make_run(run, args.scale, args.force)
    if args.root.is_dir():
        try:
            print(write_index(args.root))
        except (OSError, ValueError) as e:
            print(f"warning: no {args.root / 'index.html'}: {e}", file=sys.stderr)
        show_together(args.compare, args.root, args.scale, args.force)
    return 0


def make_run(run: Path, scale: float, force: bool) -> None:
    """A run's GIF and curves, unless they are newer than all they are made from."""
    outputs = run_outputs(run)
    gif = gif_path(run)
    same = gif not in outputs or was_made_from(gif, made_from([run], scale))
    if outputs and not force and same and up_to_date(outputs, picture_inputs(run)):
        print(f"{run}: up to date")
        return
    try:
        made = [str(path) for path in (make_gif(run, scale), make_curves(run)) if path]
    except (OSError, ValueError, UserError) as e:
        print(f"warning: skipping {run}: {e}", file=sys.stderr)
        return
    print(f"{run}: {', '.join(made) or 'no frames or metrics yet'}")


if __name__ == "__main__":
    sys.exit(main())
