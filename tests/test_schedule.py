"""--lr-start: a whole run, from the loop down, against the eager reference stepped through the
same batches with torch.optim.lr_scheduler.LinearLR stepped once per epoch."""

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR

import lab5
from tests.eager_reference import make_reference, reference_step

LR, LR_START, FALL = 0.001, 0.005, 2
ARGV = ["--train-size", "96", "--test-size", "32", "--batch-size", "16", "--epochs", "4",
        "--lr", str(LR), "--frame-every", "0", "--eval-every", "0", "--no-compile"]


def reference(cfg: dict, start: float, fall: int) -> dict:
    """The eager networks after cfg's epochs: torch.optim from `start`, falling linearly to
    cfg's lr over `fall` epochs (LinearLR), on the batches the run drew."""
    points, _, source = lab5.load_data(cfg)
    train = torch.as_tensor(lab5.split_data(cfg, points, source)[0], dtype=torch.float32)
    steps = len(train) // (cfg["batch_size"] * cfg["n_critic"])
    init = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")
    ref = make_reference({**cfg, "lr": start}, init["g"], init["d"])
    schedules = [LinearLR(ref[o], start_factor=1.0, end_factor=cfg["lr"] / start,
                          total_iters=fall) for o in ("opt_g", "opt_d")]
    rng = lab5.make_rng(cfg["seed"], "train")
    for _ in range(cfg["epochs"]):
        batches = lab5.epoch_batches(train, cfg, steps, rng, "cpu")
        for i in range(steps):
            reference_step(ref, {k: v[i] for k, v in batches.items()})
        for schedule in schedules:
            schedule.step()
    return {"g": ref["G"].state_dict(), "d": ref["D"].state_dict()}


@pytest.mark.parametrize("variant", ["wgan", "wgan_gp"])
def test_the_learning_rate_falls_per_epoch_as_torch_s_linear_schedule(tmp_path, variant):
    argv = [*ARGV, "--lr-start", str(LR_START), "--lr-start-epochs", str(FALL)]
    cfg = lab5.parse_config(variant, [*argv, "--out", str(tmp_path / "run")])
    lab5.train(cfg)
    run = {"g": torch.load(tmp_path / "run" / "generator_raw.pt"),
           "d": torch.load(tmp_path / "run" / "critic.pt")}
    expected = reference(cfg, LR_START, FALL)
    torch.testing.assert_close(run, expected, rtol=2e-4, atol=2e-6)
    for start, fall in ((LR_START, 100), (LR, 1)):  # without the fall, or the faster start
        other = reference(cfg, start, fall)
        assert any(not torch.allclose(run["g"][k], other["g"][k], rtol=2e-3, atol=2e-5)
                   for k in run["g"]), (start, fall)


def test_the_rate_is_set_for_every_member_and_both_networks_apart():
    """Each member's own rate (here the --vary'd --lr), in two tensors: one shared by both
    optimisers would be an aliased input, which the compiled step would recompile for."""
    cfg = lab5.parse_config("wgan_gp", ["--vary", "lr=0.001,0.002", "--lr-start", "0.004"])
    members = lab5.member_configs(cfg)
    state = lab5.with_lr(lab5.init_members(members, "cpu"),
                         [lab5.epoch_lr(m, 21) for m in members])
    for opt in ("g_opt", "d_opt"):
        assert state[opt]["lr"].tolist() == pytest.approx([0.0025, 0.003])
    assert state["g_opt"]["lr"].data_ptr() != state["d_opt"]["lr"].data_ptr()
