"""A self-contained leaderboard page: inline CSS and JavaScript, charts embedded as data URIs.

Tables sort by clicking a column header (and from the URL: ``#sort=<table>:<column>:<asc|desc>``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable

from eval.leaderboard import Row, Table, format_value

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1f24;max-width:1400px}
h1{font-size:1.6em}h2{font-size:1.15em;margin-top:2.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:right}
th{background:#f6f8fa;cursor:pointer;user-select:none}th.text,td.text{text-align:left}
tr.reported{background:#fffbe6;font-style:italic}td.best{font-weight:bold;background:#dafbe1}
.badge{font-size:.75em;padding:0 .4em;border-radius:.6em;background:#eaeef2}
.charts img{max-width:640px;margin:.4em 1em .4em 0;border:1px solid #d0d7de}
img.thumb{height:64px;vertical-align:middle;margin-right:.5em;border:1px solid #d0d7de}
.note{color:#57606a;font-size:.9em}
"""

SCRIPT = """
function cellValue(row, col){const t=row.children[col].getAttribute('data-value');
  const v=parseFloat(t);return isNaN(v)?null:v;}
function sortTable(table, col, dir){const body=table.tBodies[0];
  const rows=Array.from(body.rows);
  rows.sort((a,b)=>{const x=cellValue(a,col),y=cellValue(b,col);
    if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
    return dir==='asc'?x-y:y-x;});
  rows.forEach((r,i)=>{body.appendChild(r);r.children[0].textContent=i+1;});
  table.setAttribute('data-sorted', col+':'+dir);}
document.querySelectorAll('table.board').forEach(table=>{
  table.querySelectorAll('th[data-col]').forEach(th=>{th.addEventListener('click',()=>{
    const col=+th.getAttribute('data-col');const prev=table.getAttribute('data-sorted')||'';
    const dir=prev===col+':'+th.getAttribute('data-dir')?(th.getAttribute('data-dir')==='asc'?'desc':'asc')
      :th.getAttribute('data-dir');sortTable(table,col,dir);});});});
const m=location.hash.match(/sort=(\\d+):(\\d+):(asc|desc)/);
if(m){const t=document.getElementById('t'+m[1]);if(t)sortTable(t,+m[2],m[3]);}
document.body.setAttribute('data-ready','1');
"""


def _cell(text: str, value: float | None, css: str = "") -> str:
    data = "" if value is None else f' data-value="{value!r}"'
    cls = f' class="{css}"' if css else ""
    return f"<td{cls}{data}>{html.escape(text)}</td>"


def _thumb(blob: bytes | None) -> str:
    if not blob:
        return ""
    return f'<img class="thumb" alt="render" src="data:image/jpeg;base64,{base64.b64encode(blob).decode()}">'


def _row_html(table: Table, rank: int, row: Row, run_url: str | None, thumbnail: bytes | None = None) -> str:
    label = f'<td class="text">{html.escape(row.label)} <span class="badge">{row.kind}</span></td>'
    cells = [f"<td>{rank}</td>", label]
    for m in table.benchmark.metrics:
        value = row.metrics.get(m.key)
        best = table.best(m.key)
        cells.append(_cell(format_value(m, value), value, "best" if best is not None and value == best else ""))
    if row.kind == "run" and row.run_id:
        target = html.escape(run_url.format(run_id=row.run_id)) if run_url else ""
        link = f'<a href="{target}">run {row.run_id[:8]}</a>' if target else f"run {html.escape(row.run_id)}"
        extra = "; ".join(f"{html.escape(k)} {html.escape(str(v))}" for k, v in row.details.items()
                          if k != "predictions")
        cells.append(f'<td class="text">{_thumb(thumbnail)}{link}; {extra}</td>')
    else:
        cells.append(f'<td class="text">{html.escape(str(row.details.get("source", "")))}</td>')
    return f'<tr class="{row.kind}">' + "".join(cells) + "</tr>"


def _table_html(index: int, table: Table, run_url: str | None, charts: list[tuple[str, bytes]],
                thumbnails: Callable[[Row], bytes | None] | None = None) -> str:
    heads = ['<th data-col="0">#</th>', '<th class="text">method</th>']
    for col, m in enumerate(table.benchmark.metrics, start=2):
        direction = "desc" if m.higher_is_better else "asc"
        arrow = "↑" if m.higher_is_better else "↓"
        heads.append(f'<th data-col="{col}" data-dir="{direction}">{html.escape(m.label)} {arrow}</th>')
    heads.append('<th class="text">reproduce / source</th>')
    rows = "".join(_row_html(table, rank, row, run_url, thumbnails(row) if thumbnails else None)
                   for rank, row in enumerate(table.rows, start=1))
    images = "".join(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(blob).decode()}">'
                     for name, blob in charts)
    key = html.escape("|".join(table.key))
    return (f'<h2 id="h{index}">{html.escape(table.title)}</h2>'
            f'<table class="board" id="t{index}" data-key="{key}"><thead><tr>{"".join(heads)}</tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            + (f'<div class="charts">{images}</div>' if images else ""))


def to_html(tables: list[Table], run_url: str | None = None,
            charts: Callable[[Table], list[tuple[str, bytes]]] | None = None,
            thumbnails: Callable[[Row], bytes | None] | None = None) -> str:
    """The whole page; ``charts(table)`` gives (name, PNG bytes) to show under each table,
    ``thumbnails(row)`` the JPEG render thumbnail of a run's row (or None)."""
    body = "".join(_table_html(i, t, run_url, charts(t) if charts else [], thumbnails) for i, t in enumerate(tables))
    if not tables:
        body = "<p>No evaluation runs found.</p>"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>meshfleet leaderboard</title>"
            f"<style>{CSS}</style></head><body><h1>meshfleet leaderboard</h1>"
            '<p class="note">One table per benchmark, split, track, protocol and evaluator version: numbers in '
            "different tables are not comparable. <i>reported</i> rows are published numbers with their source; "
            "the others are meshfleet runs linked to the MLflow run that reproduces them. Click a column to sort."
            f"</p>{body}<script>{SCRIPT}</script></body></html>\n")
