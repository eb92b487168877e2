"""--anneal: a whole run, from the loop down, against the eager reference stepped through the
same batches, its learning rate moved by torch.optim.lr_scheduler.LinearLR and its penalty
weight by hand, once per epoch."""

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR

import lab5
from tests.eager_reference import make_reference, reference_step

LR, LR_START, GP, GP_START, EPOCHS = 0.001, 0.005, 0.001, 1.0, 2
ARGV = ["--train-size", "96", "--test-size", "32", "--batch-size", "16", "--epochs", "4",
        "--lr", str(LR), "--frame-every", "0", "--eval-every", "0", "--no-compile"]


def reference(cfg: dict, starts: dict, epochs: int) -> dict:
    """The eager networks after cfg's epochs, the learning rate and the penalty weight moving
    from `starts` to cfg's values over `epochs` epochs, on the batches the run drew."""
    points, _, source = lab5.load_data(cfg)
    train = torch.as_tensor(lab5.split_data(cfg, points, source)[0], dtype=torch.float32)
    steps = len(train) // (cfg["batch_size"] * cfg["n_critic"])
    init = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")
    lr = starts.get("lr", cfg["lr"])
    ref = make_reference({**cfg, "lr": lr}, init["g"], init["d"])
    schedules = [LinearLR(ref[o], start_factor=1.0, end_factor=cfg["lr"] / lr,
                          total_iters=epochs) for o in ("opt_g", "opt_d")]
    rng = lab5.make_rng(cfg["seed"], "train")
    for epoch in range(cfg["epochs"]):
        if "gp_weight" in cfg:
            start, t = starts.get("gp_weight", cfg["gp_weight"]), min(epoch / epochs, 1.0)
            ref["cfg"] = {**cfg, "gp_weight": start + (cfg["gp_weight"] - start) * t}
        batches = lab5.epoch_batches(train, cfg, steps, rng, "cpu")
        for i in range(steps):
            reference_step(ref, {k: v[i] for k, v in batches.items()})
        for schedule in schedules:
            schedule.step()
    return {"g": ref["G"].state_dict(), "d": ref["D"].state_dict()}


@pytest.mark.parametrize("variant,starts", [("wgan", {"lr": LR_START}),
                                            ("wgan_gp", {"lr": LR_START}),
                                            ("wgan_gp", {"gp_weight": GP_START}),
                                            ("wgan_gp", {"lr": LR_START, "gp_weight": GP_START})])
def test_annealed_values_move_per_epoch_as_the_reference_s(tmp_path, variant, starts):
    anneal = ",".join(f"{k}={v}" for k, v in starts.items())
    argv = [*ARGV, "--anneal", anneal, "--anneal-epochs", str(EPOCHS)]
    if variant == "wgan_gp":
        argv += ["--gp-weight", str(GP)]
    cfg = lab5.parse_config(variant, [*argv, "--out", str(tmp_path / "run")])
    lab5.train(cfg)
    run = {"g": torch.load(tmp_path / "run" / "generator_raw.pt"),
           "d": torch.load(tmp_path / "run" / "critic.pt")}
    torch.testing.assert_close(run, reference(cfg, starts, EPOCHS), rtol=2e-4, atol=2e-6)
    penalty_only = {k: v for k, v in starts.items() if k != "lr"}
    for other in [{}, *([penalty_only] if penalty_only not in ({}, starts) else [])]:
        expected = reference(cfg, other, EPOCHS)  # without the annealing, or without its lr's
        assert any(not torch.allclose(run["g"][k], expected["g"][k], rtol=2e-3, atol=2e-5)
                   for k in run["g"]), other


def test_each_member_anneals_to_its_own_value_in_tensors_of_its_own():
    """Each member's own end (here the --vary'd --lr), in a tensor per optimiser: one shared by
    both would be an aliased input, which the compiled step would recompile for."""
    cfg = lab5.parse_config("wgan_gp", ["--vary", "lr=0.001,0.002", "--anneal",
                                        "lr=0.004,gp_weight=0.1"])
    members = lab5.member_configs(cfg)
    state = lab5.with_hyper(lab5.init_members(members, "cpu"),
                            [lab5.annealed(m, 21) for m in members])
    for opt in ("g_opt", "d_opt"):
        assert state[opt]["lr"].tolist() == pytest.approx([0.0025, 0.003])
    assert state["hyper"]["gp_weight"].tolist() == pytest.approx([0.0505, 0.0505])
    assert state["g_opt"]["lr"].data_ptr() != state["d_opt"]["lr"].data_ptr()


def test_without_annealing_the_state_is_left_as_it_is():
    cfg = lab5.parse_config("wgan_gp", [])
    state = lab5.init_members(lab5.member_configs(cfg), "cpu")
    after = lab5.with_hyper(state, [lab5.annealed(cfg, 1)])
    assert all(after[k][n] is state[k][n] for k in ("g_opt", "d_opt", "hyper") for n in state[k])
