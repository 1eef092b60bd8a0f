"""User-facing errors and the command-line wrapper that turns them into one line and exit code 2."""
import functools
import os
import sys


class UserError(Exception):
    """A problem the user can fix (bad flag, missing file, wrong shape). Printed as one line."""


def cli_entry(main):
    """Wrap a `main(argv=None)` so a UserError prints `error: ...` on stderr and exits with code 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def require_file(path, what, fix=""):
    """Raise UserError unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}" + (f" ({fix})" if fix else ""))
    return path


def parse_int_list(text, flag):
    """'32, 8,1' -> [32, 8, 1]; anything else is a UserError naming `flag`."""
    try:
        return [int(part) for part in str(text).split(",")]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, got '{text}'") from None
