"""The recorder: what becomes of each epoch's snapshot that training sends — every member's
distances, frame, parameters and metrics row, the ensemble's means, the summaries and the
checkpoint, through harness.run_folder. It runs in a process of its own beside training
(harness.worker): started by spawn, it imports what it needs to record (lab5's networks as
functions of their parameter dicts, the evaluation, the frames), and nothing of the training.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import lab5
from harness import board, console, evaluation, run_folder, worker
from harness.flags import TITLES
from harness.run import Run
from harness.run_folder import FolderUnwritable, Table, atomic_write, write_row
from plots.frames import (
    critic_label,
    data_region,
    frame_range,
    frame_title,
    landscape_grid,
    make_frame_writer,
    run_scale,
)


@dataclass
class MemberRecord:
    folder: Path  # where the member's files go
    z: torch.Tensor  # the fixed noise it is scored and drawn on
    table: Table  # its metrics.csv
    history: list[tuple[int, float]]  # (epoch, W1) of every epoch with an exact W1
    final: dict | None = None  # its last metrics row
    scale: tuple[float, float] | None = None  # its frames' colour scale so far
    board: object | None = None  # its TensorBoard writer (--tensorboard), or None


@dataclass
class Recorder:
    run: Run  # what the run is
    floor: dict  # the noise floor: every metric of training samples against the test set
    test: dict  # the test set as the distances need it (evaluation.describe_test_set)
    members: list[MemberRecord]  # one per model
    columns: list[str]  # metrics.csv's columns
    ensemble: Table | None  # an ensemble's ensemble.csv; None for one model
    draw: Callable  # writes a frame (plots.frames.make_frame_writer)
    landscape: torch.Tensor  # the points at which a frame shows the critic
    region: np.ndarray  # which of them lie where the data is, whose values set a frame's range
    gaussian_w1: float  # W1 of a Gaussian fitted to the training points: a generator of no shape
    warnings: list[str]  # what the summary, the console and the page say of this run's numbers
    final: dict | None = None  # the last epoch's means over the members
    epochs_done: int = 0  # the last epoch recorded
    warm_up_s: float = 0.0  # seconds training took to compile the step
    train_s: float = 0.0  # seconds of training, summed over the epochs recorded
    record_s: float = 0.0  # seconds this process spent recording
    checkpointed: int | None = None  # the epoch of the last checkpoint written
    uncompiled_because: str | None = None  # why the step runs uncompiled, where it does


def open_member(folder: Path, z: torch.Tensor, columns: list[str], run: Run):
    """A member's record: its metrics table (appended to, when resumed), W1 history and, with
    --tensorboard, its event writer."""
    resumed = run.checkpoint is not None
    rows = run_folder.read_metrics(folder) if resumed else []
    history = [(int(r["epoch"]), r["w1"]) for r in rows if r["w1"] is not None]
    member = MemberRecord(folder, z, run_folder.metrics_table(folder, columns, resumed), history)
    if run.cfg["tensorboard"]:
        member.board = board.open_board(folder, run.checkpoint["epoch"] if resumed else None)
    return member


def open_recorder(run: Run) -> Recorder:
    """The test set's description, the noise floor, the members' tables, the frame writer."""
    # One thread: the other core trains. And a forked child must not wait on the thread pool its
    # parent's torch had started, whose threads a fork does not copy: it would hang.
    torch.set_num_threads(1)
    columns = evaluation.metric_columns(run.cfg["variant"], run.modes is not None)
    resumed = run.checkpoint is not None  # then the tables go on from their kept rows
    members = [open_member(f, z, columns, run) for f, z in zip(run.member_dirs, run.eval_z)]
    ensemble = None
    if run.folder not in run.member_dirs:  # an ensemble's own folder: means over members
        stats = [f"{c}_{s}" for c in columns[1:-1] for s in ("mean", "se")]
        ensemble = run_folder.ensemble_table(run.folder, ["epoch", "members", *stats], resumed)
    rng = torch.Generator().manual_seed(run.floor_seed)
    counted = run.cfg["eval_size"]
    floor = evaluation.noise_floor(run.train, run.test, rng, modes=run.modes, counted=counted)
    blob = evaluation.gaussian_w1(run.train, run.test, rng)
    warnings = small_test_warnings(len(run.test), floor["w1"], blob, run.cfg["fit_factor"])
    test = evaluation.describe_test_set(run.test)
    variant = run.cfg["variant"]
    draw = make_frame_writer(run.window, run.test, critic_label(variant == "gan"))
    landscape = torch.as_tensor(landscape_grid(run.window), dtype=torch.float32)
    region = data_region(run.window, run.test)
    recorder = Recorder(
        run, floor, test, members, columns, ensemble, draw, landscape, region, blob, warnings
    )
    recorder.checkpointed = run.checkpoint["epoch"] if resumed else None
    recorder.uncompiled_because = run.uncompiled_because
    return recorder


def small_test_warnings(test_points: int, floor: float, blob: float, factor: float) -> list[str]:
    """Where a Gaussian with the training points' mean and covariance is itself within
    --fit-factor of the noise floor, "fitted" cannot tell the data's shape from a blob: the test
    set is too small for the distance to separate a fit from a miss (or the data is a blob). On
    the lab's data the blob is 4x the floor with 1192 test points; on 500 points of two noisy
    circles, 73 test points, 1.1-1.7x."""
    if blob > factor * floor:
        return []
    return [
        f"a Gaussian blob scores {blob / floor:.1f}× the floor ({test_points} test points): "
        f"within {factor:g}×, 'fitted' means little"
    ]


def is_due(every: int, epoch: int, last: int) -> bool:
    return epoch == last or (every > 0 and epoch % every == 0)


def member_params(state: dict, i: int) -> dict:
    """Member i's parameters: the generator sampled (its average), the critic, the generator
    as trained."""
    parts = {"g": state["ema"]["g"], "d": state["d"], "raw": state["g"]}
    return {name: {k: torch.from_numpy(v[i]) for k, v in p.items()} for name, p in parts.items()}


def metrics_row(recorder: Recorder, message: dict, i: int, generated, exact: bool) -> dict:
    """Member i's row: its losses, its distances to the test set (W1 where `exact`), its mode
    metrics on a toy mixture, its seconds."""
    run = recorder.run
    fake = generated[: len(run.test)]  # the test set's size for the distances
    counted = generated[: run.cfg["eval_size"] or len(run.test)]  # the mode counts'
    modes = evaluation.mode_metrics(counted, **run.modes) if run.modes else {}
    losses = {k: float(v[i]) for k, v in message["losses"].items()}
    if "penalty" in losses:  # its part of the critic's loss, at the weight this epoch had
        losses["weighted_penalty"] = losses["penalty"] * float(
            message["state"]["hyper"]["gp_weight"][i]
        )
    return {
        "epoch": message["epoch"],
        **losses,
        **evaluation.sample_metrics(fake, recorder.test),
        **modes,
        "w1": evaluation.wasserstein1(fake, run.test) if exact else None,
        "seconds": round(message["seconds"], 4),
    }


def record_member(recorder: Recorder, member: MemberRecord, message: dict, i: int) -> dict:
    """One member's epoch: its distances, its frame, its parameters and its metrics row."""
    cfg = recorder.run.cfg
    epoch = message["epoch"]
    params = member_params(message["state"], i)
    frame_due = cfg["frame_every"] > 0 and is_due(cfg["frame_every"], epoch, cfg["epochs"])
    exact = frame_due or is_due(cfg["eval_every"], epoch, cfg["epochs"])
    with torch.no_grad():
        generated = lab5.generator(params["g"], member.z).double().numpy()
    row = metrics_row(recorder, message, i, generated, exact)
    if frame_due:
        fake = generated[: len(recorder.run.test)]
        draw_frame(recorder, member, epoch, fake, critic_view(recorder, params["d"]), row)
    run_folder.save_params(member.folder, params)
    write_row(member.table, row)
    if member.board:
        board.log_row(member.board, row, recorder.floor["w1"])
    member.final = row
    if exact:
        member.history.append((epoch, row["w1"]))
    return row


