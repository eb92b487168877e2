"""Command lines: a parser that takes no abbreviation of a flag and whose errors are one-line
UserErrors naming the flag meant, the readers of the values flags take (counts and fractions,
NAME=VALUE lists, widths), and a command line laid out in lines. Every command of lab5 uses it."""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import sys
from typing import Callable

from errors import UserError


def unknown_flags(message: str) -> list[str]:
    """The flags of argparse's "unrecognized arguments: ..." (none for another error)."""
    if not message.startswith("unrecognized arguments:"):
        return []
    return [word.split("=")[0] for word in message.split()[2:] if word.startswith("-")]


def near_miss(parser: argparse.ArgumentParser, message: str) -> str:
    """ "(did you mean --epochs?)" for an unrecognised flag that is close to one the parser has."""
    # argparse keeps its actions in a private list, stable since Python 3.2 and the only record
    flags = [flag for action in parser._actions for flag in action.option_strings]
    names = {flag.lstrip("-"): flag for flag in flags}  # the dashes would make any two alike
    for word in unknown_flags(message):
        close = difflib.get_close_matches(word.lstrip("-"), names, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {names[close[0]]}?)"
    return ""


def strict_parser(elsewhere: dict[str, str] | None = None, **options) -> argparse.ArgumentParser:
    """An ArgumentParser that takes no abbreviation of a flag (a typo that happens to be a
    prefix would change its meaning silently) and whose errors are one-line UserErrors, with the
    nearest flag it knows for one it does not; `elsewhere`: for a flag that another command has,
    the error that says so (--gp-weight to the GAN script: it is WGAN-GP's)."""
    parser = argparse.ArgumentParser(allow_abbrev=False, **options)

    def fail(message: str):
        other = [flag for flag in unknown_flags(message) if flag in (elsewhere or {})]
        raise UserError(elsewhere[other[0]] if other else message + near_miss(parser, message))

    parser.error = fail
    return parser


def parse_size(text: str) -> int | float:
    """A count or a share: '7000' (points, epochs), '0.85' or '7000/8192' (of the file's rows,
    of the run's epochs)."""
    try:
        if text.strip().lstrip("+-").isdigit():
            return int(text)
        numerator, _, denominator = text.partition("/")
        return float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        message = f"expected a count, a fraction or a share like 7000/8192, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def parse_pairs(text: str, many: bool) -> tuple[str, list[float]] | dict[str, float]:
    """'lr=1e-4,3e-4' -> ('lr', [0.0001, 0.0003]) (many values of one), or 'lr=5e-4,ema=0.9' ->
    {'lr': 0.0005, 'ema': 0.9} (a value each)"""
    try:
        if many:
            name, _, values = text.partition("=")
            return name.replace("-", "_"), [float(v) for v in values.split(",")]
        pairs = [part.split("=") for part in text.split(",")]
        return {name.replace("-", "_"): float(value) for name, value in pairs}
    except ValueError:
        shape = "NAME=V1,V2,..." if many else "NAME=VALUE,..."
        raise argparse.ArgumentTypeError(f"expected {shape} with numbers, got {text!r}") from None


def parse_vary(text: str) -> tuple[str, list[float]]:
    return parse_pairs(text, many=True)


def parse_values(text: str) -> dict[str, float]:
    return parse_pairs(text, many=False)


def parse_widths(text: str) -> list[int]:
    """'512,512,512' -> [512, 512, 512]: the hidden layers' widths, input side first"""
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 256,64, got {text!r}") from None


def flag_lines(flags: list[str], width: int) -> list[str]:
    """A command line's flags, each with its values, in lines of at most `width` characters."""
    groups = []
    for token in flags:
        if token.startswith("--"):
            groups.append(token)
        else:  # a value stays with its flag
            groups[-1] += f" {token}"
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) <= width:
            lines[-1] += f" {group}"
        else:
            lines.append(group)
    return lines


def dashed(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_docs(cls) -> dict[str, str]:
    """Each field's docstring, the string under it (as in CleanRL's Args), on one line."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    return {
        node.target.id: " ".join(after.value.value.split())
        for node, after in zip(body, body[1:])
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
    }


def exit_status(command: Callable[[], int | None], interrupted: str) -> int:
    """Run a command and say how it ended: what it returns (None: 0); 2 and one line for a
    user's mistake (UserError); 130 and `interrupted` for Ctrl-C."""
    try:
        return command() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
