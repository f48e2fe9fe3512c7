"""Issue 12's targets beside what the run measured: one row per target, from the results
of S9 (N = 10 secure, beside ngIRCd), S10 (group size) and S5 (failover). Pure: it only
reads the scenarios' results; a scenario that did not run gives "not run", one that
failed "failed".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench import s9_targets as s9

Scenario = dict[str, Any]
Row = dict[str, Any]
# (measured, ngIRCd's figure or None, met) for a target whose scenario ran.
Found = tuple[Any, float | None, bool]
NOT_RUN = "not run"


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def within(value: Any, limit: float, at_most: bool = True) -> bool:
    """``value`` is a number on the right side of ``limit`` (NaN or missing: not met)."""
    number = _num(value)
    if math.isnan(number):
        return False
    return number <= limit if at_most else number >= limit


def _s9(metric: str, limit: float, at_most: bool = True) -> Callable[[Scenario], Found | None]:
    def find(s9_result: Scenario) -> Found | None:
        row = next((r for r in s9_result.get("rows", []) if r.get("metric") == metric), None)
        if row is None:
            return None
        return row.get("chat"), row.get("ngircd"), within(row.get("chat"), limit, at_most)

    return find


def _s10_row(s10: Scenario, size: int) -> Row | None:
    return next((r for r in s10.get("rows", []) if r.get("size") == size), None)


def idle_30(s10: Scenario) -> Found | None:
    row = _s10_row(s10, 30)
    if row is None:
        return None if 30 not in s10.get("sizes", [30]) else ("not reached", None, False)
    value = row.get("idle_group_pct")
    if row.get("joined") != 30:
        return f"{_num(value):.1f} ({row.get('joined')} joined)", None, False
    return value, None, within(value, 15.0)


def group_100(s10: Scenario) -> Found | None:
    """Met when all 100 joined within the deadline, every node counts them all, and the
    paced load reached everyone."""
    row = _s10_row(s10, 100)
    if row is None:
        if 100 not in s10.get("sizes", [100]):
            return None
        last = max((r.get("joined", 0) for r in s10.get("rows", [])), default=0)
        return f"not reached ({last} joined)", None, False
    ok = row.get("joined") == 100 and row.get("views_complete") == 100 and not row.get("missing")
    text = f"{row.get('joined')}/100 joined in {_num(row.get('join_s')):.0f} s"
    if "missing" in row:  # measured (a group that did not grow is not)
        text += f", {row['missing']} missing"
    return text, None, ok


def failover(s5: Scenario) -> Found | None:
    """The median of the survivors agreeing on a new coordinator, and no run lost any
    acknowledged message (a run that failed: not met)."""
    rows = s5.get("rows", [])
    median = next((r for r in rows if r.get("run") == "median"), None)
    if median is None:
        return None
    runs = [r for r in rows if isinstance(r.get("run"), int)]
    lost = sum(int(r.get("lost") or 0) for r in runs)
    clean = runs and all("error" not in r for r in runs) and lost == 0
    agreed = median.get("agreed_ms")
    text = f"{_num(agreed):.0f} ms, {lost} lost"
    return text, None, bool(clean) and within(agreed, 1000.0)


TARGETS: list[tuple[str, str, Callable[[Scenario], Found | None]]] = [
    ("CPU per delivery <= 150 us (window 16)", "S9", _s9(s9.CPU, 150.0)),
    ("frames per delivery <= 1.1 (window 16)", "S9", _s9(s9.FRAMES, 1.1)),
    ("p50 at window 1 <= 1.0 ms", "S9", _s9(s9.P50, 1.0)),
    ("deliveries/s at window 16 >= 8,000", "S9", _s9(s9.RATE, 8000.0, at_most=False)),
    ("idle group of 30 <= 15 % of one core", "S10", idle_30),
    ("a group of 100 runs", "S10", group_100),
    ("failover median <= 1 s (survivors agree), 0 lost", "S5", failover),
    ("idle RSS per node <= 40 MiB (median)", "S9", _s9(s9.RSS, 40.0)),
]


def rows(results: dict[str, Scenario]) -> list[Row]:
    """The targets table: target, measured, ngIRCd, ratio (chat / ngIRCd), met."""
    out: list[Row] = []
    for label, scenario, find in TARGETS:
        result = results.get(scenario)
        failed = result is not None and result.get("title") == "FAILED"
        found = find(result) if result is not None and not failed else None
        if found is None:
            status = "failed" if failed else NOT_RUN
            row = {"target": label, "measured": status, "ngIRCd": None, "ratio": None}
            out.append({"scenario": scenario, **row, "met": status})
            continue
        measured, irc, met = found
        ratio = _num(measured) / irc if irc and not math.isnan(_num(measured)) else None
        out.append(
            {
                "scenario": scenario,
                "target": label,
                "measured": measured,
                "ngIRCd": irc,
                "ratio": ratio,
                "met": "yes" if met else "no",
            }
        )
    return out
