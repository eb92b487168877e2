"""--anneal and --cooldown: a whole run, from the loop down, against the eager reference stepped
through the same batches, its learning rate moved by torch.optim.lr_scheduler.LinearLR and its
penalty weight by hand, once per epoch."""

import csv

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR

import harness.main
import lab5
from harness import ensemble
from harness.flags import parse_config
from tests.eager_reference import make_reference, reference_step

LR = 0.001
LR_START = 0.005
GP = 0.001
GP_START = 1.0
EPOCHS = 2
LR_END = 0.0
GP_END = 0.1
RUN_EPOCHS = 5
ARGV = [
    *"--train-size 96 --test-size 32 --batch-size 16 --epochs".split(),
    str(RUN_EPOCHS),
    "--lr",
    str(LR),
    "--frame-every",
    "0",
    "--eval-every",
    "0",
    "--no-compile",
]


def reference(cfg: dict, starts: dict, ends: dict) -> dict:
    """The eager networks after cfg's epochs, the learning rate and the penalty weight moving
    from `starts` to cfg's values over the first --anneal-epochs and from them towards `ends`
    over the last --cooldown-epochs (where the two overlap, from the annealed value), on the
    batches the run drew."""
    points, _, source = harness.main.load_data(cfg)
    train = torch.as_tensor(harness.main.split_data(cfg, points, source)[0], dtype=torch.float32)
    steps = len(train) // (cfg["batch_size"] * cfg["n_critic"])
    init = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")
    lr = starts.get("lr", cfg["lr"])
    ref = make_reference({**cfg, "lr": lr}, init["g"], init["d"])
    warming = ensemble.span(cfg, "anneal_epochs")
    schedules = [
        LinearLR(ref[o], start_factor=1.0, end_factor=cfg["lr"] / lr, total_iters=warming)
        for o in ("opt_g", "opt_d")
    ]
    cooling = ensemble.span(cfg, "cooldown_epochs")
    rng = lab5.make_rng(cfg["seed"], "train")
    for epoch in range(cfg["epochs"]):
        if epoch == cfg["epochs"] - cooling and "lr" in ends:  # LinearLRs chain: they multiply
            end = ends["lr"] / cfg["lr"]
            schedules += [
                LinearLR(ref[o], start_factor=1.0, end_factor=end, total_iters=cooling)
                for o in ("opt_g", "opt_d")
            ]
        if "gp_weight" in cfg:
            start = starts.get("gp_weight", cfg["gp_weight"])
            annealed = start + (cfg["gp_weight"] - start) * min(epoch / warming, 1.0)
            cool = max(epoch - cfg["epochs"] + cooling, 0) / cooling
            gp = annealed + (ends.get("gp_weight", annealed) - annealed) * cool
            ref["cfg"] = {**cfg, "gp_weight": gp}
        batches = lab5.epoch_batches(train, cfg, steps, rng, "cpu")
        for i in range(steps):
            reference_step(ref, {k: v[i] for k, v in batches.items()})
        for schedule in schedules:
            schedule.step()
    return {"g": ref["G"].state_dict(), "d": ref["D"].state_dict()}


def flag(name: str, values: dict, epochs: int = EPOCHS) -> list[str]:
    if not values:
        return []
    return [
        f"--{name}",
        ",".join(f"{k}={v}" for k, v in values.items()),
        f"--{name}-epochs",
        str(epochs),
    ]


BOTH = ({"lr": LR_START, "gp_weight": GP_START}, {"lr": LR_END, "gp_weight": GP_END})


