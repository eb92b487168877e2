"""The packages that sweeps and the report's experiments need beside training
(requirements-sweeps.txt), imported here alone: where the training install left them out, a
command that needs them says so in one line and exits 2, instead of a traceback."""

import sys

try:
    import optuna
    import psutil
    import sqlalchemy
    from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
    from optuna.trial import TrialState
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
except ModuleNotFoundError as missing:
    print(
        f"error: this command needs {missing.name}, which sweeps and the report's experiments "
        "use beside training: pip install -r requirements-sweeps.txt",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

__all__ = [
    "DuplicatedStudyError",
    "IntegrityError",
    "OperationalError",
    "ProgrammingError",
    "SQLAlchemyError",
    "TrialState",
    "UpdateFinishedTrialError",
    "optuna",
    "psutil",
    "sqlalchemy",
]
