"""The one exception lab5 raises for a user's mistake."""


class UserError(Exception):
    """A mistake in the user's flags or input file: one line on stderr, exit status 2."""
