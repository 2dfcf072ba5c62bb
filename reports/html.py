"""The page's building blocks: a collector that gives each chart its element id, and tables.
Every value passes through reports.fmt (`esc`, `num`, `plain`), so no store text is markup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.fmt import esc, num, plain


class Page:
    """Collects figures while the HTML is written; each gets a stable element id."""

    def __init__(self) -> None:
        self.figures: list[dict[str, Any]] = []

    def chart(self, title: str, figure: dict[str, Any], note: str = "", wide: bool = False) -> str:
        chart_id = f"chart-{len(self.figures) + 1}"
        self.figures.append({"id": chart_id, "figure": figure})
        cls = "chart wide" if wide else "chart"
        note_html = f'<p class="note">{esc(note)}</p>' if note else ""
        return (
            f'<figure class="{cls}"><figcaption>{esc(title)}</figcaption>'
            f'<div id="{chart_id}" class="plot" data-chart="1"></div>{note_html}</figure>'
        )


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: bool = False,
    highlight: int | None = None,
) -> str:
    """A table; `numeric`: numbers right-aligned; `highlight`: the row of run N (a pick)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{esc(num(v, 2))}</td>'
            if numeric and isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{esc(plain(v))}</td>"
            for v in row
        )
        mark = ' class="pick"' if highlight is not None and row[0] == f"run {highlight}" else ""
        body.append(f"<tr{mark}>{cells}</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="tablewrap"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def kv_table(d: dict[str, Any]) -> str:
    """Keys and values, one per row (snake_case keys read as words)."""
    rows = "".join(
        f"<tr><th>{esc(str(k).replace('_', ' '))}</th><td>{esc(plain(v))}</td></tr>"
        for k, v in d.items()
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def note_list(title: str, items: Sequence[str], cls: str = "warn") -> str:
    """A titled box of notes ("" when there are none)."""
    if not items:
        return ""
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<div class="{cls}"><strong>{esc(title)}</strong><ul>{lis}</ul></div>'
