"""The run's torch files: each network's parameters (generator.pt, critic.pt), and
checkpoint.pt, all that training needs to go on from a recorded epoch.

The checkpoint holds the stacked state (both networks, both optimisers, the generator's average,
the hyper-parameters), every member's random stream, the epoch and its losses, as plain tensors:
torch.load reads every file here without lab5. It is written last of an epoch's files, so its
epoch is always fully recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from errors import UserError
from recording.files import atomic_write

ARRAYS = ("state", "losses", "rngs")  # (nested dicts of) arrays; the other entries plain values


def save_torch(path: Path, obj) -> None:
    """torch.save, atomically, through a file opened here, so that a full disk is the OSError
    that says so (ENOSPC), not a RuntimeError of torch's zip writer."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            try:
                torch.save(obj, file)
            except RuntimeError as e:  # the writer's own error, raised over the file's
                if isinstance(e.__context__, OSError):
                    raise e.__context__ from None
                raise

    atomic_write(path, write)


def save_params(path: Path, params: dict) -> None:
    """torch.save a dict that nn.Sequential.load_state_dict accepts."""
    save_torch(path, {k: torch.as_tensor(v).detach().cpu().clone() for k, v in params.items()})


def map_arrays(f: Callable, snapshot: dict) -> dict:
    """f over the leaves of a snapshot's ARRAYS; its other entries as they are."""

    def leaves(tree):
        if isinstance(tree, dict):
            return {k: leaves(v) for k, v in tree.items()}
        return f(tree)

    return {k: leaves(v) if k in ARRAYS else v for k, v in snapshot.items()}


def save_checkpoint(folder: Path, snapshot: dict) -> None:
    """An epoch's snapshot (as training sends it: NumPy arrays) as tensors."""
    kept = {k: snapshot[k] for k in ("epoch", "seconds", *ARRAYS)}
    saved = map_arrays(torch.from_numpy, kept)
    save_torch(folder / "checkpoint.pt", saved)


def load_checkpoint(folder: Path, members: int) -> dict:
    """A checkpoint as the snapshot it was made from; a missing or unreadable one (a torn or
    foreign file fails in many ways) is a one-line error, and touches nothing."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        raise UserError(f"{path} is missing: the run cannot be resumed")
    try:
        saved = map_arrays(lambda t: t.numpy(), torch.load(path, weights_only=True))
        if len(saved["rngs"]) != members or not isinstance(saved["epoch"], int):
            raise ValueError("not this run's")
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"{path} is unreadable ({type(e).__name__}: {e}): the run cannot be resumed from it"
        ) from None
    return saved
