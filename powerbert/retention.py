"""Retention configurations: derive one from the learned Soft-Extract masses (the reference's
`get_configuration`), parse `--RETENTION_CONFIG` (its utils/retention_parser.py, plus the missing
"at least 1" check), format one for that flag, and warn when a configuration search barely
moved."""
from common.errors import UserError, parse_int_list

BARELY_MOVED = 0.9  # a configuration keeping this share of all word-vectors or more


def derive_retention(masses):
    """Per-block masses -> word-vectors kept per block: floor, at least 1, never more than the
    previous block (the reference code's rule; e.g. [3.9, 5.0, 0.2] -> [3, 3, 1])."""
    config = []
    for mass in masses:
        value = max(int(mass), 1)
        config.append(value if not config else min(value, config[-1]))
    return config


def format_retention(config):
    """[128, 64, 32] -> '128,64,32', the form --RETENTION_CONFIG takes."""
    return ",".join(str(value) for value in config)


def parse_retention(text, num_layers, max_length, flag="--RETENTION_CONFIG"):
    """Parse '128,128,64,...': one integer per block, each in [1, max_length], non-increasing
    (errors name `flag`)."""
    example = format_retention([max_length] * num_layers)
    values = []
    for position, value in enumerate(parse_int_list(text, flag, example=example), 1):
        if value < 1:
            raise UserError(f"{flag} item {position} is {value}; every block keeps "
                            "at least 1 word-vector ([CLS]), use values >= 1")
        if value > max_length:
            raise UserError(f"{flag} item {position} is {value}, more than the task's "
                            f"sequence length {max_length}; use values <= {max_length}")
        if values and value > values[-1]:
            raise UserError(f"{flag} item {position} ({value}) is larger than the "
                            f"one before it ({values[-1]}); the values must be non-increasing")
        values.append(value)
    if len(values) != num_layers:
        raise UserError(f"{flag} has {len(values)} values but the model has "
                        f"{num_layers} blocks; give one value per block, e.g. {example}")
    return values


def movement_warning(masses, max_length, travel, lr_soft_extract):
    """A warning (str) when the learned masses still hold almost every word-vector, naming the
    flag to raise; None otherwise. `travel` is the summed retention learning rate over the
    search: with Adam, a retention parameter falls by at most about that much."""
    kept = sum(masses) / (len(masses) * max_length)
    if kept < BARELY_MOVED:
        return None
    message = (f"Warning: the retention configuration barely moved (the masses keep {kept:.0%} "
               f"of the word-vectors); ")
    if travel <= 0:  # a one-step search: the schedule is 0 at its only step
        return message + ("the LR_SOFT_EXTRACT schedule is 0 at every step of so short a "
                          "search; raise --EPOCHS or use more training data")
    if travel < 1:
        return message + (
            f"in this search a retention parameter can fall by at most {travel:.2f} (the summed "
            f"LR_SOFT_EXTRACT schedule), so raise --LR_SOFT_EXTRACT to at least "
            f"{lr_soft_extract / travel:.2g} or raise --EPOCHS")
    return message + "raise --LAMBDA to trade more accuracy for speed"
