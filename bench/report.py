"""Output of the suite: one table per scenario on stdout, results.json, PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

Scenario = dict[str, Any]


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if "_vs_" in key or key == "ratio":
        return f"{value:.2f}x"
    if key == "change_pct":
        return f"{value:+.1f} %"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(result: Scenario) -> str:
    rows: list[dict[str, Any]] = result.get("rows", [])
    lines = [f"== {result['scenario']}: {result.get('title', '')}"]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    if columns:
        cells = [[fmt(c, row.get(c)) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    lines += [f"  note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(report), indent=1) + "\n")


Save = Callable[[Any, str], None]  # (figure, file name)


def plots(results: dict[str, Scenario], out: Path) -> list[Path]:
    """Every PNG the results allow; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    for key, plot in (
        ("S1", plot_s1),
        ("S2", plot_s2),
        ("S5", plot_s5),
        ("S6", plot_s6),
        ("S10", plot_s10),
    ):
        scenario = results.get(key)
        if scenario and scenario.get("rows"):
            plot(plt, scenario, save)
    return written


def plot_s1(plt: Any, s1: Scenario, save: Save) -> None:
    samples: dict[str, list[float]] = s1.get("samples", {})
    chat_rows = [r for r in s1["rows"] if r["system"] == "chat"]
    sizes = sorted({r["N"] for r in chat_rows})
    loads = list(dict.fromkeys(r["load"] for r in chat_rows))
    for li, load in enumerate(loads):
        fig = s1_cdf(plt, samples, sizes, load)
        save(fig, f"s1_latency_cdf_{li}_{load.replace(' ', '').replace('/', 'per')}.png")
    save(s1_hist(plt, samples, sizes, loads[0]), "s1_latency_hist.png")
    save(s1_cost(plt, s1["rows"], loads), "s1_cost_vs_group_size.png")


