"""Markdown tables: the one layout of every table the toolkit prints or writes (benchmark and
compare reports, the demo's table, the docs' measured tables)."""


def markdown_table(titles, rows):
    """A markdown table: `titles` the header cells, `rows` one list of cell texts per row."""
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
