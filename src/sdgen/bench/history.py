"""The benchmark history: one JSON line per measured cell, and a PNG of throughput over time."""

from __future__ import annotations

import json
from datetime import datetime
import os
from pathlib import Path

from sdgen.errors import SdgenError


def append_history(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_history(path: Path) -> list[dict]:
    if not path.is_file():
        raise SdgenError(f"no benchmark history at {path}; run `sdgen bench` first")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise SdgenError(f"{path}:{n} is not a JSON line (a torn write?); fix or delete that line") from None
    return records


def plot_history(history: Path, out: Path, metric: str = "distinct_rows_s") -> Path:
    """One panel per model x style: `metric` per backend over the history's runs (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in load_history(history) if r.get(metric) is not None]
    if not records:
        raise SdgenError(f"{history} has no measured cells with {metric}")
    groups = sorted({(r["model"], r["style"]) for r in records})
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for ax, (model, style) in zip(axes[:, 0], groups):
        cells = [r for r in records if (r["model"], r["style"]) == (model, style)]
        for backend in sorted({r["backend"] for r in cells}):
            # x: the session's start (all cells of one `sdgen bench` run line up), else the cell's own time
            points = sorted((datetime.fromisoformat(r.get("run") or r["time"]), r[metric]) for r in cells
                            if r["backend"] == backend)  # fmt: skip
            ax.plot([t for t, _ in points], [v for _, v in points], marker="o", label=backend)
        ax.set_yscale("log")
        ax.set_title(f"{Path(model).name} · {style}")
        ax.set_ylabel(metric.removesuffix("_s").replace("_", " ") + "/s")
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