def critic_view(recorder: Recorder, d_params: dict) -> np.ndarray:
    """What a frame shows of the critic over the window (critic_values)."""
    run = recorder.run
    return critic_values(run.cfg["variant"], d_params, recorder.landscape, run.test)


def critic_values(variant: str, d_params: dict, grid: torch.Tensor, test: np.ndarray):
    """The critic as a picture shows it at the grid's points: GAN's D(x), or a WGAN critic's
    score less its mean on the test points (its losses use only differences: its level means
    nothing, and drifts)."""
    with torch.no_grad():
        score = lab5.critic(d_params, grid)
        if variant == "gan":
            return torch.sigmoid(score).numpy()
        test = torch.as_tensor(test, dtype=torch.float32)
        return (score - lab5.critic(d_params, test).mean()).numpy()


def draw_frame(recorder, member: MemberRecord, epoch: int, fake, values, row: dict) -> None:
    """A frame, on one colour scale for the run: GAN's D(x) on [0, 1]; a critic's from the
    lowest to the highest of its frames' ranges so far (settle_frames draws the earlier ones
    again at the run's end, on the whole run's)."""
    span = frame_range(values, recorder.region, recorder.run.cfg["variant"] == "gan")
    member.scale = run_scale([span, member.scale or span])
    heading = frame_title(TITLES[recorder.run.cfg["variant"]], epoch, row, recorder.floor)
    frame = {"values": values, "fake": fake, "heading": heading, "span": span}
    write_frame(recorder, member.folder, epoch, {**frame, "scale": member.scale})
    if member.board:
        board.log_frame(member.board, run_folder.frame_path(member.folder, epoch), epoch)


