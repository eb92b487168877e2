"""A live session: lab5's own runs, trained an epoch at a time while a page watches and steers
them (harness/server.py serves it). Each variant of the session is an ordinary run, made by
the variant scripts' parse_config and prepare_run, recorded in this process by the harness's
recorder and trained by lab5.train with the compiled step; its hyper-parameters held as tensors
(lr, gp_weight, clip, ema) change between epochs through lab5.train's schedule, without a
recompile; every other setting starts the session again. "Save" copies a run's folder out of
the session's working folder, as a completed run that plots/make_gifs.py, the page and --resume
take as any other."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import traceback
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from queue import Empty, Queue

import numpy as np
import torch
from torch.func import vmap

import lab5
from errors import UserError
from harness import recorder, run_folder
from harness.ensemble import scheduled
from harness.flags import FLAGS, TITLES, VARIANTS, parse_config
from harness.main import (
    as_message,
    load_data,
    prepare_run,
    split_data,
    starting_point,
    warmed_up,
)
from plots.frames import data_region, frame_range, landscape_grid, run_scale

DATA = {"M": "data/points.mat", "ring8": "ring8", "grid25": "grid25", "swissroll": "swissroll"}
OWN_DATA = ("drawn", "upload")  # points the page sent, kept in the session's folder
CHOICES = {"variant": (*VARIANTS, "all"), "data": (*DATA, *OWN_DATA)}
SETTINGS = ("variant", "data", "gan_loss", "order", "n_critic", "batch_size", "seed")
LIVE = lab5.HYPER  # changed between epochs, as tensors: nothing recompiles
HORIZON = 1_000_000  # epochs a live run could go on for: a session stops when it is told to
PAGE_GRID = 64  # the landscape the page draws: this many points along each side of the window
PAGE_POINTS = 600  # generated points the page draws
MOST_POINTS = 100_000  # the most points the page may send
HISTORY = ("ratio", "g_loss", "d_loss", "penalty", "slope")  # each epoch's numbers the curves show
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")  # a saved run's name: no path in it


def initial_settings(variant: str) -> dict:
    """A session's first settings: the variant (or "all" three), the lab's points, and every
    other setting None: each variant's own default, until one is set."""
    return {"variant": variant, "data": "M", **dict.fromkeys((*SETTINGS[2:], *LIVE))}


def variants_of(settings: dict) -> tuple[str, ...]:
    return VARIANTS if settings["variant"] == "all" else (settings["variant"],)


def run_flags(settings: dict, variant: str, place: dict) -> list[str]:
    """A variant's command line for the settings: each setting given that it has, its data, and
    where and how the session runs it (`place`: its folder, the page's data files, whether to
    compile, --tensorboard)."""
    data = place["files"].get(settings["data"]) or DATA[settings["data"]]
    flags = ["--data", str(data), "--out", str(place["folder"] / variant), "--overwrite"]
    for name in (*SETTINGS[2:], *LIVE):
        if settings[name] is not None and variant in FLAGS[name].variants:
            flags += [f"--{name.replace('_', '-')}", str(settings[name])]
    every = ["--epochs", str(HORIZON), "--eval-every", "1", "--frame-every", "5"]
    extra = (["--no-compile"] if not place["compile"] else []) + place["tensorboard"]
    return [*flags, *every, *extra]


def checked(settings: dict, changes: dict, place: dict) -> dict:
    """The settings with `changes`, each variant's command line parsed (the variant scripts'
    one-line errors) and its data read and split (the same errors as --data): an error is a
    UserError, and the session is as it was."""
    names = (*SETTINGS, *LIVE)
    unknown = [k for k in changes if k not in names]
    if unknown:
        raise UserError(f"no setting {unknown[0]}: the settings are {', '.join(names)}")
    new = {**settings, **changes}
    for name in changes:
        if name not in CHOICES and not any(v in FLAGS[name].variants for v in variants_of(new)):
            owners = " and ".join(TITLES[v] for v in FLAGS[name].variants)
            title = TITLES.get(new["variant"], "any variant")
            raise UserError(f"{name} is {owners}'s setting, not {title}'s")
    for name, options in CHOICES.items():
        if new[name] not in options:
            raise UserError(f"{name} {new[name]!r}: one of {', '.join(options)}")
    if new["data"] in OWN_DATA and new["data"] not in place["files"]:
        raise UserError(f"no {new['data']} points yet: send them first (POST /api/data)")
    for variant in variants_of(new):
        with redirect_stdout(StringIO()):
            cfg = parse_config(variant, run_flags(new, variant, place))
            points, _, source = load_data(cfg)
            split_data(cfg, points, source)
    return new


