"""lab5: GAN, WGAN and WGAN-GP learn a 2-D point cloud, in functional PyTorch: the library.

Top to bottom as the data flows: random streams, models, objectives, optimisers, the step,
ensembles, the loop. Parameters are dicts run through torch.func.functional_call, gradients come
from torch.func.grad, optimisers are pure init/update pairs, the step (state, batch) -> (state,
metrics) is vmapped over an ensemble (one model is an ensemble of one), scanned over an epoch's
batches and compiled once, and all randomness is drawn outside it from seeded generators, like
JAX keys. train() is the loop, a generator of epochs that its caller drives: harness/ parses
flags and records each epoch.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops.scan import scan
from torch.func import functional_call, grad, grad_and_value, vmap

MAX_HIDDEN = 8  # hidden layers a network may have
HYPER = ("lr", "clip", "gp_weight", "ema")  # tensors in the state: a new value recompiles nothing

# ---- Random streams: one seeded generator per purpose, like splitting a JAX key: drawing more
# numbers for one purpose (frames, say) never shifts those of another (the batches). ----------

STREAMS = ("split", "init", "train", "eval", "floor", "toy", "sample")


def make_rng(seed: int, stream: str, *more: int) -> torch.Generator:
    words = np.random.SeedSequence([seed, STREAMS.index(stream), *more]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


# ---- Models: MLPs, by default the report's noise_dim -> 256 -> 64 -> 2 and 2 -> 256 -> 64 -> 1


def generator_sizes(cfg: dict) -> tuple[int, ...]:
    return (cfg["noise_dim"] + cfg.get("codes", 0), *cfg["hidden"], 2)


def draw_latent(cfg: dict, shape: tuple, rng: torch.Generator) -> torch.Tensor:
    """z ~ N(0, I) and, with codes K, a one-hot of a uniform code beside it (a jump between
    modes, where a map of z alone must cross the gap); without codes, no more draws."""
    z = torch.randn(*shape, cfg["noise_dim"], generator=rng)
    if not cfg.get("codes"):
        return z
    codes = torch.randint(cfg["codes"], shape, generator=rng)
    return torch.cat([z, F.one_hot(codes, cfg["codes"]).to(z.dtype)], dim=-1)


def critic_sizes(cfg: dict) -> tuple[int, ...]:
    return (2, *(cfg.get("critic_hidden") or cfg["hidden"]), 1)


def torch_module(sizes: tuple[int, ...], sigmoid: bool = False, device=None) -> nn.Sequential:
    """nn.Sequential(Linear, ReLU, ..., Linear[, Sigmoid]): our dicts' keys are its state_dict's."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, device=device), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([nn.Sigmoid()] if sigmoid else []))


# What functional_call runs our dicts through, on the meta device so they hold no numbers: it
# swaps its tensors for ours and nn.Linear reads only weight and bias, so a skeleton serves any
# network of its depth at any width. Built here: torch.compile cannot trace an nn.Parameter.
SKELETONS = {n: torch_module((1,) * (n + 2), device="meta") for n in range(1, MAX_HIDDEN + 1)}


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


# ---- Objectives: the three variants differ here and in update_critic's clipping ------------


def gradient_penalty(d_params: dict, real, fake, eps) -> dict:
    """E[(‖∇ₓ D(x̂)‖₂ − 1)²] on x̂ = εx + (1 − ε)G(z), and the mean slope ‖∇ₓ D(x̂)‖₂ it pulls to 1.
    Rows do not interact: the summed scores' gradient is every row's ∇ₓ D. A torch.func.grad in
    the parameter gradient compiles (autograd.grad(create_graph=True) + .backward() does not)."""
    x_hat = eps * real + (1 - eps) * fake
    grad_x = grad(lambda x: critic(d_params, x).sum())(x_hat)
    slopes = torch.linalg.vector_norm(grad_x, dim=-1)
    return {"penalty": ((slopes - 1) ** 2).mean(), "slope": slopes.mean()}


def critic_loss(d_params: dict, real, fake, eps, hyper: dict, variant: str):
    real_score = critic(d_params, real)
    fake_score = critic(d_params, fake)
    if variant == "gan":  # −[log D(x) + log(1 − D(G(z)))], from the logits: never log(0)
        loss = -(F.logsigmoid(real_score).mean() + F.logsigmoid(-fake_score).mean())
    else:  # −(E D(x) − E D(G(z))): maximise the critic's estimate of the Wasserstein-1 distance
        loss = fake_score.mean() - real_score.mean()
    aux = {}
    if variant == "wgan_gp":
        aux = gradient_penalty(d_params, real, fake, eps)
        loss = loss + hyper["gp_weight"] * aux["penalty"]
    return loss, {"d_loss": loss, **aux}


