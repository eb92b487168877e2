"""Many lab5 runs as the trials of an Optuna study: the study, in a database that several
drivers on several machines may share, says which runs are still to train; each driver trains
some of them at once, each a lab5 run in a process of its own (experiments/processes.py), and
tells the study how each ended.

A grid's points are put in the study's queue once, by the driver that creates the study, and
a driver claims a queued trial in one atomic step of the database, so that every point trains
exactly once however many drivers share the study. A search (--range) asks its sampler for a
new trial while the study holds fewer than it wants. A driver records Optuna's heartbeat of its
trials every few seconds; a trial whose driver has fallen silent (killed, or its machine gone)
is failed by another driver and queued again by Optuna's RetryHeartbeatStaleTrialCallback, and
its run goes on from its checkpoint. Ctrl-C (or SIGTERM) stops a driver's runs the same way and
queues them for the next driver. (Optuna's journal storage keeps no heartbeat: there a dead
driver's trials wait for its rerun, which finds their runs stopped.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from errors import UserError
from experiments import processes
from experiments.extras import (
    DuplicatedStudyError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
    TrialState,
    UpdateFinishedTrialError,
    optuna,
    sqlalchemy,
)
from harness import run_folder
from harness.run_folder import is_locked

STORAGE = "sqlite:///runs/sweeps/optuna.db"
STORAGE_ATTEMPTS = 5
# a trial whose driver has not beaten for this many of its beats is retried: more than a
# driver may spend stopping a run (processes.STOP_GRACE_S), during which it does not beat
SILENT_BEATS = 15
# Optuna calls its heartbeat experimental and says so at every use; lab5 pins the version it
# was tested with (requirements-sweeps.txt)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback()  # the same point, in a new trial
TICK_S = 1.0  # how often a driver looks at its runs and the study


@dataclass
class Job:
    variant: str  # the variant script the trial runs
    flags: list[str]  # its flags, less --out
    folder: Path  # its run folder


@dataclass
class Plan:
    job: Callable[[optuna.Trial], Job]  # a claimed trial's run (suggesting its parameters)
    trials: int  # how many trials the sweep holds, pruned ones included
    prune: bool  # whether the pruner may stop a run early
    slots: list[dict]  # one environment per run at once (CUDA_VISIBLE_DEVICES on a GPU)
    beat_s: float  # how often this driver says its runs are alive
    objective: Callable[[Path], float]  # a finished run's value, lower is better
    results: Callable[[Path], dict]  # what the table keeps of a run (user attributes)


@dataclass
class Running:
    trial: optuna.Trial  # the claimed trial
    job: Job  # its run
    slot: int  # the index of its slot in Plan.slots
    trial_id: int  # the storage's number for it, which its heartbeat names
    retried: bool = False  # a trial queued again (its run goes on from its checkpoint)
    process: processes.Process | None = None  # None until its folder is free to write
    completed_before: bool = False  # a retry whose run had completed: told without training
    reported: int = -1  # the last epoch reported to the trial
    pruned_at: int | None = None  # the epoch the pruner stopped it at


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds >= TICK_S:
        raise argparse.ArgumentTypeError(f"expected seconds, at least {TICK_S:g}, got {text!r}")
    return seconds


def cores() -> int:
    return os.cpu_count() or 1


def fitting_workers() -> int:
    """The runs at once this machine's CPU cores take: each trains on one and is recorded by a
    process of its own beside it, which takes part of another."""
    return max(1, cores() // 2)


def add_flags(parser, workers: int) -> None:
    """The flags of every command that drives a study."""
    parser.add_argument(
        "--workers",
        type=positive,
        default=workers,
        help=f"runs at once on this machine's CPU (default: {workers}; this one has {cores()} "
        "cores, and each run trains on one and records beside it on another)",
    )
    parser.add_argument("--gpus", default="", metavar="0,1", help="train on these GPUs instead")
    parser.add_argument(
        "--per-gpu", type=positive, default=1, metavar="K", help="runs per GPU (default: 1)"
    )
    parser.add_argument(
        "--storage",
        default=STORAGE,
        metavar="URL",
        help="where the study lives: an SQLite or PostgreSQL URL, or journal:PATH (default: "
        f"{STORAGE}); drivers on other machines that name the same one share its runs",
    )
    parser.add_argument(
        "--beat",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help=f"how often a driver says its runs are alive (one silent for {SILENT_BEATS} beats "
        "is retried by another driver; default: 10)",
    )


def crowded_warning(args) -> str | None:
    """A warning where --workers runs at once on the CPU need more cores than it has."""
    if args.gpus or args.workers <= fitting_workers():
        return None
    return (
        f"warning: --workers {args.workers} on {cores()} CPU cores: each run trains on one core "
        f"and records beside it on another, so they will slow each other down (--workers "
        f"{fitting_workers()} fits this machine)"
    )


def slots(args) -> list[dict]:
    """One environment per run at once: --workers on the CPU, or --per-gpu on each of --gpus
    (each run sees its GPU alone, as cuda:0)."""
    gpus = [g for g in args.gpus.split(",") if g]
    on_gpus = [{"CUDA_VISIBLE_DEVICES": g} for g in gpus for _ in range(args.per_gpu)]
    return on_gpus or [{} for _ in range(args.workers)]


def make_storage(url: str, beat_s: float = 10.0) -> optuna.storages.BaseStorage:
    """An SQLite or PostgreSQL URL, with Optuna's heartbeat every `beat_s` (and its trials
    retried once silent for SILENT_BEATS beats), or journal:PATH for Optuna's journal file."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # several drivers write at once: SQLite waits for its lock rather than failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    beats = {
        "heartbeat_interval": math.ceil(beat_s),
        "grace_period": math.ceil(SILENT_BEATS * beat_s),
        "heartbeat_stale_trial_callback": queue_again,
    }
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            options = {**engine, "pool_pre_ping": True}
            storage = optuna.storages.RDBStorage(url, engine_kwargs=options, **beats)
            return serialized(storage) if url.startswith("sqlite") else storage
        except (SQLAlchemyError, ImportError, ValueError) as e:
            # two drivers creating a new database's tables at once: the second tries again
            # (PostgreSQL says so as a duplicate key, a duplicate table or a deadlock)
            racing = isinstance(e, (IntegrityError, OperationalError, ProgrammingError))
            if not racing or attempt == STORAGE_ATTEMPTS - 1:
                message = str(e).splitlines()[0]
                raise UserError(f"cannot open the storage {url}: {message}") from None
            time.sleep(1.0)