# ---- A variant of the session: an ordinary run, recorded here, trained an epoch at a time -----


@dataclass
class Trainer:
    variant: str
    run: object  # harness.run.Run: what the run is
    record: object  # harness.recorder.Recorder, in this process
    epochs: object  # lab5.train's generator of epochs
    grid: torch.Tensor  # the points of the page's landscape
    region: np.ndarray  # which of them lie where the data is
    z: torch.Tensor  # the noise of the page's generated points
    scale: tuple | None = None  # the page's colour scale so far (one for the run, as a frame's)


def start_trainers(settings: dict, place: dict, live) -> list[Trainer]:
    """The session's runs from epoch 0, prepared and recorded as `python variants/<variant>.py`
    would, their hyper-parameters in each epoch live(member)'s. Every epoch is made before any
    is compiled: making one resets the compiler's caches (lab5.compile_epoch), which the epochs
    compiled before it would not survive."""
    made = [made_run(settings, variant, place) for variant in variants_of(settings)]
    epochs = [
        lab5.compile_epoch(m["step"], m["run"].device) if not m["run"].uncompiled_because else None
        for m in made
    ]
    return [trainer_of(m, compiled, live) for m, compiled in zip(made, epochs)]


def made_run(settings: dict, variant: str, place: dict) -> dict:
    """A variant's run, its folder and recorder opened and its epoch 0 recorded."""
    with redirect_stdout(StringIO()):
        run = prepare_run(parse_config(variant, run_flags(settings, variant, place)))
    record = recorder.open_recorder(run)
    start, first = starting_point(run)
    recorder.record(record, first)
    step = vmap(lab5.make_train_step(run.cfg))
    return {"variant": variant, "run": run, "record": record, "start": start, "step": step}


def trainer_of(made: dict, compiled, live) -> Trainer:
    """A made run with its epoch compiled (or not) and lab5.train's epochs to come."""
    run = made["run"]
    one_epoch = lab5.stepwise(made["step"])
    if compiled is not None:
        one_epoch, warm = warmed_up(run, compiled, made["step"], made["start"]["state"])
        recorder.record(made["record"], warm)

    def schedule(member: dict, epoch: int) -> dict:
        return {**scheduled(member, epoch), **live(member)}

    epochs = lab5.train(run.members, run.train, run.device, made["start"], one_epoch, schedule)
    grid = torch.as_tensor(landscape_grid(run.window, PAGE_GRID), dtype=torch.float32)
    region = data_region(run.window, run.test, PAGE_GRID)
    z = run.eval_z[0][:PAGE_POINTS]
    return Trainer(made["variant"], run, made["record"], epochs, grid, region, z)


def close_trainer(trainer: Trainer) -> None:
    """Let go of a run the session is done with: its recorder's files, its folder."""
    recorder.close(trainer.record)
    run_folder.unlock_folder(trainer.run.folder)


def run_info(trainer: Trainer) -> dict:
    """What the page draws under every epoch of a run: the window, the test points, the floor
    and a Gaussian blob's W1 / floor."""
    run = trainer.run
    floor = trainer.record.floor["w1"]
    return {
        "variant": trainer.variant,
        "title": TITLES[trainer.variant],
        "window": list(run.window),
        "test": np.round(run.test, 4).tolist(),
        "floor": floor,
        "blob": trainer.record.gaussian_w1 / floor,
        "steps": run.steps,
        "settings": {k: run.cfg.get(k) for k in (*SETTINGS[2:], *LIVE) if k in run.cfg},
    }


def epoch_view(trainer: Trainer, event: dict) -> dict:
    """An epoch as the page draws it: the critic over the window on the run's colour scale, the
    generated points, and the epoch's numbers (its metrics row)."""
    state = event["state"]
    g = {k: v[0] for k, v in state["ema"]["g"].items()}
    d = {k: v[0] for k, v in state["d"].items()}
    values = recorder.critic_values(trainer.variant, d, trainer.grid, trainer.run.test)
    span = frame_range(values, trainer.region, trainer.variant == "gan")
    trainer.scale = run_scale([span, trainer.scale or span])
    with torch.no_grad():
        fake = lab5.generator(g, trainer.z).numpy()
    row = trainer.record.members[0].final
    numbers = {k: v for k, v in row.items() if k not in ("epoch", "seconds")}
    return {
        "variant": trainer.variant,
        "epoch": event["epoch"],
        "steps_per_s": trainer.run.steps / max(event["seconds"], 1e-9),
        "ratio": row["w1"] / trainer.record.floor["w1"] if row.get("w1") is not None else None,
        **numbers,
        "landscape": np.round(values, 5).tolist(),
        "scale": list(trainer.scale),
        "fake": np.round(fake, 4).tolist(),
    }