def generator_loss(g_params: dict, d_params: dict, z, variant: str, gan_loss: str = "minimax"):
    fake_score = critic(d_params, generator(g_params, z))
    if variant != "gan":
        return -fake_score.mean()
    if gan_loss == "minimax":  # minimise log(1 − D(G(z))), the report's objective
        return F.logsigmoid(-fake_score).mean()
    return -F.logsigmoid(fake_score).mean()  # maximise log D(G(z)): strong gradients early on


# ---- Optimisers: pure init/update pairs (optax style) whose numbers match torch.optim ------


class Optimizer(NamedTuple):
    init: Callable  # (params, lr) -> state
    update: Callable  # (grads, state, params) -> (params, state)


def tree_map(f: Callable, *trees):
    """f over the leaves of (nested) dicts with the same keys."""
    if isinstance(trees[0], dict):
        return {k: tree_map(f, *(t[k] for t in trees)) for k in trees[0]}
    return f(*trees)


def lr_state(params: dict, lr) -> torch.Tensor:
    """The learning rate, a tensor in the optimiser's state: a new value recompiles nothing."""
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
    g = tree_map(lambda t: t.to(device), init_mlp(generator_sizes(cfg), rng, cfg["init"], dtype))
    d_init = cfg.get("critic_init") or cfg["init"]
    d = tree_map(lambda t: t.to(device), init_mlp(critic_sizes(cfg), rng, d_init, dtype))
    # the learning rate lives in the optimisers' states; the average starts at step ema_first
    values = {k: cfg[k] for k in HYPER if k in cfg and k != "lr"}
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

    def update_critic(state, g, batch):  # the critic after its n_critic updates against g
        d = state["d"]
        d_opt = state["d_opt"]
        clip = state["hyper"].get("clip")
        losses = []
        for k in range(cfg["n_critic"]):  # each critic update on its own real batch and noise
            fake = generator(g, batch["z_critic"][k])
            grads, aux = d_grad(d, batch["real"][k], fake, batch["eps"][k], state["hyper"])
            d, d_opt = opt.update(grads, d_opt, d)
            if cfg["variant"] == "wgan":  # the Lipschitz constraint, by brute force: clipping
                d = tree_map(lambda w: w.clamp(-clip, clip), d)
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


def init_members(members: list[dict], device, dtype=torch.float32) -> dict:
    return tree_stack([init_state(m, make_rng(m["seed"], "init"), device, dtype) for m in members])


def epoch_batches(points: torch.Tensor, cfg: dict, steps: int, rng, device) -> dict:
    """One epoch of randomness, drawn outside the step: the points reshuffled into `steps` groups
    of n_critic full batches (the rest sit it out: fixed shapes never recompile), and the noise."""
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


# ---- The epoch: the step over an epoch's batches, step by step or as one compiled scan ------


def stepwise(step: Callable) -> Callable:
    """The epoch as a call of `step` per batch (the reference, and the uncompiled path); the
    losses come back once, stacked (steps × members): no step waits."""

    def epoch(state: dict, batches: dict) -> tuple[dict, dict]:
        history = []
        for i in range(len(batches["z_gen"])):
            state, losses = step(state, {k: v[i] for k, v in batches.items()})
            history.append(losses)
        return state, {k: torch.stack([m[k] for m in history]) for k in history[0]}

    return epoch


def passed_on(state: dict) -> dict:
    """Fresh copies of what a step passes on unchanged (hyper-parameters, learning rates): a
    scanned step may not return an input. Compiled, the copies are optimised away."""
    rates = {k: {**state[k], "lr": state[k]["lr"].clone()} for k in ("g_opt", "d_opt")}
    return {**state, **rates, "hyper": tree_map(torch.clone, state["hyper"])}


def scanned(step: Callable) -> Callable:
    """The same epoch as one scan over the batches (JAX's lax.scan): compiled, the whole epoch
    is one graph and one call, its loop in C++."""

    def one_step(state: dict, batch: dict) -> tuple[dict, dict]:
        state, losses = step(state, batch)
        return passed_on(state), losses

    def epoch(state: dict, batches: dict) -> tuple[dict, dict]:
        return scan(one_step, state, batches)

    return epoch


