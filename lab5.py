"""lab5: GAN, WGAN and WGAN-GP learn a 2-D point cloud, in functional PyTorch.

Top to bottom as the data flows: data, models, objectives, optimisers, step, ensembles, loop, a
run. Parameters are dicts run through torch.func.functional_call, gradients come from
torch.func.grad, optimisers are pure init/update pairs, and the step (state, batch) -> (state,
metrics) is vmapped over an ensemble (one model is an ensemble of one) and compiled once. All
randomness is drawn outside the step from seeded generators, like JAX keys. The flags are
config.py's, what a run writes recording/'s, the pictures plots/'.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap

import config
import hardware
from data.points import TOY_DATA, load_points, split_points, toy_points
from errors import UserError
from plots.frames import landscape_grid, make_frame_writer, plot_window
from recording import console, endings, recorder
from recording.files import FolderUnwritable
from recording.folder import open_run_dirs, unlocked_after, write_configs
from recording.metrics import NEIGHBOURS
from recording.run import Run

# ---- Data. One seeded generator per purpose, like splitting a JAX key: drawing more numbers for
# one purpose (frames, say) never shifts those of another (the batches). ----------------------

STREAMS = ("split", "init", "train", "eval", "floor", "toy", "sample")


def make_rng(seed: int, stream: str, *more: int) -> torch.Generator:
    words = np.random.SeedSequence([seed, STREAMS.index(stream), *more]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def load_data(cfg: dict) -> tuple[np.ndarray, dict | None, str]:
    """The points, the mixture's modes when the data is a built-in mixture, and a name."""
    if cfg["data"] in TOY_DATA:
        modes = TOY_DATA[cfg["data"]]
        modes = modes and {"means": np.array(modes["means"], float), "std": modes["std"]}
        points = toy_points(cfg["data"], make_rng(cfg["data_seed"], "toy"), cfg["toy_size"])
        return points, modes, cfg["data"]
    points, source = load_points(cfg["data"], cfg["key"], cfg["delimiter"])
    return points, None, source