def queue_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A silent driver's trial, failed by this driver: its point again, into the same folder."""
    print(f"trial {trial.number}: its driver fell silent; queued again", flush=True)
    RETRY(study, trial)


def serialized(storage: optuna.storages.RDBStorage) -> optuna.storages.RDBStorage:
    """SQLite with every transaction taking the write lock as it begins (BEGIN IMMEDIATE, the
    SQLAlchemy recipe): Optuna's claim and fail read a trial's state and then write it, which
    PostgreSQL makes atomic with SELECT ... FOR UPDATE and SQLite ignores, so two drivers could
    both take one trial."""
    engine = storage.engine

    @sqlalchemy.event.listens_for(engine, "connect")
    def no_driver_transactions(connection, _record) -> None:
        connection.isolation_level = None  # the begin event below says when one starts

    @sqlalchemy.event.listens_for(engine, "begin")
    def begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections made so far began their transactions the old way
    return storage


def existing_study(storage, name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UserError(f"no study {name} in the storage: run the sweep first") from None


def open_study(storage, name: str, spec: dict, points: list[dict], sampler, pruner):
    """The sweep's study: created, and its grid's points queued, by the first driver; loaded by
    any other, which must have been started with the same settings."""
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=sampler, pruner=pruner
        )
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        return loaded_study(study, spec, points)
    study.set_user_attr("spec", spec)
    queue(study, points)
    return study


def queue(study: optuna.Study, points: list[dict]) -> None:
    for point in points:
        study.enqueue_trial(point, user_attrs={"point": point})
    study.set_user_attr("queued", True)


