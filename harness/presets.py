"""The recipes people ask for by name (--preset NAME), each a command line's flags per variant:
what they stand for is what RESULTS.md measured, so that a preset is exactly that recipe."""

from harness.cli import flag_lines

# The report's loop, literally: its code's simultaneous update, one critic step per generator
# step, and what it left to PyTorch (batch 64 was its most likely choice, nn.Linear's init,
# RMSprop's alpha, no averaging); WGAN's clip, which it does not give, at lab5's first 0.1.
REPORT_LOOP = (
    "--order simultaneous --n-critic 1 --batch-size 64 --init torch --ema 0 --rms-alpha 0.99"
).split()
# WGAN-GP by epoch 30 in every seed measured (RESULTS.md §8): lr 5e-4 and penalty 0.3 in epoch
# 1, back at the report's by epoch 41 (what makes the fit fast, so in epochs, not a fraction),
# and the learning rate cooled to 0 over the last half of the run (the last 100 of 200; in a
# run shorter than 80 epochs the cooldown starts before the anneal ends).
FAST_START = (
    "--anneal lr=0.0005,gp_weight=0.3,ema=0.99 --anneal-epochs 40 --ema 0.999 "
    "--cooldown lr=0 --cooldown-epochs 0.5"
).split()
# The toy benchmark (RESULTS.md §4.1): PacGAN's protocol (100,000 points drawn, the mode
# metrics over 2,500 generated ones, W1 against 1,000 held out) and the settings a search on
# seeds 1000-1002 chose: small networks, Adam at a rate falling from 1e-3 to 1e-5 over the run.
TOY = (
    "--data ring8 --toy-size 100000 --train-size 99000 --test-size 1000 --eval-size 2500 "
    "--hidden 128,128,128 --critic-hidden 64,64,64 --optimizer adam --batch-size 256 "
    "--lr 1e-5 --anneal lr=1e-3 --epochs 150 --anneal-epochs 150 --ema 0.999"
).split()
TOY_VARIANT = {
    "gan": "--betas 0.5 0.999 --gan-loss nonsaturating".split(),
    "wgan": "--betas 0.5 0.999 --clip 0.1 --n-critic 5".split(),
    "wgan_gp": "--betas 0.5 0.9 --gp-weight 0.1 --n-critic 5".split(),
}
PRESETS = {
    "report": {"gan": REPORT_LOOP, "wgan": [*REPORT_LOOP, "--clip", "0.1"], "wgan_gp": REPORT_LOOP},
    "fast": {"wgan_gp": FAST_START},
    "toy": {variant: [*TOY, *flags] for variant, flags in TOY_VARIANT.items()},
}


def presets_help(variant: str) -> str:
    """Each preset the variant has, with its flags, for the end of --help."""
    lines = ["presets (--preset NAME: its flags first, then the ones given, which override them):"]
    for name, flags in PRESETS.items():
        if variant in flags:
            wrapped = flag_lines(flags[variant], 80)
            lines += [f"  {name:8}{wrapped[0]}", *(f"{'':10}{line}" for line in wrapped[1:])]
    return "\n".join(lines)