def write_frame(recorder: Recorder, folder: Path, epoch: int, frame: dict) -> None:
    """A frame's picture, on frame["scale"], and its arrays, kept to draw it again."""
    path = run_folder.frame_path(folder, epoch)
    picture = (frame["heading"], frame["fake"], frame["values"], frame["scale"])
    atomic_write(path, lambda tmp: recorder.draw(tmp, *picture))
    run_folder.save_frame_arrays(folder, epoch, frame)


def settle_frames(recorder: Recorder, member: MemberRecord) -> None:
    """Draw again, on the run's one colour scale, the member's frames drawn on a narrower one
    (its earlier frames, and a resumed run's)."""
    frames = run_folder.frame_arrays(member.folder)
    if not frames:
        return
    scale = run_scale([tuple(f["span"]) for f in frames.values()])
    for epoch, frame in frames.items():
        if tuple(frame["scale"]) != scale:
            write_frame(recorder, member.folder, epoch, {**frame, "scale": scale})


def record_epoch(recorder: Recorder, message: dict) -> list[str]:
    """Every member's epoch and the ensemble's means; returns the console lines to show."""
    epoch = message["epoch"]
    rows = [
        record_member(recorder, member, message, i) for i, member in enumerate(recorder.members)
    ]
    recorder.final = evaluation.ensemble_row(epoch, rows, recorder.columns[1:-1])
    if recorder.ensemble:
        write_row(recorder.ensemble, recorder.final)
    recorder.epochs_done = epoch
    recorder.train_s += message["seconds"]
    run = recorder.run
    blob = recorder.gaussian_w1
    factor = run.cfg["fit_factor"]
    legend = console.legend(recorder.floor, blob, len(run.test), factor, len(run.members))
    lines = legend if epoch == 0 else []
    if epoch == 0 or message.get("resumed"):
        lines += [f"warning: {warning}" for warning in recorder.warnings]
    if message.get("resumed"):  # the checkpoint's epoch, recorded again: said already
        return lines
    if recorder.final["w1_mean"] is not None or epoch == 1:
        lines.append(
            console.epoch_line(epoch, run.cfg["epochs"], recorder.final, recorder.floor["w1"])
        )
    return lines