def s1_cdf(plt: Any, samples: dict[str, list[float]], sizes: list[int], load: str) -> Any:
    """Latency CDFs of one load, a panel per group size, with the floors' medians."""
    floors = {k: samples[k] for k in ("floor-tcp", "floor-ws") if k in samples}
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for system in ("chat", "ngircd"):
            values = samples.get(f"{system} N={n} {load}", [])
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.plot(values, ys, label=system)
        for name, values in floors.items():
            ax.axvline(
                sorted(values)[len(values) // 2],
                ls="--",
                lw=0.8,
                color="grey" if name == "floor-tcp" else "black",
                label=name,
            )
        ax.set_xscale("log")
        ax.set_title(f"N = {n}, {load}")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction of deliveries")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return fig


def s1_hist(plt: Any, samples: dict[str, list[float]], sizes: list[int], load: str) -> Any:
    """Latency histograms (log bins) of one load, a panel per group size."""
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for system in ("chat", "ngircd"):
            values = [max(v, 1e-3) for v in samples.get(f"{system} N={n} {load}", [])]
            if values:
                lo, hi = math.log10(min(values)), math.log10(max(values)) + 1e-9
                bins = [10 ** (lo + (hi - lo) * i / 40) for i in range(41)]
                ax.hist(values, bins=bins, alpha=0.6, label=system)
        ax.set_xscale("log")
        ax.set_title(f"N = {n}, {load}")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("deliveries")
    axes[0][0].legend(fontsize=7)
    return fig


def s1_cost(plt: Any, rows: list[dict[str, Any]], loads: list[str]) -> Any:
    """CPU per delivery and p50 latency against the group size."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for system in ("chat", "ngircd"):
        for load in loads:
            mine = sorted(
                (r for r in rows if r["system"] == system and r["load"] == load),
                key=lambda r: r["N"],
            )
            ns = [r["N"] for r in mine]
            ax1.plot(ns, [r["cpu_us_per_delivery"] for r in mine], "o-", label=f"{system} {load}")
            ax2.plot(ns, [r["p50_ms"] for r in mine], "o-", label=f"{system} {load}")
    for ax, label in ((ax1, "CPU µs per delivery (server side)"), (ax2, "p50 latency (ms)")):
        ax.set_yscale("log")
        ax.set_xlabel("group size N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    return fig


def plot_s2(plt: Any, s2: Scenario, save: Save) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for system in ("chat", "ngircd"):
        rows = [r for r in s2["rows"] if r["system"] == system]
        ws = [str(r["window"]) for r in rows]
        ax1.plot(ws, [r["deliveries_per_s"] for r in rows], "o-", label=system)
        ax2.plot(ws, [r["cpu_us_per_delivery"] for r in rows], "o-", label=system)
    ax1.set_ylabel("deliveries/s")
    ax2.set_ylabel("CPU µs per delivery")
    for ax in (ax1, ax2):
        ax.set_yscale("log")
        ax.set_xlabel("window (outstanding messages)")
        ax.grid(alpha=0.3)
        ax.legend()
    save(fig, "s2_throughput.png")


def plot_s5(plt: Any, s5: Scenario, save: Save) -> None:
    rows = [r for r in s5["rows"] if isinstance(r.get("run"), int) and "error" not in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.4))
    keys = ("suspected_ms", "elected_ms", "agreed_ms", "director_ms")
    for k_i, key in enumerate(keys):
        ax.bar(
            [r["run"] + (k_i - 1.5) * 0.2 for r in rows],
            [r[key] or 0 for r in rows],
            width=0.2,
            label=key,
        )
    ax.set_xlabel("run")
    ax.set_ylabel("ms after SIGKILL")
    ax.legend(fontsize=7)
    save(fig, "s5_failover.png")


def plot_s6(plt: Any, s6: Scenario, save: Save) -> None:
    rows = s6["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    labels = [f"{r['system']} {r['node']}" for r in rows]
    ax.bar(labels, [r["idle_rss_kib"] / 1024 for r in rows], label="idle")
    ax.bar(
        labels,
        [
            (r.get("rss_after_kib") or r["idle_rss_kib"]) / 1024 - r["idle_rss_kib"] / 1024
            for r in rows
        ],
        bottom=[r["idle_rss_kib"] / 1024 for r in rows],
        label="after messages",
    )
    ax.set_ylabel("RSS (MiB)")
    ax.legend()
    save(fig, "s6_memory.png")


def plot_s10(plt: Any, s10: Scenario, save: Save) -> None:
    """CPU per delivery and idle cost against the group size (the members that joined)."""
    rows = sorted((r for r in s10["rows"] if "idle_group_pct" in r), key=lambda r: r["joined"])
    if not rows:
        return
    ns = [r["joined"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(ns, [r["cpu_us_per_delivery"] for r in rows], "o-", label="all CPU")
    ax1.plot(ns, [r["cpu_us_net"] for r in rows], "o--", label="idle subtracted")
    ax1.set_ylabel("CPU µs per delivery (20 msg/s)")
    ax2.plot(ns, [r["idle_group_pct"] for r in rows], "o-", label="whole group")
    ax2.plot(ns, [r["idle_coordinator_pct"] for r in rows], "o-", label="coordinator")
    ax2.plot(ns, [r["idle_member_pct"] for r in rows], "o-", label="median member")
    ax2.set_ylabel("idle CPU, % of one core")
    for ax in (ax1, ax2):
        ax.set_xlabel("group size N (joined)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, "s10_group_size.png")
    joins = s10.get("joins_s", [])
    if joins:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        total = 0.0
        xs = []
        for took in joins:
            total += took
            xs.append(total)
        ax.plot(xs, range(1, len(joins) + 1), ".-")
        ax.set_xlabel("seconds of joins (one after another)")
        ax.set_ylabel("members")
        ax.grid(alpha=0.3)
        save(fig, "s10_joins.png")
