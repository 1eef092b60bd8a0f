"""The one runner behind every command line, and the argument parser they all use.

    from common.cli import ArgumentParser, command

    @command
    def main(argv):                        # argv: the arguments, without the program name
        args = build_parser().parse_args(argv)
        from mypackage import pipeline     # TensorFlow is imported here, after parsing
        pipeline.run(args)

`command` wraps `main(argv)` so that:
  * any exception that escapes becomes one line `error: <cause>` on stderr and exit code 2
    (UserError: its message; OSError: the file and the system's reason; anything else: its type
    and message with a hint to rerun with --debug); the full traceback only with `--debug`;
  * TensorFlow, absl and CUDA stay quiet (environment set here, before TensorFlow is imported,
    and its import-time lines swallowed) unless `--verbose` is given;
  * Ctrl-C ends with `error: interrupted` and exit code 130.

`ArgumentParser` adds `--debug` and `--verbose` to every command, shows each flag's default in
`--help`, and turns usage mistakes into a UserError (the same one-line answer). Parsers live in
modules that do not import TensorFlow, so `--help` answers at once.
"""
import argparse
import contextlib
import copy
import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
import traceback
import warnings

from common.errors import UserError

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",   # TensorFlow's C++ log (the cuInit 'error' of CPU machines)
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "3",
    "TRANSFORMERS_VERBOSITY": "error",  # truncation is reported by common.data instead
}
NOISY_MODULES = r"(tensorflow|keras|tf_keras|absl|h5py|transformers)(\.|$)"
RUNNER_FLAGS = ("--debug", "--verbose")


# ---------------------------------------------------------------- argument parsing

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows `(default: X)` after every flag whose default is a value, `(default: off)` after a
    switch, `(required)` after a required flag; a flag without a default says in its help what
    happens when it is absent."""

    @staticmethod
    def _suffix(action):
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            return None
        if action.required:
            return "(required)"
        if isinstance(action, argparse._StoreTrueAction) and action.default in (
                False, argparse.SUPPRESS):
            return "(default: off)"
        if isinstance(action, argparse._StoreFalseAction) and action.default is True:
            return "(default: on)"
        if any(action.default is unset for unset in (None, False, argparse.SUPPRESS)) or (
                action.default == ""):  # `is`: a default of 0 is a value
            return None
        return "(default: %(default)s)"

    def _get_help_string(self, action):
        text = action.help or ""
        suffix = self._suffix(action)
        if suffix is None or "default" in text.lower() or "required" in text.lower():
            return text
        return f"{text} {suffix}".strip()

    def _format_action(self, action):
        if not action.help and self._suffix(action):
            action = copy.copy(action)
            action.help = self._suffix(action)
        return super()._format_action(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with --debug / --verbose, defaults in --help and usage errors as UserError."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # The runner reads these two from argv itself; SUPPRESS keeps them out of the parsed
        # namespace, which some pipelines log verbatim (PoWER-BERT's log_file.txt).
        group = self.add_argument_group("output of this command")
        group.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                           help="also show TensorFlow's, absl's and CUDA's own log lines")
        group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="print the full Python traceback of an error")

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        for flag in RUNNER_FLAGS:
            parsed.__dict__.pop(flag[2:], None)
        return parsed, extras

    def error(self, message):
        raise UserError(f"{message}; see `{self.prog} --help`")


# ---------------------------------------------------------------- quiet TensorFlow

@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of tensorflow with stderr silenced: its import prints absl lines
    (oneDNN, 'Could not find cuda drivers') before any log level is read."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_silenced():
            self.loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow():
    """Silence TensorFlow/absl/CUDA chatter. Call before TensorFlow is imported."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


# ---------------------------------------------------------------- the runner

def describe(error):
    """One line saying what went wrong."""
    if isinstance(error, UserError):
        return _one_line(str(error))
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return f"cannot use{where}: {error.strerror}"
    if isinstance(error, MemoryError):
        return "out of memory; lower the batch size or the max length"
    message = _one_line(str(error))
    return (f"{type(error).__name__}{': ' + message if message else ''} (unexpected; rerun with "
            "--debug for the full traceback)")


def _one_line(text):
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(message, code=2):
    print(f"error: {message}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(code)


def command(main):
    """Wrap `main(argv)` as a command line: see the module docstring. The wrapper takes
    `argv=None` (sys.argv[1:]) and returns what `main` returns."""

    @functools.wraps(main)
    def runner(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in argv
        if "--verbose" not in argv:
            quiet_tensorflow()
        try:
            return main(argv)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except BaseException as error:  # noqa: B902 - every escape becomes one line
            if debug:
                traceback.print_exc()
            fail(describe(error))

    return runner