def fit_warnings(recorder: Recorder) -> list[str]:
    """Where a model's final W1 is no better than the Gaussian blob's, it learnt no shape: one
    warning for the run, kept in its summary and said on the console."""
    names = recorder.run.names
    finals = {name: m.final["w1"] for name, m in zip(names, recorder.members) if m.final}
    failed = {n: w1 for n, w1 in finals.items() if w1 is not None and w1 >= recorder.gaussian_w1}
    if not failed:
        return []
    warning = console.unfitted_line(failed, len(names), recorder.gaussian_w1, recorder.run)
    recorder.warnings.append(warning)
    return [f"warning: {warning}"]


def write_summaries(recorder: Recorder, end: dict) -> None:
    """The one writer of summary.json: every member's, and the ensemble's when there are
    several (whose epochs_to_fit lists its members'). `end`: how the run ended, once it has."""
    seconds = {
        "warm_up_s": recorder.warm_up_s,
        "train_s": recorder.train_s,
        "record_s": recorder.record_s,
    }
    shared = {
        "status": end.get("status", "running"),
        "epochs_done": recorder.epochs_done,
        "noise_floor": recorder.floor,
        "gaussian_w1": recorder.gaussian_w1,
        "warnings": recorder.warnings,
        **{k: round(v, 3) for k, v in seconds.items()},
        "wall_s": round(time.time() - recorder.run.started, 2),
        "diverged_members": end.get("diverged_members"),
        "stopped_by": end.get("stopped_by"),  # the signal that interrupted it (SIGTERM, say)
        "compiled": recorder.uncompiled_because is None,
        "uncompiled_because": recorder.uncompiled_because,
    }
    threshold = recorder.run.cfg["fit_factor"] * recorder.floor["w1"]
    fits = [evaluation.epochs_to_fit(member.history, threshold) for member in recorder.members]
    for member, fit in zip(recorder.members, fits):
        summary = {**shared, "final": member.final, "epochs_to_fit": fit}
        run_folder.write_summary(member.folder, summary)
    if recorder.ensemble:
        summary = {**shared, "final": recorder.final, "epochs_to_fit": fits}
        run_folder.write_summary(recorder.run.folder, summary)


def start_in_worker(run: Run) -> worker.Worker:
    """The recorder in a process of its own: training goes on while the last epoch is recorded,
    and waits when the recorder falls worker.QUEUE_SIZE messages behind."""
    return worker.start_worker(partial(worker.serve, partial(open_recorder, run), handle))


def handle(recorder: Recorder, message: dict) -> list[str]:
    """One message from training (record, below); a file it cannot write ends the recording
    with FolderUnwritable, which says what the folder still holds (and so do the summaries,
    where they can still be written)."""
    try:
        return record(recorder, message)
    except OSError as e:
        with suppress(OSError):
            write_summaries(recorder, {"status": "unwritable"})
        reason = e.strerror or str(e)
        raise FolderUnwritable(
            e.filename, reason, recorder.checkpointed, recorder.run.folder
        ) from None


def record(recorder: Recorder, message: dict) -> list[str]:
    """An epoch's snapshot, the compile time, or the end ("status"), after which the tables are
    closed. Returns the console lines it produced."""
    started = time.perf_counter()
    recorder.warm_up_s = message.get("warm_up_s", recorder.warm_up_s)
    if "compile_failed" in message:
        recorder.uncompiled_because = f"compiling failed: {message['compile_failed']}"
    lines = record_epoch(recorder, message) if "epoch" in message else []
    if message.get("status") == "completed":
        lines += fit_warnings(recorder)
    recorder.record_s += time.perf_counter() - started
    write_summaries(recorder, message if "status" in message else {})
    if "epoch" in message:  # last: a checkpoint's epoch is fully recorded
        run_folder.save_checkpoint(recorder.run.folder, message)
        recorder.checkpointed = message["epoch"]
    if "status" in message:
        for member, cfg in zip(recorder.members, recorder.run.members):
            settle_frames(recorder, member)
            if member.board:
                board.log_hparams(member.board, cfg, member.final or {}, recorder.floor["w1"])
        close(recorder)
    return lines


def close(recorder: Recorder) -> None:
    """The recorder's open files: every table, every TensorBoard writer."""
    for member in recorder.members:
        member.table.file.close()
        if member.board:
            member.board.close()
    if recorder.ensemble:
        recorder.ensemble.file.close()
