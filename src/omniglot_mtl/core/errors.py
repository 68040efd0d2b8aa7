"""The exception types for bad input, and how a stage reports it."""

import difflib
import os
import sys
from collections.abc import Callable


class InputError(Exception):
    """Bad input from the user: a parameter, a file or a folder. The message names it."""


class ParamError(InputError):
    """A bad value in params.yaml; the message starts with its key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"params.yaml: {key}: {message}")
        self.key = key


def did_you_mean(value, choices, quote: bool = False) -> str:
    """``"; did you mean X?"`` with the closest of ``choices`` to ``value``, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    if not close:
        return ""
    return f"; did you mean {close[0]!r}?" if quote else f"; did you mean {close[0]}?"


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; bad input becomes one line on stderr and exit status 1, and so
    does an OS error (a full disk, a read-only folder, a missing permission), naming its file.

    Anything else is a bug and keeps its traceback. Under torchrun, where every process meets
    the same bad input, only each machine's local rank 0 prints the line.
    """
    try:
        main()
    except (InputError, OSError) as err:
        if isinstance(err, OSError):  # [Errno 28] No space left on device: 'models/x.pt'
            err = f"{err.filename or 'an output'}: {err.strerror or err}"
        if os.environ.get("LOCAL_RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
