"""Markdown and self-contained HTML for a report made of headed tables, figures and a
protocol card. Figures are PNG bytes: referenced by file name in Markdown, embedded as base64
in HTML."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableBlock:
    """A table under a heading; ``bold`` holds the (row, column) cells to emphasise."""

    heading: str
    header: list[str]
    rows: list[list[str]]
    bold: frozenset[tuple[int, int]] = frozenset()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    title: str
    tables: list[TableBlock]
    figures: dict[str, bytes]
    protocol: list[tuple[str, str]]
    intro: tuple[str, ...] = field(default=())
    sections: tuple[tuple[str, tuple[TableBlock, ...]], ...] = ()
    """Further headed sections of tables, after the test results (e.g. a tuning study)."""


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    lines += [*doc.intro, ""] if doc.intro else []
    for heading, blocks in (("Test results", tuple(doc.tables)), *doc.sections):
        lines += [f"## {heading}", ""]
        for block in blocks:
            lines += _md_block(block)
    if doc.figures:
        lines += ["## Figures", ""]
        for name in doc.figures:
            lines += [f"![{name}]({name})", ""]
    lines += ["## Protocol", "", "| | |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in doc.protocol]
    lines.append("")
    return "\n".join(lines)


def _md_block(block: TableBlock) -> list[str]:
    lines = [f"### {block.heading}", ""]
    lines.append("| " + " | ".join(_md(h) for h in block.header) + " |")
    lines.append("|" + "---|" * len(block.header))
    for r, row in enumerate(block.rows):
        cells = [
            f"**{_md(text)}**" if (r, c) in block.bold else _md(text) for c, text in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for note in block.notes:
        lines += [note, ""]
    return lines


def _html_block(block: TableBlock) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td><b>{esc(text)}</b></td>" if (r, c) in block.bold else f"<td>{esc(text)}</td>"
            for c, text in enumerate(row)
        )
        + "</tr>"
        for r, row in enumerate(block.rows)
    )
    notes = "".join(f"<p class='note'>{esc(note)}</p>" for note in block.notes)
    return f"<h3>{esc(block.heading)}</h3><table><tr>{head}</tr>{body}</table>{notes}"


def to_html(doc: Document) -> str:
    esc = html.escape
    parts = [f"<h1>{esc(doc.title)}</h1>"]
    parts += [f"<p>{esc(p)}</p>" for p in doc.intro]
    for heading, blocks in (("Test results", tuple(doc.tables)), *doc.sections):
        parts.append(f"<h2>{esc(heading)}</h2>")
        parts += [_html_block(block) for block in blocks]
    if doc.figures:
        parts.append("<h2>Figures</h2>")
        parts += [
            f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}"/><figcaption>{esc(name)}</figcaption></figure>'
            for name, png in doc.figures.items()
        ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in doc.protocol)
    parts.append(f"<h2>Protocol</h2><table id='protocol'>{rows}</table>")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "#protocol td{text-align:left}.note{color:#444;font-size:90%}img{max-width:100%}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(doc.title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _md(text: str) -> str:
    """Table-cell safe Markdown: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")
