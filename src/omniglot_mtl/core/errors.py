"""The exception types for bad input, and how a stage reports it."""

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