# ---- The session: its settings, its runs, and what the page is told ------------------------


@dataclass
class Session:
    settings: dict  # the settings given (None: each variant's default)
    place: dict  # its working folder, the page's data files, compile, --tensorboard
    root: Path  # where a saved run goes
    trainers: list = field(default_factory=list)  # one per variant of the session
    status: str = "starting"  # starting, compiling, paused, training, diverged, stopped
    running: bool = False  # whether it trains on by itself (play) or waits (pause)
    epoch: int = 0  # the last epoch trained
    history: list = field(default_factory=list)  # per epoch: each variant's numbers
    changes: list = field(default_factory=list)  # [epoch, setting, value]: changed on the way
    last: list = field(default_factory=list)  # the last epoch of each variant, as drawn
    runs: list = field(default_factory=list)  # what the page draws under them (run_info)
    message: str = ""  # a line for the page: a divergence, a restart's error
    restart: bool = True  # the settings changed so: the runs start again before the next epoch
    version: int = 0  # how many updates there have been (the page's stream follows them)
    starts: int = 0  # how many times the runs have started (each a new history)
    commands: Queue = field(default_factory=Queue)  # (action, argument, reply queue)
    lock: threading.Condition = field(default_factory=threading.Condition)


def new_session(variant: str, root: Path, compile_step: bool, tensorboard: bool) -> Session:
    folder = Path(tempfile.mkdtemp(prefix="lab5-live-"))
    board = ["--tensorboard"] if tensorboard else []
    place = {"folder": folder, "files": {}, "compile": compile_step, "tensorboard": board}
    return Session(initial_settings(variant), place, root)


def live_values(session: Session):
    """Each member's live hyper-parameters for an epoch: those given, that its variant has."""

    def values(member: dict) -> dict:
        given = {k: session.settings[k] for k in LIVE if session.settings[k] is not None}
        return {k: float(v) for k, v in given.items() if k in member}

    return values


def state(session: Session, views: bool = True, since: int = 0) -> dict:
    """The session as GET /api/state and the page's stream say it; its history from row
    `since` on (a stream sends each row once)."""
    compiled = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    return {
        "settings": session.settings,
        "status": session.status,
        "running": session.running,
        "epoch": session.epoch,
        "message": session.message,
        "runs": session.runs,
        "last": session.last if views else [],
        "history": session.history[since:],
        "history_from": since,
        "changes": session.changes,
        "compiled_graphs": compiled,
        "version": session.version,
    }


def told(session: Session, **changes) -> None:
    """Change what the page is told, and wake its streams."""
    with session.lock:
        for name, value in changes.items():
            setattr(session, name, value)
        session.version += 1
        session.lock.notify_all()


def start_runs(session: Session) -> None:
    """The session's runs from epoch 0 with its settings, the ones before let go."""
    for trainer in session.trainers:
        close_trainer(trainer)
    cleared = {"trainers": [], "last": [], "runs": [], "history": [], "changes": [], "epoch": 0}
    told(session, **cleared, restart=False, starts=session.starts + 1)
    told(session, status="compiling", message="")
    try:
        trainers = start_trainers(session.settings, session.place, live_values(session))
    except UserError as e:  # its settings were checked: a file gone since, say
        told(session, status="paused", running=False, message=str(e))
        return
    status = "training" if session.running else "paused"
    told(session, trainers=trainers, runs=[run_info(t) for t in trainers], status=status)


def train_epoch(session: Session) -> None:
    """One epoch of every run of the session (lockstep), recorded; the page told."""
    views = []
    for trainer in session.trainers:
        try:
            event = next(trainer.epochs)
        except (lab5.Diverged, StopIteration):
            message = f"{TITLES[trainer.variant]} diverged in epoch {session.epoch + 1}: reset"
            told(session, running=False, status="diverged", message=message)
            return
        recorder.record(trainer.record, as_message(event))
        views.append(epoch_view(trainer, event))
    numbers = {v["variant"]: {k: v.get(k) for k in HISTORY} for v in views}
    history = [*session.history, {"epoch": views[0]["epoch"], **numbers}]
    told(session, epoch=views[0]["epoch"], last=views, history=history)


def apply_settings(session: Session, new: dict) -> dict:
    """New settings (checked): live ones from the next epoch on, as tensors; any other
    starts the runs again."""
    changed = {k: v for k, v in new.items() if v != session.settings[k]}
    restart = any(k not in LIVE for k in changed)
    live = [[session.epoch, k, v] for k, v in changed.items() if k in LIVE]
    told(session, settings=new, restart=session.restart or restart)
    if not restart:
        told(session, changes=[*session.changes, *live])
    return {"changed": changed, "restarts": restart}