def loaded_study(study: optuna.Study, spec: dict, points: list[dict]) -> optuna.Study:
    """A loaded study, once its creator has queued its points (or, if it died doing so, this
    driver has queued those missing)."""
    deadline = time.monotonic() + 30
    while "spec" not in study.user_attrs or "queued" not in study.user_attrs:
        if time.monotonic() > deadline:
            have = [t.user_attrs.get("point") for t in study.get_trials(deepcopy=False)]
            study.set_user_attr("spec", spec)
            queue(study, [p for p in points if p not in have])
        time.sleep(0.5)
    if study.user_attrs["spec"] != json.loads(json.dumps(spec)):
        raise UserError(
            f"the study {study.study_name} was started as `{study.user_attrs['spec']['command']}`;"
            " run that, or name another with --study"
        )
    return study


def claim(study: optuna.Study, storage) -> optuna.Trial | None:
    """A queued trial, taken from the queue in one step of the database (None if it is
    empty): two drivers never take the same one. (study.ask would make a new trial when
    another driver had just taken the last, and a grid must hold its points only.)"""
    study_id = storage.get_study_id_from_name(study.study_name)
    for queued in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, queued.number)
        try:
            if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def counted(trials: list) -> int:
    """The trials a sweep counts: all but those stopped and queued again (a run that failed
    on its own, diverged say, is a result: queued again it would fail again)."""
    queued_again = {n for t in trials for n in RETRY.retry_history(t)}
    return sum(t.state != TrialState.FAIL or t.number not in queued_again for t in trials)


def next_trial(study: optuna.Study, storage, plan: Plan) -> optuna.Trial | None:
    """A queued trial, else (a search that wants more) a new one from the sampler."""
    trial = claim(study, storage)
    if trial is None and counted(study.get_trials(deepcopy=False)) < plan.trials:
        trial = study.ask()
    return trial


def requeue(study: optuna.Study, running: Running) -> None:
    """Fail a trial whose run this driver stopped (Ctrl-C) and queue its point again, into the
    same folder, as Optuna retries a silent driver's; not if another driver was first."""
    try:
        failed = study.tell(running.trial.number, state=TrialState.FAIL)
    except (ValueError, UpdateFinishedTrialError):
        return
    if failed.params:  # else a search's trial that had not yet drawn its point
        RETRY(study, failed)


def beat(storage, runnings: list[Running]) -> None:
    """Optuna's heartbeat of this driver's trials (none in a journal file)."""
    if isinstance(storage, optuna.storages.RDBStorage):
        for running in runnings:
            storage.record_heartbeat(running.trial_id)


def take(trial: optuna.Trial, trial_id: int, plan: Plan, slot: int) -> Running:
    """A claimed trial made this driver's: its run decided, its point and folder recorded (a
    retry, which has a folder already, goes on in it)."""
    retried = "folder" in trial.user_attrs
    job = plan.job(trial)
    trial.set_user_attr("point", trial.params)
    trial.set_user_attr("folder", str(job.folder))
    return Running(trial, job, slot, trial_id, retried)


def launch(running: Running, plan: Plan) -> None:
    """Start the trial's run once its folder is free (an earlier run of it, stopped, may still
    be ending); a retried trial goes on from the checkpoint its folder holds."""
    job = running.job
    if running.completed_before or is_locked(job.folder):
        return
    resume = running.retried and run_folder.is_run_dir(job.folder)
    if resume and run_folder.run_end(job.folder)["status"] == "completed":
        # its driver died before telling the study
        running.completed_before = True
        return
    argv = processes.command(job.variant, job.flags, job.folder, resume)
    log = processes.log_path(job.folder)
    running.process = processes.start(argv, job.folder, log, plan.slots[running.slot])
    running.trial.set_user_attr("pid", running.process.popen.pid)


def follow(running: Running, plan: Plan) -> None:
    """Report each epoch scored since the last look to the trial, in order, and ask the pruner
    after each, before the run's last (after it, nothing is saved): the pruner sees every rung
    however seldom the driver looks, as if it had watched every epoch. Stop the run at the
    first rung where it says the run will not be among the best, unless it has completed."""
    scores = run_folder.ensemble_ratios(running.job.folder, running.process.since)
    planned = run_folder.read_config(running.job.folder)["epochs"] if scores else 0
    for epoch in sorted(e for e in scores if e > running.reported):
        running.trial.report(scores[epoch], epoch)
        running.reported = epoch
        prune = plan.prune and epoch < planned and running.trial.should_prune()
        if prune and not (processes.ended(running.process) and running.process.exit_code == 0):
            running.pruned_at = epoch
            processes.stop(running.process)
            return


