"""The engine of `tools/render_docs.py`: every measured figure of README.md and docs/ rendered
from (or, with `check`, compared with) the result files of results/ it names between markers."""
import json
import os
import re
import sys
from typing import NamedTuple

from common.errors import UserError
from common.files import write_text

BLOCK = re.compile(r"(<!-- result: ([^\s>]+) -->\n)(.*?)(<!-- /result -->)", re.DOTALL)
FENCE = re.compile(r"(^```.*?^```[^\n]*$)", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(<!--r:([^\s>]+?)-->)(.*?)(<!--/r-->)")
OPENING = re.compile(r"<!--r:|<!-- result:")
CODE_SPAN = re.compile(r"`[^`\n]+`")


class Problem(NamedTuple):
    """A figure that differs from its file (`missing`: whose file or path does not exist)."""
    line: int
    text: str
    missing: bool


def documents(root):
    """README.md and every markdown file under docs/, as paths relative to `root`."""
    found = ["README.md"] if os.path.exists(os.path.join(root, "README.md")) else []
    for folder, _, files in sorted(os.walk(os.path.join(root, "docs"))):
        found += sorted(os.path.relpath(os.path.join(folder, name), root)
                        for name in files if name.endswith(".md"))
    return found


class Results:
    """The result files of `root`/results, read once each."""

    def __init__(self, root):
        self.folder = os.path.join(root, "results")
        self.files = {}

    def value(self, reference):
        """The object `reference` (`name.key.0.key[|format]`) points at."""
        path, _, spec = reference.partition("|")
        name, *keys = path.split(".")
        if name not in self.files:
            file = os.path.join(self.folder, name + ".json")
            if not os.path.exists(file):
                raise LookupError(f"no result file results/{name}.json")
            with open(file, encoding="utf-8") as handle:
                self.files[name] = json.load(handle)
        value = self.files[name]
        for depth, key in enumerate(keys):
            try:
                value = value[int(key)] if isinstance(value, list) else value[key]
            except (KeyError, IndexError, ValueError, TypeError):
                raise LookupError(f"results/{name}.json has no "
                                  f"{'.'.join(keys[:depth + 1])}") from None
        return value, spec


def as_text(value, spec):
    if isinstance(value, dict) and "columns" in value and "rows" in value:
        lines = ["| " + " | ".join(value["columns"]) + " |",
                 "|" + "---|" * len(value["columns"])]
        lines += ["| " + " | ".join(as_text(cell, "") for cell in row) + " |"
                  for row in value["rows"]]
        return "\n".join(lines)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    raise LookupError(f"a {type(value).__name__} is neither a figure nor a table")


def render(text, results, where):
    """(`text` with every figure rendered, [Problem]): one per figure that cannot be
    rendered or differs from what `text` holds. Fenced code blocks are left alone (they may show
    the markers)."""
    problems, parts = [], FENCE.split(text)
    for index in range(0, len(parts), 2):
        first_line = "".join(parts[:index]).count("\n") + 1

        def replace(match, block):
            start, reference, shown, end = match.groups()
            line = first_line + match.string.count("\n", 0, match.start())
            try:
                value, spec = results.value(reference)
                wanted = as_text(value, spec) + ("\n" if block else "")
            except LookupError as error:
                problems.append(Problem(line, f"{where}:{line}: {reference}: {error}", True))
                return match.group(0)
            if wanted != shown:
                problems.append(Problem(line, f"{where}:{line}: {reference}: "
                                              f"{difference(shown, wanted)}", False))
            return start + wanted + end

        parsed = {match.start() for pattern in (BLOCK, INLINE)
                  for match in pattern.finditer(parts[index])}
        code_spans = [match.span() for match in CODE_SPAN.finditer(parts[index])]
        for match in OPENING.finditer(parts[index]):
            shown_as_code = any(a < match.start() < b for a, b in code_spans)
            if match.start() not in parsed and not shown_as_code:
                line = first_line + parts[index].count("\n", 0, match.start())
                problems.append(Problem(line, f"{where}:{line}: a marker that does not parse (a "
                                              "space in its name, or no closing tag on its line)",
                                        True))
        part = BLOCK.sub(lambda match: replace(match, True), parts[index])
        parts[index] = INLINE.sub(lambda match: replace(match, False), part)
    return "".join(parts), sorted(problems)


def difference(shown, wanted):
    """Where the document's text departs from the file's: the first differing line of a table."""
    shown_lines, wanted_lines = shown.strip().split("\n"), wanted.strip().split("\n")
    for number, (have, want) in enumerate(zip(shown_lines, wanted_lines)):
        if have != want:
            where = ("" if len(wanted_lines) == 1 else "header: " if number < 2
                     else f"row {number - 1}: ")
            return f"{where}the document has {have!r}, the result file {want!r}"
    return (f"the document has {len(shown_lines)} line(s), the result file "
            f"{len(wanted_lines)}")


def run(root, check):
    """Render (or with `check`, compare) every document; returns (documents changed, problems).
    Nothing is written while any figure names a missing file or path."""
    results, updates, problems = Results(root), {}, []
    for name in documents(root):
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            text = handle.read()
        rendered, found = render(text, results, name)
        problems += found
        if rendered != text:
            updates[name] = rendered
    if not check and not any(problem.missing for problem in problems):
        for name, rendered in updates.items():
            write_text(os.path.join(root, name), rendered)
    return list(updates), problems


def render_documents(root, check):
    """What `tools/render_docs.py` does: render every figure in place, or with `check` name
    every figure that differs from its file; returns the exit code."""
    if not os.path.isdir(os.path.join(root, "results")):
        raise UserError(f"{root} has no results/ folder; pass the repository with --root")
    changed, problems = run(root, check)
    if check:
        for problem in problems:
            print(problem.text)
        print(f"{len(problems)} figure(s) differ from their result files" if problems
              else "every figure matches its result file")
        return 1 if problems else 0
    unresolved = [problem for problem in problems if problem.missing]
    for problem in unresolved:
        print(problem.text, file=sys.stderr)
    if unresolved:
        raise UserError(f"{len(unresolved)} figure(s) name a result file or path that does not "
                        "exist (listed above); nothing was written: fix the marker or add the "
                        "result")
    print(f"rendered {len(changed)} document(s): {', '.join(changed) or 'none changed'}")
    return 0
