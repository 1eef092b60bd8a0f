"""User-facing errors (printed as one `error:` line by the runner of common/cli.py)."""
import os


class UserError(Exception):
    """A problem the user can fix (bad flag, missing file, wrong shape). Printed as one line."""


def require_file(path, what, fix=""):
    """Raise UserError unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}" + (f" ({fix})" if fix else ""))
    return path


def parse_int_list(text, flag, minimum=None):
    """'32, 8,1' -> [32, 8, 1]; anything else (or a value below `minimum`) is a UserError
    naming `flag`."""
    try:
        values = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, got '{text}'") from None
    if minimum is not None and any(value < minimum for value in values):
        raise UserError(f"{flag} values must be >= {minimum}, got '{text}'")
    return values