def finish(running: Running, study: optuna.Study, plan: Plan) -> str:
    """Tell the study how the run ended (pruned, completed with its objective, or failed: it
    diverged, or a bug); a pruned run's folder says so. Returns the console's line for it."""
    trial = running.trial
    folder = running.job.folder
    process = running.process
    attrs = {"log": str(processes.log_path(folder)), **plan.results(folder)}
    if process is not None:
        attrs.update(
            cpu_s=process.cpu_s, wall_s=time.monotonic() - process.started, exit=process.exit_code
        )
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if running.pruned_at is not None:
        trial.set_user_attr("pruned_at", running.pruned_at)
        study.tell(trial, state=TrialState.PRUNED)
        run_folder.mark_pruned(folder, study.study_name, trial.number, running.pruned_at)
        return f"pruned at epoch {running.pruned_at}"
    if running.completed_before or process.exit_code == 0:
        value = plan.objective(folder)
        study.tell(trial, value)
        return f"completed, objective {value:.3g}"
    study.tell(trial, state=TrialState.FAIL)
    return f"failed ({attrs.get('status', 'no run')}, exit {process.exit_code}; see {attrs['log']})"


def settle(running: Running, study: optuna.Study, plan: Plan) -> bool:
    """One look at a run: started if it can be, followed, told once it has ended. Has it?"""
    try:
        if running.process is None:
            launch(running, plan)
        if running.process is not None:
            follow(running, plan)
        if running.completed_before or running.process and processes.ended(running.process):
            line = finish(running, study, plan)
        else:
            return False
    except UpdateFinishedTrialError:  # another driver judged this one silent and requeued it
        if running.process is not None:
            processes.stop(running.process)
        line = "taken over by another driver (this one fell silent); its run stopped"
    point = " ".join(f"{k}={v}" for k, v in running.trial.params.items())
    print(f"trial {running.trial.number} ({point or 'defaults'}): {line}", flush=True)
    return True


def fill(runnings: list[Running], study: optuna.Study, storage, plan: Plan) -> None:
    """Claim trials for the free slots, each with its first heartbeat."""
    study_id = storage.get_study_id_from_name(study.study_name)
    while len(runnings) < len(plan.slots):
        trial = next_trial(study, storage, plan)
        if trial is None:
            return
        slot = min(set(range(len(plan.slots))) - {r.slot for r in runnings})
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        runnings.append(take(trial, trial_id, plan, slot))
        beat(storage, runnings[-1:])


def finished(study: optuna.Study, plan: Plan) -> bool:
    """Nothing queued, nothing running anywhere, and as many trials as the sweep wants."""
    trials = study.get_trials(deepcopy=False)
    busy = any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials)
    return not busy and counted(trials) >= plan.trials


def hand_back(runnings: list[Running], study: optuna.Study) -> None:
    """Ctrl-C or SIGTERM: stop this driver's runs as Ctrl-C would (all at once) and queue
    their points again, for the next driver to go on with from their checkpoints."""
    started = [r.process for r in runnings if r.process is not None]
    for process in started:
        processes.interrupt(process)
    for process in started:
        processes.wait_or_kill(process)
    for running in runnings:
        requeue(study, running)


def drive(study: optuna.Study, storage, plan: Plan) -> None:
    """Train the study's trials, len(plan.slots) at a time, until the sweep is finished
    (waiting for other drivers' trials too: one that falls silent is retried here)."""
    runnings: list[Running] = []
    last_beat = time.monotonic()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            runnings = [r for r in runnings if not settle(r, study, plan)]
            fill(runnings, study, storage, plan)
            if not runnings and finished(study, plan):
                return
            optuna.storages.fail_stale_trials(study)  # and queue_again's them
            if time.monotonic() - last_beat >= plan.beat_s:
                last_beat = time.monotonic()
                beat(storage, runnings)
            time.sleep(TICK_S)
    except KeyboardInterrupt:
        hand_back(runnings, study)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
