"""Draw coloured terminal output (ANSI SGR escapes) as an SVG picture of a terminal.

No dependencies. `docs/hooks.py` draws the landing page's timeline picture
with it on every `mkdocs build`, from what the getting-started saga prints on
a terminal, so the picture is never older than the code. By hand:

    python docs/timeline_svg.py --title 'python main.py' < coloured.txt > timeline.svg

Every character sits on its own cell of a monospace grid (an `x` per
character), so the columns line up whatever monospace font the viewer has,
and glyphs such as ✔ ✘ ↺ that fall back to another font keep their column.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from typing import NamedTuple
from xml.sax.saxutils import escape

__all__ = ["ansi_to_svg", "strip_ansi"]

FONT = (
    "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', "
    "monospace"
)
FONT_SIZE = 14
CELL = 8.4  # a monospace cell is 0.6 em wide
LINE = 20
PAD = 16
BAR = 30  # the title bar with the three window buttons

BACKGROUND = "#161b22"
FOREGROUND = "#e6edf3"
# SGR 30-37, then 90-97: the dark-terminal colours of a GitHub-like theme.
PALETTE = (
    "#484f58", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#b1bac4",
    "#6e7681", "#ffa198", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#ffffff",
)  # fmt: skip
DIM_OPACITY = 0.6

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class _Style(NamedTuple):
    colour: int | None = None  # index into PALETTE
    bold: bool = False
    dim: bool = False


def strip_ansi(text: str) -> str:
    """`text` without its escape sequences: what a terminal shows, uncoloured."""
    return _CSI.sub("", text)


def _sgr(style: _Style, params: str) -> _Style:
    codes = [int(c) for c in params.split(";") if c.isdigit()] or [0]
    for c in codes:
        if c == 0:
            style = _Style()
        elif c == 1:
            style = style._replace(bold=True)
        elif c == 2:
            style = style._replace(dim=True)
        elif c == 22:
            style = style._replace(bold=False, dim=False)
        elif 30 <= c <= 37:
            style = style._replace(colour=c - 30)
        elif 90 <= c <= 97:
            style = style._replace(colour=c - 90 + 8)
        elif c == 39:
            style = style._replace(colour=None)
        # Backgrounds, italics, 256 colours: not used by sagakit, ignored.
    return style


def _width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _cells(line: str, style: _Style) -> tuple[list[tuple[int, str, _Style]], int, _Style]:
    """One line's visible characters as (column, character, style), its width, its last style.

    The last style carries over: a colour may run on into the next line.
    """
    cells: list[tuple[int, str, _Style]] = []
    col = 0
    at = 0
    for m in [*_CSI.finditer(line), None]:
        text = line[at : m.start() if m else len(line)]
        for ch in text:
            if ch == "\t":
                col += 8 - col % 8
                continue
            if ch.isprintable() and not ch.isspace():
                cells.append((col, ch, style))
            col += _width(ch)
        if m is None:
            break
        if m.group(2) == "m":
            style = _sgr(style, m.group(1))
        at = m.end()
    return cells, col, style


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _attrs(style: _Style) -> str:
    a = ""
    if style.colour is not None:
        a += f' fill="{PALETTE[style.colour]}"'
    if style.bold:
        a += ' font-weight="bold"'
    if style.dim:
        a += f' fill-opacity="{DIM_OPACITY}"'
    return a


def ansi_to_svg(text: str, *, title: str | None = None, label: str | None = None) -> str:
    """An SVG picture of `text` on a dark terminal.

    Args:
        text: terminal output, with ANSI SGR colours (bold, dim, 30-37, 90-97).
        title: shown dimmed in the window's title bar.
        label: the picture's accessible name; by default `text` without colours.
    """
    lines = text.rstrip("\n").split("\n")
    style = _Style()
    rows: list[list[tuple[int, str, _Style]]] = []
    columns = 1
    for line in lines:
        cells, used, style = _cells(line.rstrip("\r"), style)
        rows.append(cells)
        columns = max(columns, used)
    width = 2 * PAD + columns * CELL
    height = BAR + PAD // 2 + len(rows) * LINE + PAD
    name = label if label is not None else strip_ansi(text)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{height}" '
        f'viewBox="0 0 {_num(width)} {height}" role="img">',
        f"<title>{escape(name)}</title>",
        f'<rect width="100%" height="100%" rx="8" fill="{BACKGROUND}"/>',
        *(
            f'<circle cx="{PAD + 6 + 20 * i}" cy="{BAR // 2 + 2}" r="6" fill="{c}"/>'
            for i, c in enumerate(("#ff5f56", "#ffbd2e", "#27c93f"))
        ),
    ]
    if title:
        out.append(
            f'<text x="{_num(width / 2)}" y="{BAR // 2 + 6}" text-anchor="middle" '
            f'font-family="{escape(FONT)}" font-size="12" fill="{FOREGROUND}" '
            f'fill-opacity="{DIM_OPACITY}">{escape(title)}</text>'
        )
    out.append(f'<g font-family="{escape(FONT)}" font-size="{FONT_SIZE}" fill="{FOREGROUND}">')
    for i, cells in enumerate(rows):
        if not cells:
            continue
        y = BAR + PAD // 2 + i * LINE + FONT_SIZE
        spans = []
        # One <tspan> per word of one style, an x for each of its characters.
        run: list[tuple[int, str, _Style]] = []
        for cell in [*cells, None]:
            if run and (
                cell is None or cell[2] != run[-1][2] or cell[0] != run[-1][0] + _width(run[-1][1])
            ):
                xs = " ".join(_num(PAD + c * CELL) for c, _, _ in run)
                chars = escape("".join(ch for _, ch, _ in run))
                spans.append(f'<tspan x="{xs}"{_attrs(run[0][2])}>{chars}</tspan>')
                run = []
            if cell is not None:
                run.append(cell)
        out.append(f'<text y="{y}">{"".join(spans)}</text>')
    out += ["</g>", "</svg>", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--title", help="shown in the title bar")
    args = parser.parse_args()
    sys.stdout.write(ansi_to_svg(sys.stdin.read(), title=args.title))


if __name__ == "__main__":
    main()
