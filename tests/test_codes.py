"""The categorical code beside z (--codes K): drawn uniformly, one-hot, from the batches' own
stream without shifting the noise; every code trained; the saved generator loads into a plain
nn.Sequential with noise_dim + K inputs, as docs/run-folder.md says."""

import numpy as np
import torch
from scipy import stats
from torch import nn

import lab5
from harness import run_folder
from harness.flags import parse_config
from tests.test_run import train


def test_codes_are_one_hot_uniform_and_leave_the_noise_as_it_was():
    cfg = parse_config("wgan_gp", ["--codes", "5", "--noise-dim", "3"])
    z = lab5.draw_latent(cfg, (4000,), torch.Generator().manual_seed(0))
    assert z.shape == (4000, 8)
    code = z[:, 3:]
    assert torch.equal(code.sum(1), torch.ones(4000)) and set(code.unique().tolist()) == {0, 1}
    assert stats.chisquare(code.sum(0).numpy()).pvalue > 1e-3
    plain = lab5.draw_latent({**cfg, "codes": 0}, (4000,), torch.Generator().manual_seed(0))
    assert torch.equal(z[:, :3], plain)
    # without codes, the stream is exactly what it was before codes existed
    assert torch.equal(plain, torch.randn(4000, 3, generator=torch.Generator().manual_seed(0)))


def test_every_code_is_trained_and_the_generator_loads_as_documented(tmp_path):
    code, out = train(tmp_path, "wgan_gp", "--codes", "4", "--noise-dim", "3", "--ema", "0")
    assert code == 0
    cfg = run_folder.read_config(out)
    G = nn.Sequential(
        nn.Linear(3 + 4, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 2)
    )
    G.load_state_dict(torch.load(out / "generator.pt"))
    initial = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")["g"]["0.weight"]
    moved = (G[0].weight.detach() - initial).abs().amax(0)  # per input, how far training took it
    assert (moved[3:] > 1e-6).all(), "a code's input weights never changed: it was never drawn"
    z = lab5.draw_latent(cfg, (50,), torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(G(z), lab5.generator(dict(G.state_dict()), z))
        switched = G(torch.cat([z[:, :3], torch.roll(z[:, 3:], 1, dims=1)], 1))
    assert not np.allclose(G(z).detach().numpy(), switched.numpy())
