"""What a newcomer reads and types: --help says each default once, as it is typed, and reads
back to that default; a flag is never taken for another by its prefix, and a near miss is
answered with the flag meant."""

import re

import pytest

from harness import flags
from harness.main import main
from plots import make_gifs


def help_entries(variant: str, capsys) -> dict[str, str]:
    """Each flag's help in `python variants/<variant>.py --help`, its lines joined."""
    with pytest.raises(SystemExit):
        flags.parse_config(variant, ["--help"])
    text = capsys.readouterr().out.split("\npresets (")[0]
    entries = {}
    for block in re.split(r"\n(?=  --)", text):
        if block.startswith("  --"):
            flag = block.split()[0]
            entries[flag] = " ".join(block.split()[1:])
    return entries


@pytest.mark.parametrize("variant", flags.VARIANTS)
def test_every_default_is_said_once_as_it_is_typed_and_reads_back(variant, capsys):
    entries = help_entries(variant, capsys)
    known = {flags.dashed(n): f for n, f in flags.FLAGS.items() if variant in f.variants}
    assert set(entries) == set(known)
    for dashed, text in entries.items():
        assert text.count("(default:") <= 1, text
        assert not re.search(r"None|True|False|\(\d+, \d+\)|\[[\d.]+, [\d.]+\]", text), text
        flag = known[dashed]
        shown = re.search(r"\(default: ([^()]*)\)$", text)
        if flag.shown or not shown:  # said in words, or no default to say
            continue
        name = dashed[2:].replace("-", "_")
        typed = flags.parse_config(variant, [dashed, *shown.group(1).split()])[name]
        assert flags.as_json(typed) == flags.as_json(flags.default(name, variant)), dashed


def test_flags_said_in_words_or_with_no_default(capsys):
    entries = help_entries("wgan_gp", capsys)
    assert entries["--train-size"].endswith("(default: 7000/8192, the report's share of the file)")
    default = flags.parse_config("wgan_gp", ["--train-size", "7000/8192"])["train_size"]
    assert default == flags.default("train_size", "wgan_gp")  # as --help says it, it reads
    assert entries["--hidden"].endswith("(default: 256,64)")
    assert entries["--betas"].endswith("(default: 0.9 0.999)")
    assert "(default" not in entries["--resume"] + entries["--vary"] + entries["--nesterov"]
    assert "docs/" not in " ".join(entries.values())  # every help says what, not where to read


@pytest.mark.parametrize(
    "argv,meant",
    [
        (["--epoch", "40"], "--epochs"),
        (["--batchsize", "32"], "--batch-size"),
        (["--lr=1", "--seedd", "3"], "--seed"),
    ],
)
def test_a_near_miss_is_an_error_that_names_the_flag_meant(argv, meant, capsys):
    assert main("wgan_gp", argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments: ") and err.count("\n") == 1
    assert err.endswith(f"(did you mean {meant}?)\n")


def test_a_prefix_is_not_taken_for_the_flag(capsys):
    """argparse would read --ep 40 as --epochs 40; lab5 refuses it."""
    assert main("wgan_gp", ["--ep", "40"]) == 2
    assert "unrecognized arguments: --ep 40" in capsys.readouterr().err
    assert main("wgan_gp", ["--qwerty"]) == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --qwerty\n"  # no guess


def test_make_gifs_help_says_its_defaults_and_takes_no_prefix(capsys):
    with pytest.raises(SystemExit):
        make_gifs.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: runs)" in text and "(default: 1.0)" in text
    assert make_gifs.main(["--forc"]) == 2
    assert capsys.readouterr().err.endswith("(did you mean --force?)\n")


@pytest.mark.parametrize(
    "variant,argv,owner",
    [
        ("gan", ["--gp-weight", "10"], "WGAN-GP's flag (python variants/wgan_gp.py), not GAN's"),
        (
            "wgan_gp",
            ["--epochs", "3", "--clip=0.1"],
            "WGAN's flag (python variants/wgan.py), not WGAN-GP's",
        ),
        (
            "wgan",
            ["--gan-loss", "nonsaturating"],
            "GAN's flag (python variants/gan.py), not WGAN's",
        ),
    ],
)
def test_another_variant_s_flag_is_named_as_such(variant, argv, owner, capsys):
    assert main(variant, argv) == 2
    flag = next(word.split("=")[0] for word in argv if word.startswith("--") and word != "--epochs")
    assert capsys.readouterr().err == f"error: {flag} is {owner}\n"
