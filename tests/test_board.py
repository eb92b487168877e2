"""--tensorboard: every model's metrics.csv, frames and flags as TensorBoard events in its run
folder, read back here with TensorBoard's own reader; a resumed run's events take up where its
checkpoint was, each epoch once."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from harness.board import FLOOR_TAG, TAGS
from harness.main import main

TINY = "--train-size 512 --test-size 128 --frame-every 2 --no-compile --tensorboard".split()


def events(folder) -> EventAccumulator:
    found = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    found.Reload()
    return found


def rows(folder) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_number_frame_and_flag_of_a_run_is_an_event(tmp_path):
    out = tmp_path / "run"
    assert main("wgan_gp", [*TINY, "--epochs", "3", "--seeds", "2", "--out", str(out)]) == 0
    for seed in ("seed0", "seed1"):
        member = out / seed
        found = events(member)
        for column, tag in TAGS.items():
            written = {int(r["epoch"]): float(r[column]) for r in rows(member) if r.get(column)}
            logged = {e.step: e.value for e in found.Scalars(tag)} if written else {}
            assert logged.keys() == written.keys(), tag
            np.testing.assert_allclose(list(logged.values()), list(written.values()), rtol=1e-6)
        floor = json.loads((member / "summary.json").read_text())["noise_floor"]["w1"]
        w1 = {int(r["epoch"]): float(r["w1"]) / floor for r in rows(member) if r["w1"]}
        ratios = {e.step: e.value for e in found.Scalars(FLOOR_TAG)}
        assert ratios.keys() == w1.keys() == {0, 2, 3}
        np.testing.assert_allclose(list(ratios.values()), list(w1.values()), rtol=1e-6)
        images = found.Images("frame")
        assert [image.step for image in images] == [0, 2, 3]
        frame = Image.open(member / "frames" / "epoch_0000.png")
        assert (images[0].width, images[0].height) == frame.size
        hparams = found.PluginTagToContent("hparams")
        assert hparams and b"gp_weight" in b"".join(hparams.values())
        assert found.Scalars("final/w1")[-1].value == pytest.approx(float(rows(member)[-1]["w1"]))


def test_a_resumed_run_s_events_go_on_from_its_checkpoint_each_epoch_once(tmp_path):
    out = tmp_path / "run"
    assert main("gan", [*TINY, "--epochs", "3", "--out", str(out)]) == 0
    assert main("gan", ["--resume", str(out), "--epochs", "5"]) == 0
    steps = [e.step for e in events(out).Scalars(TAGS["energy"])]
    assert steps == [0, 1, 2, 3, 4, 5]
    assert len(list(out.glob("events.out.tfevents.*"))) == 2  # a writer each time it ran
    assert main("gan", [*TINY, "--epochs", "2", "--out", str(out), "--overwrite"]) == 0
    assert [e.step for e in events(out).Scalars(TAGS["energy"])] == [0, 1, 2]
