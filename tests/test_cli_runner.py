"""The one command-line runner (common/cli.py): one `error:` line and exit code 2 for anything that
escapes, tracebacks only with --debug, and `--help` of every command without TensorFlow."""
import functools
import json
import re
import subprocess
import sys

import pytest

from common.cli import ArgumentParser, command
from common.errors import UserError
from conftest import REPO

CONSOLE_SCRIPTS = re.findall(r'"([\w-]+) = ([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
# Every script that runs as a command (tools/ also holds the compare command's helper modules).
SCRIPTS = sorted(str(p.relative_to(REPO)) for folder in ("run_files", "tools")
                 for p in (REPO / folder).glob("*.py")
                 if "__main__" in p.read_text(encoding="utf-8"))
# How each command is started: ("call", module, function) | ("module", name) | ("path", script)
COMMANDS = ([("call", module, function) for _, module, function in CONSOLE_SCRIPTS]
            + [("module", "powerbert"), ("module", "pabee"), ("module", "ltp"),
               ("module", "adapler.inference")]
            + [("path", script) for script in SCRIPTS])
DRIVER = """
import argparse, json, runpy, sys, time
kind, target = sys.argv[1], sys.argv[2:]
sys.argv = [target[0], "--help"]
shown_help = argparse.ArgumentParser.print_help

def print_help(parser, file=None):
    # Every option of the command's own parser, with its help as --help renders it.
    formatter = parser._get_formatter()
    options = [{"flags": action.option_strings or [action.dest], "help": action.help or "",
                "shown": formatter._expand_help(action) if action.help else ""}
               for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    print("@@ options=" + json.dumps(options))
    shown_help(parser, file)

argparse.ArgumentParser.print_help = print_help
started = time.perf_counter()
try:
    if kind == "call":
        import importlib
        getattr(importlib.import_module(target[0]), target[1])(["--help"])
    elif kind == "module":
        runpy.run_module(target[0], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target[0], run_name="__main__")
except SystemExit as stop:
    assert stop.code in (0, None), stop.code
print(f"@@ tensorflow={'tensorflow' in sys.modules} seconds={time.perf_counter() - started:.2f}")
"""


# Timing tool rewritten on another branch; it still imports TensorFlow at module level.
TF_AT_IMPORT = set()


def test_every_entry_point_is_covered():
    assert len(CONSOLE_SCRIPTS) >= 12 and len(SCRIPTS) >= 15


@functools.lru_cache(maxsize=None)
def run_help(how):
    """`--help` of the command started as `how`, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", DRIVER, *how], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("how", COMMANDS, ids=lambda how: ":".join(how[1:]))
def test_help_is_fast_and_shows_defaults(how):
    done = run_help(how)
    assert done.returncode == 0, done.stderr
    if how[-1] not in TF_AT_IMPORT:
        assert "@@ tensorflow=False" in done.stdout, done.stdout[-300:]
        assert done.stderr == ""
    assert "--debug" in done.stdout and "--verbose" in done.stdout
    if how[-1] not in ("make_fixtures.py",):  # a --out folder only: no value default to show
        assert "(default" in done.stdout


# What a help text must say beyond what the flag does: its default, that it is required, or
# what happens without it (or that it changes nothing: flags kept for the original's scripts).
DEFAULT_WORDING = re.compile(r"\bdefault\b|\brequired\b|\bwhen absent\b|\bwithout it\b|"
                             r"\bignored\b|\bno effect\b", re.IGNORECASE)


@pytest.mark.parametrize("how", COMMANDS, ids=lambda how: ":".join(how[1:]))
def test_every_flag_explains_itself_and_its_default(how):
    done = run_help(how)
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout.split("@@ options=", 1)[1].splitlines()[0])
    assert options
    thin = []
    for option in options:
        explained = re.sub(r"\((default: [^)]*|required)\)", "", option["help"]).strip(" .;")
        positional = not option["flags"][0].startswith("-")
        if not explained or not (positional or DEFAULT_WORDING.search(option["shown"])):
            thin.append(f"{option['flags'][0]}: {option['shown']!r}")
    assert not thin, "flags whose help does not say what they do and their default:\n" + \
        "\n".join(thin)


# The docs page of each command -> the commands whose every flag it must name. The precision
# and distribution flags are listed once, on the page about them.
COMMAND_PAGES = {
    "docs/commands/finetune.md": [("call", "tools.finetune", "main")],
    "docs/commands/powerbert.md": [("call", "powerbert.cli", "main"),
                                   ("path", "tools/benchmark_powerbert.py"),
                                   ("path", "tools/powerbert_padding.py")],
    "docs/commands/adapler.md": [("call", "adapler.cli", name) for name in (
        "finetune_main", "saliency_main", "train_main", "evaluation_main", "glue_prediction_main")]
    + [("path", "run_files/run_glue_w_lr.py"), ("module", "adapler.inference"),
       ("path", "tools/benchmark_adapler.py"), ("path", "tools/rationale_eval.py")],
    "docs/commands/pabee.md": [("call", "pabee.cli", "main"), ("path", "tools/benchmark_pabee.py")],
    "docs/commands/ltp.md": [("call", "ltp.cli", "main")],
    "docs/commands/demo.md": [("call", "tools.demo", "main")],
    "docs/commands/compare.md": [("call", "tools.compare", "main")],
    "docs/commands/flops.md": [("call", "tools.flops_calculator", "main")],
    "docs/commands/benchmark.md": [("call", "tools.benchmark", "main")],
    "docs/results.md": [("path", "tools/render_docs.py")],
    "docs/export.md": [("call", "tools.export", "main")],
    "docs/own_data.md": [("call", "tools.predict", "main")],
}
LISTED_ELSEWHERE = {"--verbose", "--debug", "--fp16", "--bf16", "--FP16", "--BF16", "--strategy",
                    "--STRATEGY"}


def _names(text, flag):
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


@pytest.mark.parametrize("page", COMMAND_PAGES)
def test_docs_name_every_flag(page):
    text = (REPO / page).read_text(encoding="utf-8")
    missing = []
    for how in COMMAND_PAGES[page]:
        done = run_help(how)
        options = json.loads(done.stdout.split("@@ options=", 1)[1].splitlines()[0])
        missing += [f"{how[-1]}: {option['flags'][0]}" for option in options
                    if option["flags"][0].startswith("-")
                    and option["flags"][0] not in LISTED_ELSEWHERE
                    and not any(_names(text, flag) for flag in option["flags"])]
    assert not missing, f"{page} does not name: {missing}"


def test_flags_listed_elsewhere_are_on_their_pages():
    text = "\n".join((REPO / page).read_text(encoding="utf-8") for page in (
        "docs/commands/precision.md", "docs/commands/index.md"))
    assert [flag for flag in LISTED_ELSEWHERE if not _names(text, flag)] == []


def test_readme_links_every_command_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [page for page in COMMAND_PAGES if page not in readme] == []


def _run(main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, capsys.readouterr().err


def _raiser(error):
    @command
    def main(argv):
        ArgumentParser(prog="x").parse_args(argv)
        raise error
    return main


def test_user_error_is_one_line_exit_2(capsys):
    code, err = _run(_raiser(UserError("bad thing\nsecond line")), [], capsys)
    assert code == 2 and err == "error: bad thing; second line\n"


def test_unexpected_error_names_its_type_and_debug(capsys):
    code, err = _run(_raiser(KeyError("boom")), [], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: KeyError: 'boom'") and "--debug" in err
    code, err = _run(_raiser(KeyError("boom")), ["--debug"], capsys)
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: KeyError")


def test_os_error_names_the_file(capsys):
    code, err = _run(_raiser(OSError(28, "No space left on device", "/x/y.h5")), [], capsys)
    assert code == 2 and err == "error: cannot use /x/y.h5: No space left on device\n"


def test_usage_mistake_is_one_line(capsys):
    code, err = _run(_raiser(UserError("unused")), ["--nope"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: unrecognized arguments: --nope; see `x --help`")


def test_runner_flags_stay_out_of_the_namespace():
    args = ArgumentParser().parse_args(["--debug", "--verbose"])
    assert vars(args) == {}


def test_chatter_is_silenced_and_verbose_brings_it_back():
    code = ("from common.cli import command\n"
            "@command\n"
            "def main(argv):\n"
            "    import tensorflow as tf\n"
            "    print(int(tf.constant(1) + 1))\n"
            "main(__import__('sys').argv[1:])\n")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "GRPC_VERBOSITY")}
    quiet = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                           text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout == "2\n" and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "--verbose"], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=300)
    assert loud.returncode == 0 and loud.stderr.strip() != ""
