"""\
Sampling-time correction of a trained run: points from its generators, moved toward the data by
a density ratio r(x) = p_data(x) / p_model(x) estimated after training.

    python experiments/sample.py RUN                          # rejection sampling (default)
    python experiments/sample.py RUN --method mala            # Langevin moves in the latent space
    python experiments/sample.py RUN --method none            # the generator as it is
    python experiments/sample.py RUN --ratio discriminator    # GAN: its own logit as log r

rejection (discriminator rejection sampling, Azadi et al. 2019, without their acceptance shift):
a proposal x = G(z) is kept with probability r(x) / M, M the largest ratio among --pilot
proposals, so that the kept points follow p_model·r = p_data wherever r ≤ M; the share of
proposals above M is reported, and each kept point costs 1 / (acceptance rate) generator calls.
mala (discriminator-driven latent sampling, Che et al. 2020, with a Metropolis test): --steps
Langevin moves of each point's noise toward the density N(z; 0, I)·r(G(z)), whose image under
G is p_data; each move is accepted by a Metropolis-Hastings test, so the chain leaves that
density unchanged whatever the step size; a point costs 1 + --steps generator calls (a forward
and a backward pass each). With --codes, a chain keeps its code and moves its noise.

The ratio: GAN's discriminator logit is log r for the generator it trained against (the raw one,
not the average that is sampled); a WGAN critic's score is no ratio. So by default a small
logistic classifier learns training points against generated ones, in equal numbers, whose
logit is then log r; for every variant, every member at once (vmapped).

Writes RUN/<member>/sampled/<method>.json (the settings, the mode metrics on a toy, W1 / noise
floor against the test points, the acceptance, the calls per point) and a frame of the points,
RUN/<member>/frames/sampled_<method>.png, and prints a row per member and their means.
"""

from __future__ import annotations

import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.func import grad, vmap

import lab5
from errors import UserError
from harness import evaluation, run_folder
from harness.cli import strict_parser
from harness.flags import with_added_flags
from harness.main import load_data, split_data
from plots.frames import (
    colour_range,
    data_region,
    frame_title,
    landscape_grid,
    make_frame_writer,
    plot_window,
)

METHODS = ("rejection", "mala", "none")
CLASSIFIER_HIDDEN = (64, 64, 64)  # enough to draw a ring of modes 0.01 wide; 3 s on a laptop


# ---- The density ratio: a logistic classifier, training points (1) against generated (0) -----


