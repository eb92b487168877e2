"""The recorder: what becomes of each epoch's snapshot that training sends — every member's
distances, frame, parameters and metrics row, the ensemble's means, the summaries and the
checkpoint. It runs in a process of its own beside training (plots.records.serve) and needs
nothing of the training code but what the run hands it: the networks as functions of their
parameter dicts (run["generator"], run["critic"]), the noise each member is scored on and the
noise floor's seed.
"""

from __future__ import annotations

import time

import torch

from plots import console, measures, records
from plots.frames import landscape_grid, make_frame_writer


def open_recorder(run: dict) -> dict:
    """What the recorder keeps between epochs: the test set's description, the noise floor, the
    fixed noise each member is scored on, the frame writer, the open tables."""
    test, variant = run["test"], run["cfg"]["variant"]
    columns = measures.metric_columns(variant, run["modes"] is not None)
    resumed = run["checkpoint"] is not None  # then the tables go on from their kept rows
    members = [{"folder": folder, "final": None, "z": z,
                **records.open_metrics(folder, columns, resumed)}
               for z, folder in zip(run["eval_z"], run["member_dirs"])]
    tables = [member["table"] for member in members]
    if run["folder"] not in run["member_dirs"]:  # an ensemble's own folder: means over members
        stats = [f"{c}_{s}" for c in columns[1:-1] for s in ("mean", "se")]
        tables.append(records.open_table(run["folder"] / "ensemble.csv",
                                         ["epoch", "members", *stats], resumed))
    floor = measures.noise_floor(run["train"], test,
                                 torch.Generator().manual_seed(run["floor_seed"]),
                                 modes=run["modes"], counted=run["cfg"]["eval_size"])
    return {"run": run, "floor": floor,
            "test": measures.describe_test_set(test), "members": members, "columns": columns,
            "tables": tables, "final": None, "epochs_done": 0,
            "grid": torch.as_tensor(landscape_grid(run["window"]), dtype=torch.float32),
            "draw": make_frame_writer(run["window"], test, run["title"], variant == "gan"),
            "train_s": 0.0, "warm_up_s": 0.0, "record_s": 0.0}


def is_due(every: int, epoch: int, last: int) -> bool:
    return epoch == last or (every > 0 and epoch % every == 0)


def record_member(rec: dict, member: dict, message: dict, i: int) -> dict:
    """One member's epoch: its distances, its frame (the critic's landscape, D(x) for GAN, under
    the points), its parameters and its metrics row."""
    run, cfg, epoch = rec["run"], rec["run"]["cfg"], message["epoch"]
    state = message["state"]  # the generator's average is the one sampled, drawn and saved
    g, d, raw = ({k: torch.from_numpy(v[i]) for k, v in params.items()}
                 for params in (state["ema"]["g"], state["d"], state["g"]))
    frame_due = cfg["frame_every"] > 0 and is_due(cfg["frame_every"], epoch, cfg["epochs"])
    exact = frame_due or is_due(cfg["eval_every"], epoch, cfg["epochs"])
    with torch.no_grad():
        generated = run["generator"](g, member["z"]).double().numpy()
        score = run["critic"](d, rec["grid"]) if frame_due else None
    # the test set's size for the distances; --eval-size points for the mode counts
    fake, counted = generated[:len(run["test"])], generated[:cfg["eval_size"] or len(run["test"])]
    row = {"epoch": epoch, **{k: float(v[i]) for k, v in message["losses"].items()},
           **measures.sample_metrics(fake, rec["test"]),
           **(measures.mode_metrics(counted, **run["modes"]) if run["modes"] else {}),
           "w1": measures.wasserstein1(fake, run["test"]) if exact else None,
           "seconds": round(message["seconds"], 4)}
    if frame_due:
        values = (torch.sigmoid(score) if cfg["variant"] == "gan" else score).numpy()
        records.atomic_write(member["folder"] / "frames" / f"epoch_{epoch:04d}.png", lambda tmp:
                             rec["draw"](tmp, epoch, fake, values, row, rec["floor"]))
    records.save_params(member["folder"] / "generator.pt", g)
    records.save_params(member["folder"] / "generator_raw.pt", raw)  # the one trained
    records.save_params(member["folder"] / "critic.pt", d)
    member["table"][1].writerow(row)
    member["final"], member["history"] = row, member["history"] + [(epoch, row["w1"])] * exact
    return row


def record_epoch(rec: dict, message: dict) -> list[str]:
    """Every member's epoch and the ensemble's means; returns the console lines to show."""
    epoch, floor = message["epoch"], rec["floor"]
    rows = [record_member(rec, member, message, i) for i, member in enumerate(rec["members"])]
    rec["final"] = measures.ensemble_row(epoch, rows, rec["columns"][1:-1])
    if len(rec["tables"]) > len(rec["members"]):
        rec["tables"][-1][1].writerow(rec["final"])
    rec["epochs_done"], rec["train_s"] = epoch, rec["train_s"] + message["seconds"]
    lines = [f"noise floor (test set vs training samples of its size): W1 {floor['w1']:.4f} ± "
             f"{floor['w1_sd']:.4f}, energy {floor['energy']:.5f}"] if epoch == 0 else []
    if rec["final"]["w1_mean"] is not None or epoch == 1:
        epochs = rec["run"]["cfg"]["epochs"]
        lines.append(console.epoch_line(epoch, epochs, rec["final"], floor["w1"]))
    return lines


def write_summaries(rec: dict, status: str, diverged: list[str] | None) -> None:
    """The one writer of summary.json: every member's, and the ensemble's when there are
    several (whose epochs_to_fit lists its members')."""
    run = rec["run"]
    shared = {"status": status, "epochs_done": rec["epochs_done"], "noise_floor": rec["floor"],
              **{k: round(rec[k], 3) for k in ("warm_up_s", "train_s", "record_s")},
              "wall_s": round(time.time() - run["started"], 2), "diverged_members": diverged}
    threshold = run["cfg"]["fit_factor"] * rec["floor"]["w1"]
    fits = [measures.epochs_to_fit(member["history"], threshold) for member in rec["members"]]
    for member, fit in zip(rec["members"], fits):
        records.write_json(member["folder"] / "summary.json",
                           {**shared, "final": member["final"], "epochs_to_fit": fit})
    if run["folder"] not in run["member_dirs"]:
        records.write_json(run["folder"] / "summary.json",
                           {**shared, "final": rec["final"], "epochs_to_fit": fits})


def handle(rec: dict, message: dict) -> list[str]:
    """One message from training: an epoch's snapshot, the compile time, or the end ("status"),
    after which the tables are closed. Returns the console lines it produced."""
    started = time.perf_counter()
    rec["warm_up_s"] = message.get("warm_up_s", rec["warm_up_s"])
    lines = record_epoch(rec, message) if "epoch" in message else []
    rec["record_s"] += time.perf_counter() - started
    write_summaries(rec, message.get("status", "running"), message.get("diverged_members"))
    if "epoch" in message:  # last: a checkpoint's epoch is fully recorded
        records.save_checkpoint(rec["run"]["folder"], message)
    for file, _ in rec["tables"] if "status" in message else []:
        file.close()
    return lines
