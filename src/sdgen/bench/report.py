"""How `sdgen bench` shows its cells: one line per finished cell, and the final table."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table


def _fmt(value, spec: str = ".1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _ratio(cell: dict, anchor: str) -> str:
    rows, tok = cell.get(f"x_{anchor}_distinct_rows_s"), cell.get(f"x_{anchor}_tok_s")
    if rows is None and tok is None:
        return "-"
    return f"{_fmt(rows, '.1f', 'x')} / {_fmt(tok, '.1f', 'x')}"


def cell_line(cell: dict) -> str:
    size = f" · {cell['size']} rows" if cell.get("size") is not None else ""
    head = f"{Path(cell['model']).name} · {cell['style']} · {cell['backend']}{size}"
    if "error" in cell:
        return f"✗ {head}: {cell['error']}"
    if "skipped" in cell:
        return f"- {head}: skipped, {cell['skipped']}"
    useful = f", {cell['useful_rows_s']:.2f} useful rows/s" if cell.get("useful_rows_s") is not None else ""
    return (f"✓ {head}: {cell['distinct_rows_s']:.2f} distinct rows/s{useful}, {cell['tok_s']:.0f} tok/s, "
            f"{cell['parsed']}/{cell['rows']} rows parsed ({cell['wall_s']:.0f} s)")  # fmt: skip


def roofline_line(peaks: dict[str, float], machine: dict) -> str:
    """What the machine can do, measured at the start of the run, beside which each cell's GFLOP/s reads."""
    found = ", ".join(f"{name} {gflops:.0f} GFLOP/s" for name, gflops in sorted(peaks.items())) or "not measured"
    return (f"roofline: {machine.get('cpu', '?')} ({machine.get('cpu_class', '?')}), {machine.get('threads')} threads: "
            f"dense matmul {found}; a cell's GFLOP/s = 2 x its model's matmul weights x generated tok/s "
            "(prompt tokens not counted), its share of the best peak in brackets")  # fmt: skip


def bench_table(cells: list[dict]) -> Table:
    table = Table(title="sdgen bench (rates from the end of model loading; TTFR includes loading)")
    columns = ["model", "style", "backend", "weights", "rows", "distinct rows/s", "useful rows/s (agreement)", "rows/s",
               "gen tok/s", "prompt tok/s", "TTFR s", "tail s", "peak RSS MB", "GFLOP/s (peak %)", "x recipe (rows/tok)",
               "x genai-default (rows/tok)", "x llama.cpp (rows/tok)"]  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "style", "backend", "weights") else "right")
    for c in cells:
        head = [Path(c["model"]).name, c["style"], c["backend"]]
        if "error" in c or "skipped" in c:
            note = f"[red]{c['error'][:80]}[/red]" if "error" in c else f"skipped: {c['skipped'][:80]}"
            table.add_row(*head, note, *[""] * (len(columns) - 4))
            continue
        share = f" ({100 * c['peak_share']:.0f}%)" if c.get("peak_share") is not None else ""
        useful = (f"{c['useful_rows_s']:.2f} ({100 * c['agreement']:.0f}%)" if c.get("useful_rows_s") is not None else "-")
        table.add_row(
            *head, c.get("weights", "?"), f"{c['distinct']}/{c['parsed']}/{c['rows']}", _fmt(c["distinct_rows_s"], ".2f"),
            useful, _fmt(c["rows_s"], ".2f"), _fmt(c["tok_s"], ".0f"), _fmt(c["prompt_tok_s"], ".0f"), _fmt(c["ttfr_s"]), _fmt(c.get("tail_s")),
            _fmt(c["peak_rss_mb"], ".0f"), _fmt(c.get("gflops")) + share, _ratio(c, "recipe"), _ratio(c, "genai_default"),
            _ratio(c, "llamacpp"),
        )  # fmt: skip
    table.caption = ("rows: distinct / parsed / asked. TTFR: time to first row, model load included. Tail: from the "
                     "last request handed out to the end, when the batch drains. Useful rows/s: distinct rows/s x agreement, the share of rows a "
                     "classifier trained on --real gives their label (rows of labels it lacks not counted). Ratios: distinct rows/s and generated tok/s.")
    return table