def classifier_loss(params: dict, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of 'real' against 'generated', in equal numbers: its minimiser's
    logit is log p_data / p_model."""
    real_logit = lab5.critic(params, real)
    fake_logit = lab5.critic(params, fake)
    return (
        torch.nn.functional.softplus(-real_logit).mean()
        + torch.nn.functional.softplus(fake_logit).mean()
    )


def fit_classifier(
    real: torch.Tensor, fake: Callable, rngs: list, steps: int, batch: int, lr: float
) -> Callable:
    """For every member at once: real (n, 2) shared; fake(count) -> (members, count, 2), fresh
    generated points for every step, so that the classifier never learns a sample by heart; each
    member's real minibatches from its own stream. Adam, on points scaled by the real ones' mean
    and spread. Returns log r(x) for points x (members, k, 2)."""
    shift = real.mean(0)
    scale = real.std(0)
    sizes = (2, *CLASSIFIER_HIDDEN, 1)
    params = lab5.tree_stack([lab5.init_mlp(sizes, rng, "kaiming") for rng in rngs])
    opt = lab5.adam()
    state = vmap(opt.init, in_dims=(0, None))(params, lr)
    step_grad = vmap(grad(classifier_loss))
    for _ in range(steps):
        pick = torch.stack([torch.randint(len(real), (batch,), generator=r) for r in rngs])
        grads = step_grad(params, (real[pick] - shift) / scale, (fake(batch) - shift) / scale)
        params, state = vmap(opt.update)(grads, state, params)
    return lambda x: vmap(lab5.critic)(params, (x - shift) / scale)


def discriminator_ratio(d_params: dict) -> Callable:
    """GAN's own discriminator: its logit is log D / (1 − D), the log ratio it estimates."""
    return lambda x: vmap(lab5.critic)(d_params, x)


# ---- The samplers: points (members, n, 2) and the generator calls each point cost ---------------


def member_draws(cfgs: list[dict], rngs: list) -> Callable:
    """count -> (latents (members, count, ·), uniforms (members, count)), each member's from
    its own stream: a member samples the same points alone as in its ensemble."""

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = [lab5.draw_latent(cfg, (count,), rng) for cfg, rng in zip(cfgs, rngs)]
        u = [torch.rand(count, generator=rng) for rng in rngs]
        return torch.stack(z), torch.stack(u)

    return draw


def rejection(
    draw: Callable, generate: Callable, log_ratio: Callable, n: int, pilot: int, batch: int
) -> dict:
    """n points per member, each proposal x = G(z) kept with probability min(1, r(x) / M)."""
    log_m = log_ratio(generate(draw(pilot)[0])).amax(1, keepdim=True)
    proposed = []
    kept = []
    above = []
    while not kept or torch.cat(kept, 1).sum(1).min() < n:
        z, u = draw(batch)
        x = generate(z)
        log_r = log_ratio(x)
        proposed.append(x)
        kept.append(torch.log(u) < log_r - log_m)
        above.append(log_r > log_m)
    keep = torch.cat(kept, 1)
    points = torch.cat(proposed, 1)
    used = [int(torch.nonzero(k)[n - 1]) + 1 for k in keep]  # proposals up to the n-th kept
    return {
        "points": torch.stack([p[k][:n] for p, k in zip(points, keep)]),
        "calls_per_point": [u / n for u in used],
        "acceptance": [n / u for u in used],
        "above_bound": [float(a[:u].float().mean()) for a, u in zip(torch.cat(above, 1), used)],
    }


def with_gradient(log_density: Callable) -> Callable:
    """z -> (∇ log density(z), log density(z)) for a density evaluated point by point."""

    def total(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = log_density(z)
        return values.sum(), values

    return grad(total, has_aux=True)


def mala(
    draw: Callable, log_density: Callable, n: int, moving: int, steps: int, step_size: float
) -> dict:
    """n chains per member, started from the generator's prior, each `steps` Langevin moves of
    its first `moving` latent coordinates (the noise, not a code), each move accepted with
    probability min(1, π(z')q(z|z') / π(z)q(z'|z)): π-invariant at any step size."""
    gradient_of = with_gradient(log_density)
    z = draw(n)[0]
    mask = torch.zeros(z.shape[-1])
    mask[:moving] = 1
    slope, value = gradient_of(z)
    accepted = torch.zeros(z.shape[:2])
    for _ in range(steps):
        noise, u = draw(n)
        drift = step_size / 2 * slope * mask
        proposal = z + drift + math.sqrt(step_size) * noise * mask
        new_slope, new_value = gradient_of(proposal)
        back = (z - proposal - step_size / 2 * new_slope * mask).square().sum(-1)
        forth = (proposal - z - drift).square().sum(-1)
        log_accept = new_value - value - (back - forth) / (2 * step_size)
        take = torch.log(u) < log_accept
        z = torch.where(take[..., None], proposal, z)
        slope = torch.where(take[..., None], new_slope, slope)
        value = torch.where(take, new_value, value)
        accepted += take
    return {"latents": z, "acceptance": (accepted / max(steps, 1)).mean(1).tolist()}


# ---- A run's members, sampled and scored ------------------------------------------------------


def member_folders(run: Path) -> list[Path]:
    """The run itself, or its members (an ensemble's seed folders), once they have trained."""
    folders = [m for m in run_folder.members(run) if run_folder.has_params(m)]
    if not folders:
        raise UserError(f"{run} holds no trained generator (generator.pt, or members with one)")
    return folders


def read_result(member: Path, name: str) -> dict:
    """What sample_run wrote of a member (sampled/NAME.json), or {}."""
    return run_folder.read_json(member / "sampled" / f"{name}.json")


def load_members(folders: list[Path]) -> dict:
    """The members' configs, their stacked generators (the sampled average) and critics, and
    their data split as training made it."""
    configs = [run_folder.read_config(f) for f in folders]
    cfgs = [with_added_flags(cfg, cfg["variant"]) for cfg in configs]
    stacked = {
        part: lab5.tree_stack([run_folder.load_params(f, name) for f in folders])
        for part, name in (("generator", "g"), ("critic", "d"))
    }
    points, modes, source = load_data(cfgs[0])
    train, test = split_data(cfgs[0], points, source)
    summaries = [run_folder.read_summary(f) for f in folders]
    return {
        "cfgs": cfgs,
        **stacked,
        "train": train,
        "test": test,
        "modes": modes,
        "floors": [summary["noise_floor"] for summary in summaries],
        "epochs": [summary["epochs_done"] for summary in summaries],
    }


def log_ratio_for(args, run: dict, draw: Callable, generate: Callable, rngs: list) -> Callable:
    """log r: GAN's discriminator logit (--ratio discriminator), or a classifier fitted to
    the training points against fresh generated points at every step."""
    if args.ratio == "discriminator":
        variant = run["cfgs"][0]["variant"]
        if variant != "gan":
            raise UserError(
                f"--ratio discriminator: a {variant} critic's score is not a density ratio; "
                "use --ratio classifier"
            )
        return discriminator_ratio(run["critic"])
    real = torch.as_tensor(run["train"], dtype=torch.float32)

    def fake(count: int) -> torch.Tensor:
        return generate(draw(count)[0])

    return fit_classifier(real, fake, rngs, args.classifier_steps, args.batch, args.lr)


def corrected_points(args, run: dict) -> dict:
    """--points per member by --method, with its acceptance and generator calls per point."""
    rngs = [lab5.make_rng(cfg["seed"], "sample", args.seed) for cfg in run["cfgs"]]
    draw = member_draws(run["cfgs"], rngs)
    generate = partial(vmap(lab5.generator), run["generator"])
    if args.method == "none":
        points = generate(draw(args.points)[0])
        return {"points": points, "calls_per_point": [1.0] * len(points), "log_ratio": None}
    log_ratio = log_ratio_for(args, run, draw, generate, rngs)
    if args.method == "rejection":
        found = rejection(draw, generate, log_ratio, args.points, args.pilot, args.batch_size)
        return {**found, "log_ratio": log_ratio}
    moving = run["cfgs"][0]["noise_dim"]

    def log_density(z: torch.Tensor) -> torch.Tensor:  # of N(z; 0, I) r(G(z)), up to a constant
        return log_ratio(generate(z)) - z[..., :moving].square().sum(-1) / 2

    found = mala(draw, log_density, args.points, moving, args.steps, args.step_size)
    with torch.no_grad():
        points = generate(found["latents"])
    calls = [1.0 + args.steps] * len(points)
    return {"points": points, "calls_per_point": calls, "log_ratio": log_ratio, **found}


def member_scores(points: np.ndarray, run: dict, i: int) -> dict:
    """W1 to the test points (as many points as it has), as a multiple of the noise floor too,
    and on a toy mixture the mode metrics over as many points as training counts."""
    test = run["test"]
    w1 = evaluation.wasserstein1(points[: len(test)], test)
    counted = run["cfgs"][i]["eval_size"] or len(test)
    modes = evaluation.mode_metrics(points[:counted], **run["modes"]) if run["modes"] else {}
    return {"w1": w1, "w1_floor": w1 / run["floors"][i]["w1"], **modes}


def frame_drawer(run: dict, found: dict, method: str) -> Callable:
    """A function (path, member i, its row) that writes member i's frame: its points over log
    r(x) (over nothing with --method none), the test points beside them, W1 in the title. The
    window, the figure and every member's log ratio over it are made once for all members."""
    window = plot_window(np.vstack([run["train"], run["test"]]))
    grid = torch.as_tensor(landscape_grid(window), dtype=torch.float32)
    members = len(run["cfgs"])
    values = torch.zeros(members, len(grid))
    if found["log_ratio"]:
        with torch.no_grad():
            values = found["log_ratio"](grid.expand(members, -1, -1))
    label = "log r(x) = log p_data / p_model" if found["log_ratio"] else "none"
    title = f"{run['cfgs'][0]['variant']} · {method}"
    note = "(colours: its 2nd to 98th percentile where the data is)"
    write = make_frame_writer(window, run["test"], f"{label}\n{note}")
    region = data_region(window, run["test"])

    def draw(path: Path, i: int, row: dict) -> None:
        points = found["points"][i].double().numpy()
        heading = frame_title(title, row["epochs_trained"], row, run["floors"][i])
        scale = colour_range(values[i].numpy(), region)
        run_folder.atomic_write(
            path, lambda tmp: write(tmp, heading, points, values[i].numpy(), scale)
        )

    return draw


def settings(args) -> dict:
    """What decides a sample: every flag but the run's folder."""
    return {k: v for k, v in vars(args).items() if k != "run"}


def result_name(args) -> str:
    return args.method if args.ratio == "classifier" else f"{args.method}-{args.ratio}"


def sample_run(args) -> list[dict]:
    """Sample every member of args.run, write each one's result and frame; returns them."""
    folders = member_folders(args.run)
    run = load_members(folders)
    started = time.process_time()
    with torch.no_grad():
        found = corrected_points(args, run)
    cpu_s = time.process_time() - started
    draw_frame = frame_drawer(run, found, result_name(args))
    results = []
    for i, folder in enumerate(folders):
        points = found["points"][i].double().numpy()
        row = {
            "method": result_name(args),
            "settings": settings(args),
            "cpu_s": cpu_s,  # the whole ensemble's: fitting the ratio and sampling
            "epochs_trained": run["epochs"][i],
            "calls_per_point": found["calls_per_point"][i],
            **{k: found[k][i] for k in ("acceptance", "above_bound") if k in found},
            **member_scores(points, run, i),
        }
        (folder / "sampled").mkdir(exist_ok=True)
        run_folder.write_json(folder / "sampled" / f"{row['method']}.json", row)
        draw_frame(folder / "frames" / f"sampled_{row['method']}.png", i, row)
        results.append(row)
    return results


COLUMNS = ("calls_per_point", "acceptance", "modes", "hq", "reverse_kl", "w1_floor")


def print_results(folders: list[Path], results: list[dict]) -> None:
    print(f"{'':>10}" + "".join(f"{c:>16}" for c in COLUMNS))
    for folder, row in zip(folders, results):
        print(f"{folder.name:>10}" + "".join(f"{cell(row.get(c)):>16}" for c in COLUMNS))
    means = {c: np.mean([r[c] for r in results]) for c in COLUMNS if c in results[0]}
    print(f"{'mean':>10}" + "".join(f"{cell(means.get(c)):>16}" for c in COLUMNS))


def cell(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def parse_args(argv: list[str] | None = None):
    p = strict_parser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder, or an ensemble's")
    p.add_argument("--method", choices=METHODS, default="rejection", help="how to correct")
    p.add_argument(
        "--ratio",
        choices=("classifier", "discriminator"),
        default="classifier",
        help="log r from a classifier fitted after training, or GAN's own discriminator",
    )
    p.add_argument("--points", type=int, default=2500, help="points per member")
    p.add_argument("--seed", type=int, default=0, help="picks the draws (with each member's seed)")
    p.add_argument("--pilot", type=int, default=10_000, help="rejection: proposals that set M")
    p.add_argument("--batch-size", type=int, default=10_000, help="rejection: proposals at once")
    p.add_argument("--steps", type=int, default=50, help="mala: moves per point")
    p.add_argument("--step-size", type=float, default=0.01, help="mala: the moves' variance")
    p.add_argument("--classifier-steps", type=int, default=3000, help="classifier: Adam steps")
    p.add_argument("--batch", type=int, default=1024, help="classifier: points of each kind")
    p.add_argument("--lr", type=float, default=1e-3, help="classifier: Adam's learning rate")
    args = p.parse_args(argv)
    for name in ("points", "pilot", "batch_size", "steps", "classifier_steps", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    if not args.step_size > 0 or not args.lr > 0:
        p.error("--step-size and --lr must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        results = sample_run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_results(member_folders(args.run), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