@pytest.mark.parametrize(
    "variant,starts,ends,windows",
    [
        ("wgan", {"lr": LR_START}, {}, (EPOCHS, EPOCHS)),
        ("wgan_gp", {"lr": LR_START}, {}, (EPOCHS, EPOCHS)),
        ("wgan_gp", {"gp_weight": GP_START}, {}, (EPOCHS, EPOCHS)),
        ("wgan_gp", {"lr": LR_START, "gp_weight": GP_START}, {}, (EPOCHS, EPOCHS)),
        ("gan", {}, {"lr": LR_END}, (EPOCHS, EPOCHS)),
        ("wgan_gp", {}, {"lr": LR_END, "gp_weight": GP_END}, (EPOCHS, EPOCHS)),
        ("wgan_gp", *BOTH, (EPOCHS, EPOCHS)),
        ("wgan_gp", *BOTH, (4, 3)),  # 4 + 3 epochs of 5: the cooldown from the annealed values
    ],
)
def test_scheduled_values_move_per_epoch_as_the_reference_s(
    tmp_path, variant, starts, ends, windows
):
    argv = [*ARGV, *flag("anneal", starts, windows[0]), *flag("cooldown", ends, windows[1])]
    if variant == "wgan_gp":
        argv += ["--gp-weight", str(GP)]
    cfg = parse_config(variant, [*argv, "--out", str(tmp_path / "run")])
    harness.main.train(cfg)
    run = {
        "g": torch.load(tmp_path / "run" / "generator_raw.pt"),
        "d": torch.load(tmp_path / "run" / "critic.pt"),
    }
    # float32 over 5 epochs: the run and the reference part by rounding, by up to 3.5e-4 of a
    # value on one machine's kernels; one scheduled value less moves them by 3e-2 or more
    torch.testing.assert_close(run, reference(cfg, starts, ends), rtol=1e-3, atol=1e-5)
    schedules = {"starts": starts, "ends": ends}
    for part, values in schedules.items():  # without any one of the schedules' values
        for name in values:
            less = {**schedules, part: {k: v for k, v in values.items() if k != name}}
            expected = reference(cfg, less["starts"], less["ends"])
            assert any(
                not torch.allclose(run["g"][k], expected["g"][k], rtol=1e-2, atol=1e-4)
                for k in run["g"]
            ), (part, name)


def test_each_member_anneals_to_its_own_value_in_tensors_of_its_own():
    """Each member's own end (here the --vary'd --lr), in a tensor per optimiser: one shared by
    both would be an aliased input, which the compiled step would recompile for."""
    cfg = parse_config(
        "wgan_gp", ["--vary", "lr=0.001,0.002", "--anneal", "lr=0.004,gp_weight=0.1"]
    )
    members = ensemble.member_configs(cfg)
    state = lab5.with_hyper(
        lab5.init_members(members, "cpu"), [ensemble.scheduled(m, 21) for m in members]
    )
    for opt in ("g_opt", "d_opt"):
        assert state[opt]["lr"].tolist() == pytest.approx([0.0025, 0.003])
    assert state["hyper"]["gp_weight"].tolist() == pytest.approx([0.0505, 0.0505])
    assert state["g_opt"]["lr"].data_ptr() != state["d_opt"]["lr"].data_ptr()


def test_without_annealing_the_state_is_left_as_it_is():
    cfg = parse_config("wgan_gp", [])
    state = lab5.init_members(ensemble.member_configs(cfg), "cpu")
    after = lab5.with_hyper(state, [ensemble.scheduled(cfg, 1)])
    assert all(after[k][n] is state[k][n] for k in ("g_opt", "d_opt", "hyper") for n in state[k])


def test_the_anneal_may_end_where_the_cooldown_starts():
    """40 + 100 epochs in 140: the flag's lr in epoch 41 only, as each schedule has it alone."""
    cfg = parse_config("wgan_gp", ["--epochs", "140", "--anneal", "lr=1e-3", "--cooldown", "lr=0"])
    assert [ensemble.scheduled(cfg, e)["lr"] for e in (1, 40, 41, 42, 140)] == pytest.approx(
        [1e-3, 1.225e-4, 1e-4, 0.99e-4, 0.01e-4]
    )


def test_the_penalty_s_part_of_the_loss_is_recorded_at_each_epoch_s_weight(tmp_path):
    """metrics.csv's weighted_penalty is the penalty times the weight the epoch trained with
    (here annealed from 1 to 0.001 over 2 epochs of 3)."""
    argv = [*ARGV, *"--epochs 3 --anneal gp_weight=1 --anneal-epochs 2".split()]
    cfg = parse_config("wgan_gp", [*argv, "--out", str(tmp_path / "run")])
    assert harness.main.train(cfg)["status"] == "completed"
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))[1:]
    weights = [float(r["weighted_penalty"]) / float(r["penalty"]) for r in rows]
    assert weights == pytest.approx([ensemble.scheduled(cfg, e)["gp_weight"] for e in (1, 2, 3)])
    assert weights == pytest.approx([1.0, 0.5005, 0.001])
