"""The one exception lab5 raises for a user's mistake, and argparse's errors made into it."""

import argparse
import difflib


class UserError(Exception):
    """A mistake in the user's flags or input file: one line on stderr, exit status 2."""


def near_miss(parser: argparse.ArgumentParser, message: str) -> str:
    """ "(did you mean --epochs?)" for an unrecognised flag that is close to one the parser has."""
    if not message.startswith("unrecognized arguments:"):
        return ""
    unknown = [word for word in message.split()[2:] if word.startswith("-")]
    # argparse keeps its actions in a private list, stable since Python 3.2 and the only record
    flags = [flag for action in parser._actions for flag in action.option_strings]
    names = {flag.lstrip("-"): flag for flag in flags}  # the dashes would make any two alike
    for word in unknown:
        close = difflib.get_close_matches(word.split("=")[0].lstrip("-"), names, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {names[close[0]]}?)"
    return ""


def strict_parser(**options) -> argparse.ArgumentParser:
    """An ArgumentParser that takes no abbreviation of a flag (a typo that happens to be a
    prefix would change its meaning silently) and whose errors are one-line UserErrors, with the
    nearest flag it knows for one it does not."""
    parser = argparse.ArgumentParser(allow_abbrev=False, **options)

    def fail(message: str):
        raise UserError(message + near_miss(parser, message))

    parser.error = fail
    return parser