def split_data(cfg: dict, points: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    rng = make_rng(cfg["data_seed"], "split")
    batch = (cfg["batch_size"], cfg["n_critic"])
    fewest = NEIGHBOURS + 1  # the precision and recall need a k-th nearest neighbour
    return split_points(points, cfg["train_size"], cfg["test_size"], rng, source, fewest, batch)


# ---- Models: MLPs, by default the report's noise_dim -> 256 -> 64 -> 2 and 2 -> 256 -> 64 -> 1


def generator_sizes(cfg: dict) -> tuple[int, ...]:
    return (cfg["noise_dim"] + cfg.get("codes", 0), *cfg["hidden"], 2)


def draw_latent(cfg: dict, shape: tuple, rng: torch.Generator) -> torch.Tensor:
    """The generator's input: z ~ N(0, I) and, with --codes K, a one-hot of a uniform code beside
    it (a jump between modes, where a map of z alone must cross the gap; none: no more draws)."""
    z = torch.randn(*shape, cfg["noise_dim"], generator=rng)
    if not cfg.get("codes"):
        return z
    codes = torch.randint(cfg["codes"], shape, generator=rng)
    return torch.cat([z, F.one_hot(codes, cfg["codes"]).to(z.dtype)], dim=-1)


def critic_sizes(cfg: dict) -> tuple[int, ...]:
    return (2, *(cfg.get("critic_hidden") or cfg["hidden"]), 1)


def torch_module(sizes: tuple[int, ...], sigmoid: bool = False, device=None) -> nn.Sequential:
    """The plain nn.Sequential(Linear, ReLU, ..., Linear[, Sigmoid]) whose state_dict keys
    ('0.weight', ..., '4.bias') our parameter dicts use, and which loads them."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, device=device), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([nn.Sigmoid()] if sigmoid else []))


# What functional_call runs our dicts through, on the meta device so they hold no numbers: it
# swaps its tensors for ours and nn.Linear reads only weight and bias, so a skeleton serves any
# network of its depth at any width. Built here: torch.compile cannot trace an nn.Parameter.
SKELETONS = {
    n: torch_module((1,) * (n + 2), device="meta") for n in range(1, config.MAX_HIDDEN + 1)
}


def mlp(params: dict, x: torch.Tensor) -> torch.Tensor:
    return functional_call(SKELETONS[len(params) // 2 - 1], params, (x,))


def generator(g_params: dict, z: torch.Tensor) -> torch.Tensor:
    return mlp(g_params, z)


def critic(d_params: dict, x: torch.Tensor) -> torch.Tensor:
    """The score per point: for GAN the logit of D(x) (its Sigmoid holds no parameters to save)."""
    return mlp(d_params, x).squeeze(-1)


def init_layer(fan_in: int, fan_out: int, rng, scheme: str, dtype) -> tuple:
    if scheme == "torch":  # nn.Linear's kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))
        bound = fan_in**-0.5
        w = (2 * torch.rand(fan_out, fan_in, generator=rng, dtype=dtype) - 1) * bound
        b = (2 * torch.rand(fan_out, generator=rng, dtype=dtype) - 1) * bound
        return w, b
    if scheme == "kaiming":  # He et al. for ReLU layers: keeps activations' scale
        w = torch.randn(fan_out, fan_in, generator=rng, dtype=dtype) * math.sqrt(2 / fan_in)
        return w, torch.zeros(fan_out, dtype=dtype)
    raise ValueError(f"unknown init scheme {scheme!r}")


def init_mlp(sizes: tuple[int, ...], rng, scheme: str = "torch", dtype=torch.float32) -> dict:
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        weight, bias = init_layer(fan_in, fan_out, rng, scheme, dtype)
        params[f"{2 * i}.weight"] = weight
        params[f"{2 * i}.bias"] = bias
    return params


# ---- Objectives: the three variants differ here and in update_critic's clipping --------------


def gradient_penalty(d_params: dict, real, fake, eps) -> torch.Tensor:
    """E[(‖∇ₓ D(x̂)‖₂ − 1)²] on x̂ = εx + (1 − ε)G(z). Rows do not interact, so the gradient of
    the summed scores is every row's ∇ₓ D. torch.func.grad inside the parameter gradient
    differentiates twice and compiles (autograd.grad(create_graph=True) + .backward() does not)."""
    x_hat = eps * real + (1 - eps) * fake
    grad_x = grad(lambda x: critic(d_params, x).sum())(x_hat)
    return ((torch.linalg.vector_norm(grad_x, dim=-1) - 1) ** 2).mean()


def critic_loss(d_params: dict, real, fake, eps, hyper: dict, variant: str):
    real_score = critic(d_params, real)
    fake_score = critic(d_params, fake)
    if variant == "gan":  # −[log D(x) + log(1 − D(G(z)))], from the logits: never log(0)
        loss = -(F.logsigmoid(real_score).mean() + F.logsigmoid(-fake_score).mean())
    else:  # −(E D(x) − E D(G(z))): maximise the critic's estimate of the Wasserstein-1 distance
        loss = fake_score.mean() - real_score.mean()
    aux = {}
    if variant == "wgan_gp":
        aux["penalty"] = gradient_penalty(d_params, real, fake, eps)
        loss = loss + hyper["gp_weight"] * aux["penalty"]
    return loss, {"d_loss": loss, **aux}


def generator_loss(g_params: dict, d_params: dict, z, variant: str, gan_loss: str = "minimax"):
    fake_score = critic(d_params, generator(g_params, z))
    if variant != "gan":
        return -fake_score.mean()
    if gan_loss == "minimax":  # minimise log(1 − D(G(z))), the report's objective
        return F.logsigmoid(-fake_score).mean()
    return -F.logsigmoid(fake_score).mean()  # maximise log D(G(z)): strong gradients early on


def clip_params(params: dict, c: torch.Tensor) -> dict:
    return {k: v.clamp(-c, c) for k, v in params.items()}


# ---- Optimisers: pure init/update pairs (optax style) whose numbers match torch.optim. The
# learning rate lives in the state as a tensor, so changing it recompiles nothing. ------------


class Optimizer(NamedTuple):
    init: Callable  # (params, lr) -> state
    update: Callable  # (grads, state, params) -> (params, state)


def tree_map(f: Callable, *trees):
    """f over the leaves of (nested) dicts with the same keys."""
    if isinstance(trees[0], dict):
        return {k: tree_map(f, *(t[k] for t in trees)) for k in trees[0]}
    return f(*trees)


def lr_state(params: dict, lr) -> torch.Tensor:
    like = next(iter(params.values()))
    return torch.as_tensor(lr, dtype=like.dtype, device=like.device)


def with_weight_decay(grads: dict, params: dict, weight_decay: float) -> dict:
    if not weight_decay:
        return grads
    return tree_map(lambda g, p: g + weight_decay * p, grads, params)


def sgd(momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """p ← p − lr·v with v = μv + g (v = g without momentum, g + μv with Nesterov's)."""

    def init(params, lr):
        state = {"lr": lr_state(params, lr)}
        if momentum:  # a zero buffer makes the first step buf = g, as torch.optim's clone does
            state["momentum_buffer"] = tree_map(torch.zeros_like, params)
        return state

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        state = dict(state)
        if momentum:
            buf = tree_map(lambda b, g: momentum * b + g, state["momentum_buffer"], grads)
            state["momentum_buffer"] = buf
            grads = tree_map(lambda g, b: g + momentum * b, grads, buf) if nesterov else buf
        return tree_map(lambda p, g: p - state["lr"] * g, params, grads), state

    return Optimizer(init, update)


def rmsprop(alpha=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0) -> Optimizer:
    """s ← αs + (1 − α)g²; p ← p − lr·g / (√(s − ḡ²) + ε), ḡ the mean gradient if centered."""

    def init(params, lr):
        state = {"lr": lr_state(params, lr), "square_avg": tree_map(torch.zeros_like, params)}
        if centered:
            state["grad_avg"] = tree_map(torch.zeros_like, params)
        if momentum:
            state["momentum_buffer"] = tree_map(torch.zeros_like, params)
        return state

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        state = dict(state)
        sq = tree_map(lambda s, g: alpha * s + (1 - alpha) * g * g, state["square_avg"], grads)
        state["square_avg"] = sq
        if centered:
            grad_avg = tree_map(lambda a, g: a + (1 - alpha) * (g - a), state["grad_avg"], grads)
            state["grad_avg"] = grad_avg
            sq = tree_map(lambda s, a: s - a * a, sq, grad_avg)
        step = tree_map(lambda g, s: g / (s.sqrt() + eps), grads, sq)
        if momentum:
            step = tree_map(lambda b, s: momentum * b + s, state["momentum_buffer"], step)
            state["momentum_buffer"] = step
        return tree_map(lambda p, s: p - state["lr"] * s, params, step), state

    return Optimizer(init, update)


def adam(betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """m, v: decaying means of g and g²; p ← p − lr·m̂ / (√v̂ + ε), m̂ and v̂ bias-corrected."""
    b1, b2 = betas

    def init(params, lr):
        zeros = partial(tree_map, torch.zeros_like, params)
        step = torch.zeros_like(lr_state(params, 0))
        return {"lr": lr_state(params, lr), "step": step, "exp_avg": zeros(), "exp_avg_sq": zeros()}

    def update(grads, state, params):
        grads = with_weight_decay(grads, params, weight_decay)
        step = state["step"] + 1
        m = tree_map(lambda m, g: m + (1 - b1) * (g - m), state["exp_avg"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["exp_avg_sq"], grads)
        step_size = state["lr"] / (1 - b1**step)
        root = (1 - b2**step).sqrt()
        new = tree_map(lambda p, m, v: p - step_size * m / (v.sqrt() / root + eps), params, m, v)
        return new, {"lr": state["lr"], "step": step, "exp_avg": m, "exp_avg_sq": v}

    return Optimizer(init, update)


def make_optimizer(cfg: dict) -> Optimizer:
    if cfg["optimizer"] == "sgd":
        return sgd(cfg["momentum"], cfg["nesterov"], cfg["weight_decay"])
    if cfg["optimizer"] == "rmsprop":
        return rmsprop(
            cfg["rms_alpha"], cfg["opt_eps"], cfg["momentum"], cfg["centered"], cfg["weight_decay"]
        )
    return adam(cfg["betas"], cfg["opt_eps"], cfg["weight_decay"])


# ---- The training step ------------------------------------------------------------------------


def init_state(cfg: dict, rng: torch.Generator, device, dtype=torch.float32) -> dict:
    """Both networks, both optimiser states, the generator's moving average and the
    hyper-parameters as tensors (changing them recompiles nothing): all a step reads and writes."""
    opt = make_optimizer(cfg)
    g = init_mlp(generator_sizes(cfg), rng, cfg["init"], dtype)
    d = init_mlp(critic_sizes(cfg), rng, cfg.get("critic_init") or cfg["init"], dtype)
    g = tree_map(lambda t: t.to(device), g)
    d = tree_map(lambda t: t.to(device), d)
    # the learning rate lives in the optimisers' states; the average starts at step ema_first
    values = {k: cfg[k] for k in config.PER_MEMBER if k in cfg and k != "lr"}
    values["ema_first"] = (cfg["ema_start"] - 1) * cfg.get("steps_per_epoch", 1) + 1
    hyper = {k: torch.tensor(float(v), dtype=dtype, device=device) for k, v in values.items()}
    ema = {"g": tree_map(torch.clone, g), "steps": torch.zeros_like(hyper["ema"])}
    optimisers = {"g_opt": opt.init(g, cfg["lr"]), "d_opt": opt.init(d, cfg["lr"])}
    return {"g": g, "d": d, **optimisers, "hyper": hyper, "ema": ema}


def update_average(ema: dict, g: dict, hyper: dict) -> dict:
    """The generator's average, G_ema ← βG_ema + (1 − β)G after every step from step ema_first
    (before it, a copy of G): sampled and saved, never trained."""
    steps = ema["steps"] + 1
    decay = torch.where(steps > hyper["ema_first"], hyper["ema"], 0.0)
    return {"g": tree_map(lambda a, p: decay * a + (1 - decay) * p, ema["g"], g), "steps": steps}


def make_train_step(cfg: dict) -> Callable:
    """The pure step (state, batch) -> (state, metrics). batch: real (n_critic, B, 2), z_critic
    (n_critic, B, noise_dim), eps (n_critic, B, 1), z_gen (B, noise_dim)."""
    opt = make_optimizer(cfg)
    d_grad = grad(partial(critic_loss, variant=cfg["variant"]), has_aux=True)
    gan_loss = cfg.get("gan_loss", "minimax")
    g_grad = grad_and_value(partial(generator_loss, variant=cfg["variant"], gan_loss=gan_loss))

    def update_critic(state, g, batch):
        """The state's critic after its n_critic updates against generator g."""
        d = state["d"]
        d_opt = state["d_opt"]
        losses = []
        for k in range(cfg["n_critic"]):  # each critic update on its own real batch and noise
            fake = generator(g, batch["z_critic"][k])
            grads, aux = d_grad(d, batch["real"][k], fake, batch["eps"][k], state["hyper"])
            d, d_opt = opt.update(grads, d_opt, d)
            if cfg["variant"] == "wgan":  # the Lipschitz constraint, by brute force
                d = clip_params(d, state["hyper"]["clip"])
            losses.append(aux)
        return d, d_opt, tree_map(lambda *m: sum(m) / len(m), *losses)

    def update_generator(state, d, z):
        grads, loss = g_grad(state["g"], d, z)
        return *opt.update(grads, state["g_opt"], state["g"]), loss

    def train_step(state, batch):
        # Which version of the other network each update sees is all that the orders change.
        if cfg["order"] == "d-first":
            d, d_opt, aux = update_critic(state, state["g"], batch)
            g, g_opt, loss = update_generator(state, d, batch["z_gen"])
        else:  # g-first: the critic sees the updated G; simultaneous (the report's code): G as was
            g, g_opt, loss = update_generator(state, state["d"], batch["z_gen"])
            seen = g if cfg["order"] == "g-first" else state["g"]
            d, d_opt, aux = update_critic(state, seen, batch)
        ema = update_average(state["ema"], g, state["hyper"])
        new = {**state, "g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "ema": ema}
        return new, {"g_loss": loss, **aux}

    return train_step


# ---- Ensembles: models vmapped over stacked states, each drawing from its own seed's streams


def tree_stack(trees: list, dim: int = 0):
    if isinstance(trees[0], dict):
        return {k: tree_stack([t[k] for t in trees], dim) for k in trees[0]}
    return torch.stack(trees, dim)


def tree_index(tree, i: int):
    return tree_map(lambda x: x[i], tree)


def init_members(members: list[dict], device, dtype=torch.float32) -> dict:
    return tree_stack([init_state(m, make_rng(m["seed"], "init"), device, dtype) for m in members])


def epoch_batches(points: torch.Tensor, cfg: dict, steps: int, rng, device) -> dict:
    """One epoch of randomness, drawn at once outside the step: the training points reshuffled
    into `steps` groups of n_critic full batches (the last 7000 mod 64 = 24 sit it out: fixed
    shapes never recompile), and all the noise."""
    shape = (steps, cfg["n_critic"], cfg["batch_size"])
    order = torch.randperm(len(points), generator=rng)[: math.prod(shape)]
    batches = {
        "real": points[order].reshape(*shape, 2),
        "z_critic": draw_latent(cfg, shape, rng),
        "eps": torch.rand(*shape, 1, generator=rng),
        "z_gen": draw_latent(cfg, (steps, cfg["batch_size"]), rng),
    }
    return {k: v.to(device) for k, v in batches.items()}


def members_batches(points: torch.Tensor, members: list[dict], steps: int, rngs, device) -> dict:
    """Every member's epoch of batches, stacked on dimension 1 (batches[k][step][member])."""
    epochs = [epoch_batches(points, m, steps, rng, device) for m, rng in zip(members, rngs)]
    return tree_stack(epochs, dim=1)


# ---- The loop: training only; what is recorded of each epoch is sent away --------------------


def compile_step(step: Callable, device="cpu") -> Callable:
    """torch.compile the step as one graph with static shapes: on CUDA replayed as a CUDA graph
    (one launch per step), on the CPU with its kernels called from generated C++. All steps share
    one code object, whose versions dynamo counts: each model of a process starts a new cache."""
    torch._dynamo.reset()
    if torch.device(device).type != "cuda":
        return torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
    options = {"triton.cudagraphs": True}
    graphed = torch.compile(step, fullgraph=True, dynamic=False, options=options)

    def replay(state, batch):
        # A replay's outputs live in memory that the next replay overwrites, and the next step
        # takes this one's state: what a step returns is copied out of the graph's memory.
        torch.compiler.cudagraph_mark_step_begin()
        new_state, losses = graphed(state, batch)
        return tree_map(torch.clone, new_state), tree_map(torch.clone, losses)

    return replay


def fast_calls(step: Callable) -> Callable:
    """The compiled step's inputs never change shape, dtype or structure after its first call
    (the tests hold whole runs to one graph, guards checked): its guards go unchecked."""

    def call(state, batch):
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return step(state, batch)

    return call


def run_epoch(step: Callable, state: dict, batches: dict, steps: int) -> tuple[dict, dict]:
    """`steps` steps; the losses come back once, as epoch means per member: no step waits."""
    history = []
    for i in range(steps):
        state, losses = step(state, {k: v[i] for k, v in batches.items()})
        history.append(losses)
    return state, {k: torch.stack([m[k] for m in history]).mean(0).cpu() for k in history[0]}


def healthy_members(losses: dict, state: dict) -> torch.Tensor:
    """Per member: are its epoch's losses and its parameters all finite?"""
    leaves = [*losses.values(), *state["g"].values(), *state["d"].values()]
    return torch.stack([x.isfinite().reshape(len(x), -1).all(1).cpu() for x in leaves]).all(0)


class Diverged(Exception):
    """Some members' losses or parameters stopped being finite; args[0] names them."""


def snapshot(epoch: int, state: dict, losses: dict, seconds: float, rngs: list) -> dict:
    """What the recorder needs of an epoch, as NumPy copies (small, pickled by value): for the
    checkpoint, the whole state and where every member's random stream stands."""
    arrays = tree_map(lambda t: t.detach().cpu().numpy().copy(), {"state": state, "losses": losses})
    streams = np.stack([r.get_state().numpy() for r in rngs])
    return {"epoch": epoch, "seconds": seconds, "rngs": streams, **arrays}


def start_point(run: Run) -> tuple[dict, list, dict]:
    """The state and random streams that training starts from, and the epoch to record first:
    the initialisation (epoch 0), or where the checkpoint of a resumed run left off."""
    saved = run.checkpoint
    if saved is None:
        state = init_members(run.members, run.device)
        rngs = [make_rng(m["seed"], "train") for m in run.members]
        return state, rngs, snapshot(0, state, {}, 0.0, rngs)
    rngs = [torch.Generator().set_state(torch.from_numpy(r)) for r in saved["rngs"]]
    state = tree_map(lambda a: torch.from_numpy(a).to(run.device), saved["state"])
    return state, rngs, {**saved, "resumed": True}


def warm_up(run: Run, step: Callable, state: dict, points: torch.Tensor) -> float:
    """One step on throw-away noise, so that compiling is timed apart from training."""
    started = time.perf_counter()
    rngs = [torch.Generator().manual_seed(0) for _ in run.members]
    batches = members_batches(points, run.members, 1, rngs, run.device)
    step(state, {k: v[0] for k, v in batches.items()})
    return time.perf_counter() - started


def with_hyper(state: dict, values: list[dict]) -> dict:
    """The state with each member's values for the coming epoch (both optimisers' lr, or one of
    state["hyper"]), a tensor each: a tensor shared by two inputs would recompile the step."""
    state = {**state, **{k: dict(state[k]) for k in ("g_opt", "d_opt", "hyper")}}
    like = state["hyper"]["ema"]
    for name in values[0]:
        value = torch.tensor([v[name] for v in values], dtype=like.dtype, device=like.device)
        for part in ("g_opt", "d_opt") if name == "lr" else ("hyper",):
            state[part][name] = value.clone()
    return state


def compiled_or_eager(run: Run, step: Callable, state: dict, points) -> tuple[Callable, dict]:
    """The step compiled, its compile timed apart on a throw-away step; where compiling fails (no
    C++ compiler, no Triton for the GPU, an inductor error), the step uncompiled, and why."""
    try:
        compiled = compile_step(step, run.device)
        seconds = warm_up(run, compiled, state, points)
    except Exception as e:  # noqa: BLE001 - whatever failed, the uncompiled step computes the same
        torch._dynamo.reset()
        reason = f"{type(e).__name__}: {str(e).strip()}".strip(": ").splitlines()[0]
        return step, {"warm_up_s": 0.0, "compile_failed": reason}
    return fast_calls(compiled), {"warm_up_s": seconds}


def train_epochs(run: Run, send: Callable) -> None:
    """Initialise, compile (timed apart), then every epoch, each sent on once it is finite."""
    cfg = run.cfg
    points = torch.as_tensor(run.train, dtype=torch.float32)
    state, rngs, first = start_point(run)
    send(first)
    step = vmap(make_train_step(cfg))
    if run.compiles:
        step, message = compiled_or_eager(run, step, state, points)
        send(message)
    for epoch in range(first["epoch"] + 1, cfg["epochs"] + 1):
        started = time.perf_counter()
        state = with_hyper(state, [config.scheduled(m, epoch) for m in run.members])
        batches = members_batches(points, run.members, run.steps, rngs, run.device)
        new_state, losses = run_epoch(step, state, batches, run.steps)
        seconds = time.perf_counter() - started
        healthy = healthy_members(losses, new_state)
        if not healthy.all():
            raise Diverged([name for name, ok in zip(run.names, healthy) if not ok])
        state = new_state
        send(snapshot(epoch, state, losses, seconds, rngs))


# ---- A run: config -> data -> recorder -> training loop -> summary ---------------------------


def uncompiled_because(cfg: dict, placement: hardware.Placement) -> str | None:
    if cfg["no_compile"]:
        return "--no-compile"
    return None if placement.compiles else placement.note


def prepare_run(cfg: dict) -> Run:
    """Everything both processes need to know of a run, worked out once."""
    placement = hardware.place(cfg["device"], hardware.gpu_facts(), not cfg["no_compile"])
    if placement.note:  # a GPU not used, or not compiled for
        print(f"note: {placement.note}", flush=True)
    points, modes, source = load_data(cfg)
    train_points, test = split_data(cfg, points, source)
    steps = len(train_points) // (cfg["batch_size"] * cfg["n_critic"])
    members = config.member_configs({**cfg, "steps_per_epoch": steps})  # for --ema-start
    names = [config.member_name(m, cfg) for m in members]
    folder, member_dirs, checkpoint = open_run_dirs(cfg, names)
    n_eval = max(len(test), cfg["eval_size"])  # the fixed noise each member is scored on
    eval_z = [draw_latent(m, (n_eval,), make_rng(m["seed"], "eval")) for m in members]
    window = plot_window(np.vstack([train_points, test]))
    title = config.TITLES[cfg["variant"]]
    run = Run(
        cfg=cfg,
        members=members,
        names=names,
        device=torch.device(placement.device),
        compiles=placement.compiles and not cfg["no_compile"],
        uncompiled_because=uncompiled_because(cfg, placement),
        source=source,
        train=train_points,
        test=test,
        modes=modes,
        steps=steps,
        folder=folder,
        member_dirs=member_dirs,
        checkpoint=checkpoint,
        started=time.time(),
        eval_z=eval_z,
        floor_seed=make_rng(cfg["data_seed"], "floor").initial_seed(),
        landscape=torch.as_tensor(landscape_grid(window), dtype=torch.float32),
        generator=generator,
        critic=critic,
        draw_frames=partial(make_frame_writer, window, test, title, cfg["variant"] == "gan"),
    )
    write_configs(run)
    return run


def train(cfg: dict, start_recorder: Callable = recorder.start_in_worker) -> dict:
    """Train the model, or the ensemble, that cfg describes and write the run folder; returns
    its summary. An interrupted or diverged run keeps everything up to its last good epoch; a
    folder that cannot be written raises FolderUnwritable, with what it keeps."""
    run = prepare_run(cfg)
    print(console.start_message(run), flush=True)
    writer = start_recorder(run)
    progress = console.progress(run)  # a bar once training starts, after compiling
    end = {"status": "failed"}  # stays only if a bug stops the run

    def send(message: dict) -> None:
        with endings.interrupts_held():
            progress.show(writer.send(message), message)

    try:
        torch.set_num_threads(cfg["threads"] or torch.get_num_threads())
        print(console.compile_message(run), flush=True)
        train_epochs(run, send)
        end = {"status": "completed"}
    except Diverged as e:
        end = {"status": "diverged", "diverged_members": e.args[0]}
    except KeyboardInterrupt as e:
        name = signal.Signals(endings.signal_number(e)).name
        end = {"status": "interrupted", "stopped_by": name}
    finally:
        progress.close()
        with unlocked_after(run.folder), endings.interrupts_held():
            for line in writer.finish(end):
                console.say(None, line)
    summary = json.loads((run.folder / "summary.json").read_text())
    if end["status"] != "failed":
        console.print_end(summary, run.folder, cfg["variant"])
    return summary


# a bug exits 1; an interrupted run 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)
EXIT_CODES = {"completed": 0, "usage": 2, "diverged": 3, "unwritable": 4}


def exit_code(summary: dict) -> int:
    if summary["status"] == "interrupted":
        return 128 + signal.Signals[summary["stopped_by"] or "SIGINT"]
    return EXIT_CODES[summary["status"]]


def main(variant: str, argv: list[str] | None = None) -> int:
    """Entry point of the variant scripts; returns the exit status (EXIT_CODES)."""
    endings.end_with_driver()
    try:
        with endings.signals_stop_the_run():
            summary = train(config.parse_config(variant, argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except FolderUnwritable as e:
        print(f"error: {console.unwritable_line(e, variant)}", file=sys.stderr)
        return EXIT_CODES["unwritable"]
    except (
        KeyboardInterrupt
    ) as e:  # before the first epoch: the run folder holds at most its config
        print("interrupted", file=sys.stderr)
        return 128 + endings.signal_number(e)
    return exit_code(summary)
