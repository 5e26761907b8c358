"""How the command line tells a user what was wrong with their input: one line, exit status 2.

Commands raise what they raise (a `ManifestError` from the reader, pydantic's `ValidationError`
from a model, `UserError` for a bad option, `OSError` for a missing file); `describe()` turns each
into one line that names the file, the object and the field. Anything else is a bug in surge,
said as such on one line; `SURGE_DEBUG=1` shows its traceback.
"""

from __future__ import annotations

import csv
import json

from pydantic import ValidationError

USER_ERROR = 2  # the exit status of every input error, as click uses for usage errors
INTERNAL_ERROR = 70  # EX_SOFTWARE: surge itself failed


class UserError(ValueError):
    """The command's input (an option, a file's content) cannot be used; the message says why."""


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        parts.append(f"{loc or '(object)'}: {err['msg'].removeprefix('Value error, ')}")
    more = len(exc.errors()) - len(parts)
    return f"invalid {exc.title}: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def describe(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for an exception that reached the command line."""
    if isinstance(exc, ValidationError):
        return _validation_message(exc), USER_ERROR
    if isinstance(exc, UnicodeError):
        return f"not UTF-8 text: {exc}", USER_ERROR
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", USER_ERROR
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", USER_ERROR
    if isinstance(exc, csv.Error):
        return f"not a readable CSV file: {exc}", USER_ERROR
    if isinstance(exc, ValueError):  # UserError, ManifestError, InputError, TraceError, FormulaError…
        return " ".join(str(exc).split()) or type(exc).__name__, USER_ERROR
    if isinstance(exc, RecursionError | MemoryError):
        return f"input too large or too deeply nested ({type(exc).__name__})", USER_ERROR
    return (f"internal error, please report it: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(SURGE_DEBUG=1 shows the traceback)"), INTERNAL_ERROR
