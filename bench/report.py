"""Summaries, markdown tables, charts and the generated block of ``docs/benchmarks.md``.

A scenario's runs (every peer, every repeat) become a summary: per peer and
metric the median, min and max over the repeats. Tables show the median with
the min-max range in brackets; charts show medians with min-max error bars.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMES, DASH = "\u00d7", "\u2013"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
FAZT_COLOR, PEER_COLOR, TARGET_COLOR = "#d62728", "#7f7f7f", "#1f77b4"


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    fmt: str = "{:.2f}"


def stat(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarize(runs: dict[str, list[dict[str, Any]]], keys: Iterable[str]) -> dict[str, Any]:
    """{unit: {key: stat}} over the runs that passed their checks.

    Besides ``keys``, every per-step key (``"name@step"``, e.g. ``p99_ms@10000``)
    a run holds is summarised too.
    """
    summary: dict[str, dict[str, Any]] = {}
    for unit, results in runs.items():
        good = [r for r in results if r.get("ok", True)]
        stepped = {k for r in good for k in r if "@" in k}
        for key in [*keys, *sorted(stepped)]:
            s = stat([r[key] for r in good if isinstance(r.get(key), int | float)])
            if s is not None:
                summary.setdefault(unit, {})[key] = s
    return summary


def median_of(summary: dict[str, Any], unit: str, key: str) -> float | None:
    value = summary.get(unit, {}).get(key)
    return None if value is None else float(value["median"])


def cell(s: dict[str, Any] | None, fmt: str) -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}{DASH}{fmt.format(s['max'])})"


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def unit_table(
    summary: dict[str, Any],
    units: list[tuple[str, str]],
    metrics: list[Metric],
    unit_title: str = "peer",
) -> str:
    """Rows: units (name, label) that have results; columns: the metrics measured."""
    shown = [m for m in metrics if any(m.key in summary.get(u, {}) for u, _ in units)]
    rows = [
        [label] + [cell(summary[u].get(m.key), m.fmt) for m in shown]
        for u, label in units
        if u in summary
    ]
    return markdown_table([unit_title, *(m.title for m in shown)], rows)


def target(text: str, value: float | None, bound: float, shown: str, at_most: bool = True) -> dict:
    """One target line: met or MISSED (or not measured when ``value`` is None)."""
    if value is None:
        return {"target": text, "status": "not measured"}
    met = value <= bound if at_most else value >= bound
    return {"target": text, "value": value, "shown": shown, "status": "met" if met else "MISSED"}


def ratio_target(
    text: str, mine: float | None, theirs: float | None, bound: float, at_most: bool = True
) -> dict:
    if mine is None or not theirs:
        return {"target": text, "status": "not measured"}
    value = mine / theirs
    shown = f"{value:.2f}{TIMES} ({mine:,.2f} vs {theirs:,.2f})"
    return target(text, value, bound, shown, at_most)


def target_lines(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- {r['target']}: **{r['status']}**" + (f" — {r['shown']}" if "shown" in r else "")
        for r in rows
    )


# -- charts ----------------------------------------------------------------------------------
def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_panel(
    ax: Any,
    summary: dict[str, Any],
    units: list[str],
    key: str,
    title: str,
    *,
    log: bool = False,
    target: float | None = None,
    target_label: str = "",
) -> None:
    """Horizontal bars: one per unit, median with a min-max error bar; fazt in red."""
    names, med, low, high, colors = [], [], [], [], []
    for unit in units:
        s = summary.get(unit, {}).get(key)
        if not s:
            continue
        names.append(unit)
        med.append(s["median"])
        low.append(s["median"] - s["min"])
        high.append(s["max"] - s["median"])
        colors.append(FAZT_COLOR if unit.startswith("fazt") else PEER_COLOR)
    if not names:
        ax.set_visible(False)
        return
    ax.barh(names, med, xerr=[low, high], color=colors, capsize=3, ecolor="#444444")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_xscale("log")
    if target:
        ax.axvline(target, color=TARGET_COLOR, linestyle="--", linewidth=1, label=target_label)
        ax.legend(fontsize=8, loc="lower right")
    right = max(m + h for m, h in zip(med, high, strict=True)) or 1.0
    if log:
        ax.set_xlim(left=min(med) / 3 if min(med) > 0 else 0.1, right=right * 3)
    else:
        ax.set_xlim(right=right * 1.25)
    for i, (m, h) in enumerate(zip(med, high, strict=True)):
        shown = f"{m:,.0f}" if m >= 1000 else f"{m:,.1f}"
        ax.text(m + h, i, f"  {shown}", va="center", fontsize=8)


def bar_chart(
    path: Path, title: str, summary: dict[str, Any], units: list[str], panels: list[dict]
) -> None:
    """One figure of ``bar_panel``s (each a dict of bar_panel's keyword arguments)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 0.5 * len(units) + 2.2))
    for ax, panel in zip(axes if len(panels) > 1 else [axes], panels, strict=True):
        bar_panel(ax, summary, units, **panel)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- files and the docs block --------------------------------------------------------------
def machine_line(env: dict[str, Any]) -> str:
    packages = env["packages"]
    return (
        f"{env['cpu']}, {env['nproc']} cores, Linux {env['kernel']}; Python {env['python']}, "
        f"Tornado {packages['tornado']}, websockets {packages['websockets']}, "
        f"python-socketio {packages['python-socketio']}, aiohttp {packages['aiohttp']}, "
        f"uvloop {packages['uvloop']}, Node {env['node']} with ws {env['ws']}, "
        f"Redis {env.get('redis', '?')}"
    )


def section(doc: dict[str, Any]) -> str:
    """The markdown of one scenario's results file."""
    others = doc.get("others_cpu_share") or {}
    lines = [
        f"### {doc['title']}",
        "",
        f"{doc['sizes_line']} Medians of {doc['repeats']} runs (min{DASH}max in brackets), "
        f"{doc['environment']['date_utc']}."
        + (
            f" Other processes used a median of {others['median']:.2f} cores during the "
            f"measured windows (max {others['max']:.2f})."
            if others
            else ""
        ),
        "",
        doc["table"],
        "",
    ]
    if doc.get("targets"):
        lines += ["Targets (fazt, same run):", target_lines(doc["targets"]), ""]
    if doc.get("failures"):
        lines += ["Failed runs: " + "; ".join(doc["failures"]), ""]
    if doc.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in doc["skipped"].items()), ""]
    if doc.get("chart"):
        lines += [f"![{doc['name']}](bench/{doc['chart']})", ""]
    return "\n".join(lines)


def docs_block(out: Path, order: list[str]) -> str:
    """Every scenario's latest results in ``out`` (``NAME.json``), in ``order``."""
    docs = []
    for name in order:
        path = out / f"{name}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            if not doc.get("smoke"):  # smoke sizes are a check, never a result
                docs.append(doc)
    if not docs:
        return ""
    head = f"Machine: {machine_line(docs[0]['environment'])}."
    return "\n\n".join([head, *(section(d) for d in docs)])


def update_docs(doc: Path, block: str) -> bool:
    """Replace the generated block of ``docs/benchmarks.md`` (between the markers)."""
    if not doc.exists():
        return False
    text = doc.read_text()
    if MARK_START not in text or MARK_END not in text:
        return False
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    doc.write_text(f"{head}{MARK_START}\n{block.strip()}\n{MARK_END}{tail}")
    return True