def compile_step(step: Callable, device="cpu") -> Callable:
    """torch.compile the step as one graph with static shapes, replayed as a CUDA graph on CUDA;
    the cache is reset first, as dynamo counts all steps' versions against one code object."""
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


# The C++ wrapper runs the scan's loop in C++ (far faster than Python's), built apart from the
# kernels (a shorter cold compile). Inductor caches no graph with a higher-order op unless told;
# a scan's body is a subgraph in the graph's cache key, so it may (BENCHMARKS.md: compile times).
SCAN_OPTIONS = {
    "cpp_wrapper": True,
    "cpp_wrapper_build_separate": True,
    "unsafe_marked_cacheable_functions": {"torch.ops.higher_order.scan": torch.__version__},
}


def compile_epoch(step: Callable, device="cpu") -> Callable:
    """The epoch compiled: on the CPU the scanned epoch as one graph with static shapes; on CUDA
    the step compiled (compile_step), its CUDA graph replayed a step at a time."""
    if torch.device(device).type == "cuda":
        return stepwise(compile_step(step, device))
    torch._dynamo.reset()
    return torch.compile(scanned(step), fullgraph=True, dynamic=False, options=SCAN_OPTIONS)


# ---- The loop: a generator of epochs, compiled or not, which its caller records ------------


def healthy_members(losses: dict, state: dict) -> torch.Tensor:
    """Per member: are its epoch's losses and its parameters all finite?"""
    leaves = [*losses.values(), *state["g"].values(), *state["d"].values()]
    return torch.stack([x.isfinite().reshape(len(x), -1).all(1).cpu() for x in leaves]).all(0)


class Diverged(Exception):
    """Members' losses or parameters stopped being finite; args[0] lists their indices."""


@contextmanager
def denormals_as_zero():
    """Trained weights and moments decay into denormal floats, which x86 computes far slower:
    an epoch takes them as zero, as XLA does (BENCHMARKS.md). Only the epoch: SciPy's k-d tree,
    for one, crashes on them."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def start_point(members: list[dict], device, saved: dict | None) -> tuple[dict, list, int]:
    """The state, random streams and epoch to go on from: the initialisation's, or `saved`'s."""
    if saved is None:
        rngs = [make_rng(m["seed"], "train") for m in members]
        return init_members(members, device), rngs, 0
    rngs = [torch.Generator().set_state(torch.as_tensor(r).clone()) for r in saved["rngs"]]
    return tree_map(lambda a: torch.as_tensor(a).to(device), saved["state"]), rngs, saved["epoch"]


def train(members: list[dict], points, device="cpu", start=None, one_epoch=None, schedule=None):
    """Train an ensemble (a config per member; one model is an ensemble of one) on `points`
    (N × 2) from `start` (start_point), an epoch at a time by `one_epoch` (default: stepwise,
    uncompiled; compile_epoch's is fast), hyper-parameters from schedule(member, epoch).
    Yields each epoch whose numbers are finite: its epoch, seconds, losses per member, the
    state after it and the random streams; else Diverged."""
    device = torch.device(device)
    points = torch.as_tensor(points, dtype=torch.float32)
    steps = len(points) // (members[0]["batch_size"] * members[0]["n_critic"])
    members = [{**m, "steps_per_epoch": steps} for m in members]  # for ema_start
    one_epoch = one_epoch or stepwise(vmap(make_train_step(members[0])))
    state, rngs, done = start_point(members, device, start)
    for epoch in range(done + 1, members[0]["epochs"] + 1):
        started = time.perf_counter()
        if schedule:
            state = with_hyper(state, [schedule(m, epoch) for m in members])
        batches = members_batches(points, members, steps, rngs, device)
        with denormals_as_zero():
            new_state, history = one_epoch(state, batches)
        losses = {k: v.mean(0).cpu() for k, v in history.items()}  # the epoch's mean per member
        seconds = time.perf_counter() - started
        healthy = healthy_members(losses, new_state)
        if not healthy.all():
            raise Diverged([i for i, ok in enumerate(healthy) if not ok])
        state = new_state
        streams = torch.stack([r.get_state() for r in rngs])
        yield dict(epoch=epoch, seconds=seconds, losses=losses, state=state, rngs=streams)
