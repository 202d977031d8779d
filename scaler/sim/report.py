"""Outputs of a simulation run: results.json, a Markdown report and PNG plots."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TABLE_COLUMNS = (
    ("policy", "policy", "{}"),
    ("gpu_hours", "GPU-h", "{:.1f}"),
    ("cost_vs_floor", "x floor", "{:.2f}"),
    ("wait_p50_s", "p50 s", "{:.1f}"),
    ("wait_p95_s", "p95 s", "{:.1f}"),
    ("wait_p99_s", "p99 s", "{:.1f}"),
    ("wait_max_s", "max s", "{:.0f}"),
    ("slo_violation_share", "> SLO", "{:.2%}"),
    ("cold_start_waits", "cold-start waits", "{:.0f}"),
    ("scale_ups", "ups", "{:.4g}"),  # a count, or its mean over loop phases (evaluate)
    ("scale_downs", "downs", "{:.4g}"),
    ("flaps", "flaps", "{:.4g}"),
    ("time_at_zero_share", "at zero", "{:.0%}"),
    ("lost_work", "lost", "{:.0f}"),
)


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(TABLE_COLUMNS))) + "|"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = row.get(key)
            cells.append("" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, p95) points no other point beats on both (lower is better)."""
    front: list[tuple[float, float]] = []
    best = math.inf
    for cost, p95 in sorted(points):
        if p95 < best:
            front.append((cost, p95))
            best = p95
    return front


def frontiers(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per policy family: its Pareto frontier of (GPU-hours, p95 wait)."""
    families: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        families.setdefault(row["family"], []).append((row["gpu_hours"], row["wait_p95_s"]))
    return {name: pareto(points) for name, points in families.items()}


def p95_at_budget(front: Sequence[tuple[float, float]], budget: float) -> float:
    """The best p95 a frontier reaches within `budget` GPU-hours (inf if none)."""
    within = [p95 for cost, p95 in front if cost <= budget * (1 + 1e-9)]
    return min(within) if within else math.inf


def dominates(
    ours: Sequence[tuple[float, float]], theirs: Sequence[tuple[float, float]]
) -> tuple[bool, list[str]]:
    """Whether at each of their points' budgets our frontier's p95 is no worse;
    the budgets where it is worse, described."""
    misses = []
    for cost, p95 in theirs:
        mine = p95_at_budget(ours, cost)
        if mine > p95 + 1e-6:
            ours_text = "no point that cheap" if math.isinf(mine) else f"{mine:.1f} s"
            misses.append(f"at {cost:.1f} GPU-h: {ours_text} vs {p95:.1f} s")
    return not misses, misses


def level_with(
    ours: Sequence[tuple[float, float]], theirs: Sequence[tuple[float, float]], within: float = 0.05
) -> list[str]:
    """Their points' budgets where our frontier's p95 is no worse but no more than
    `within` seconds better (a tie at the report's precision), described: where a
    frontier that dominates does so only by matching. A point of theirs that waits
    under `within` is left out: no frontier can beat it by more."""
    level = []
    for cost, p95 in theirs:
        mine = p95_at_budget(ours, cost)
        if p95 >= within and p95 - within <= mine <= p95 + 1e-6:
            level.append(f"at {cost:.1f} GPU-h: {mine:.1f} s vs {p95:.1f} s")
    return level


def write_json(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    clean = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    path.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def downsample(values: np.ndarray, points: int, how: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """(bucket start seconds, bucket values) with at most `points` buckets."""
    n = len(values)
    size = max(1, math.ceil(n / points))
    m = math.ceil(n / size)
    padded = np.full(m * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(m, size)
    reduced = np.nanmax(grid, axis=1) if how == "max" else np.nanmean(grid, axis=1)
    return np.arange(m) * size, reduced


def plot_runs(
    path: Path,
    title: str,
    runs: dict[str, Any],
    names: Sequence[str] | None = None,
    scored_from_s: float = 0.0,
) -> None:
    """plot_timeline for simulated runs (results of run_policies, each with its
    world): the first run's arrivals, and the backlog and pods of each run (of
    `names` only, when given); `scored_from_s`: the scenario's warmup_s."""
    series = {
        name: {"waiting": run.world.rec_waiting, "pods": run.world.rec_pods}
        for name, run in runs.items()
        if names is None or name in names
    }
    plot_timeline(path, title, next(iter(runs.values())).world.arrivals, series, scored_from_s=scored_from_s)


def plot_timeline(
    path: Path,
    title: str,
    arrivals: np.ndarray,
    series: dict[str, dict[str, np.ndarray]],
    unit: tuple[float, str] = (3600.0, "hours"),
    scored_from_s: float = 0.0,
) -> None:
    """Arrivals, backlog and replicas over time, one line per policy; `unit` is the
    x axis' (seconds per unit, name). Before `scored_from_s` (history or a lead-in,
    simulated but neither scored nor billed) the plot is shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    hours, unit_name = unit
    x, y = downsample(arrivals, 1500)
    axes[0].plot(x / hours, y, color="black", linewidth=0.8)
    axes[0].set_ylabel("arrivals / s")
    axes[0].set_title(title)
    for name, data in series.items():
        x, y = downsample(data["waiting"], 1500, "max")
        axes[1].plot(x / hours, y, linewidth=0.8, label=name)
        x, y = downsample(data["pods"], 1500, "max")
        axes[2].plot(x / hours, y, linewidth=0.8, label=name)
    if scored_from_s > 0:
        for axis in axes:
            axis.axvspan(0, scored_from_s / hours, color="0.9", zorder=0)
        axes[0].text(0.005, 0.95, "not scored", transform=axes[0].transAxes, fontsize=8, va="top")
    axes[1].set_ylabel("backlog (max)")
    axes[2].set_ylabel("replicas (max)")
    axes[2].set_xlabel(unit_name)
    axes[2].legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_frontiers(path: Path, title: str, rows: Sequence[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for family, front in sorted(frontiers(rows).items()):
        points = [(r["gpu_hours"], r["wait_p95_s"]) for r in rows if r["family"] == family]
        line = ax.plot([c for c, _ in front], [max(p, 0.1) for _, p in front], marker="o", label=family)
        ax.scatter([c for c, _ in points], [max(p, 0.1) for _, p in points], color=line[0].get_color(), s=8)
    floor = rows[0]["floor_gpu_hours"] if rows else 0
    if floor:
        ax.axvline(floor, color="grey", linestyle="--", linewidth=0.8, label="floor")
    ax.set_yscale("log")
    ax.set_xlabel("GPU-hours")
    ax.set_ylabel("p95 queue wait, s (0 drawn at 0.1)")
    ax.set_title(textwrap.fill(title, 70), fontsize=10)  # a long case label fits the plot
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(
    title: str,
    setup: Sequence[str],
    rows: Sequence[dict[str, Any]],
    sweep: Sequence[dict[str, Any]] = (),
    plots: Sequence[str] = (),
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {item}" for item in setup]
    lines += ["", table(rows), ""]
    for row in rows:
        lines.append(f"- `{row['policy']}`: {row['description']}")
    if sweep:
        lines += ["", "## Frontiers (GPU-hours vs p95 wait, each policy's knob swept)", ""]
        for family, front in sorted(frontiers(sweep).items()):
            text = ", ".join(f"{c:.1f} GPU-h / {p:.1f} s" for c, p in front)
            lines.append(f"- {family}: {text}")
    for plot in plots:
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"
