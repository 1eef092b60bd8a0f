"""User-facing errors (printed as one `error:` line by the runner of common/cli.py)."""
import os


class UserError(Exception):
    """A problem the user can fix (bad flag, missing file, wrong shape). Printed as one line."""


def require_file(path, what, fix=""):
    """Raise UserError unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}" + (f" ({fix})" if fix else ""))
    return path


def parse_int_list(text, flag, minimum=None, example="3,4,5"):
    """'32, 8,1' -> [32, 8, 1]: the one parser of integer-list flags. Anything else (an empty
    item, a non-integer, a value below `minimum`) is a UserError naming `flag` and the item."""
    values = []
    for position, item in enumerate(str(text).split(","), 1):
        try:
            value = int(item)
        except ValueError:
            raise UserError(f"{flag} must be comma-separated integers such as {example}, got "
                            f"'{text}': item {position} '{item.strip()}' is not an integer") from None
        if minimum is not None and value < minimum:
            raise UserError(f"{flag} values must be >= {minimum}, got {value} (item {position})")
        values.append(value)
    return values