def take_points(session: Session, kind: str, path: Path) -> dict:
    """Points the page sent, kept at `path`, as the session's data from now on."""
    session.place["files"][kind] = path
    return apply_settings(session, {**session.settings, "data": kind})


def save(session: Session, name: str | None) -> list[str]:
    """Each run as it stands, copied out of the session as a completed run of the epochs trained
    (plots/make_gifs.py draws it; `--resume DIR --epochs N` goes on with it)."""
    if not session.trainers or session.epoch == 0:
        raise UserError("nothing to save yet: train an epoch first")
    if name is not None and not (isinstance(name, str) and SAFE_NAME.fullmatch(name)):
        raise UserError("a saved run's name is 1 to 60 letters, digits, _ or -")
    top = run_folder.free_folder(session.root / (name or time.strftime("live_%Y%m%d_%H%M%S")))
    saved = []
    for trainer in session.trainers:
        folder = top if len(session.trainers) == 1 else top / trainer.variant
        saved.append(str(save_run(session, trainer, folder)))
    return saved


def save_run(session: Session, trainer: Trainer, folder: Path) -> Path:
    """A copy of the run's folder, its config saying how far it trained, with the settings it
    had last and those changed on the way, its own copy of points the page sent."""
    ignored = shutil.ignore_patterns(run_folder.LOCK, run_folder.WRITER)
    shutil.copytree(trainer.run.folder, folder, ignore=ignored)
    config = run_folder.read_config(folder)
    if session.settings["data"] in OWN_DATA:
        points = Path(shutil.copy(session.place["files"][session.settings["data"]], folder))
        config["data"] = str(points.resolve())
    live = {k: v for k, v in session.settings.items() if k in LIVE and v is not None}
    config.update({**live, "epochs": session.epoch, "out": str(folder)})
    config["live_changes"] = session.changes
    run_folder.write_configs({folder: config}, folder, session.epoch)
    summary = run_folder.read_summary(folder)
    run_folder.write_summary(folder, {**summary, "status": "completed"})
    recorder.settle_frames(trainer.record, recorder.MemberRecord(folder, None, None, []))
    return folder


# ---- Commands, and the thread that trains ---------------------------------------------------

ACTIONS = ("play", "pause", "step", "reset", "save", "set", "data")


def run_command(session: Session, action: str, argument) -> dict:
    """One command from the page, between epochs; a UserError's line is its answer."""
    try:
        if action == "play":
            told(session, running=True, status="training" if session.trainers else session.status)
        elif action == "pause":
            told(session, running=False, status="paused" if session.trainers else session.status)
        elif action == "step":
            told(session, running=False)
            step_once(session)
        elif action == "reset":
            told(session, restart=True)
        elif action == "save":
            return {"saved": save(session, argument)}
        elif action == "set":
            return apply_settings(session, argument)
        elif action == "data":
            return take_points(session, *argument)
        return {}
    except UserError as e:
        return {"error": str(e)}


def step_once(session: Session) -> None:
    if session.restart:
        start_runs(session)
    if session.trainers and session.status != "diverged":
        train_epoch(session)
        told(session, status="paused")


def serve(session: Session, stop: threading.Event) -> None:
    """The session's thread: commands as they come, the runs started again where the settings
    say so, and an epoch after another while it plays. A bug stops the training, not the
    thread: the page says so, and reset starts again."""
    while not stop.is_set():
        try:
            serve_once(session)
        except Exception as e:  # noqa: BLE001 - said on the page; the server goes on
            traceback.print_exc()
            told(session, running=False, status="failed", message=f"{type(e).__name__}: {e}")
    for trainer in session.trainers:
        close_trainer(trainer)
    told(session, status="stopped", running=False)
    shutil.rmtree(session.place["folder"], ignore_errors=True)


def serve_once(session: Session) -> None:
    try:
        action, argument, reply = session.commands.get(timeout=0 if session.running else 0.2)
    except Empty:
        action = None
    if action:
        try:
            reply.put(run_command(session, action, argument))
        except Exception:
            reply.put({"error": "the session failed on it: see the server's console"})
            raise
    if session.restart:
        start_runs(session)
    elif session.running and session.trainers and session.status != "failed":
        train_epoch(session)


def ask(session: Session, action: str, argument=None, wait_s: float = 600.0) -> dict:
    """A command for the session's thread, and its answer once it has run it."""
    reply: Queue = Queue()
    session.commands.put((action, argument, reply))
    return reply.get(timeout=wait_s)
