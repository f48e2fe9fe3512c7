"""The benchmark's targets table (issue 12) and the frame count behind one of its rows:
pure functions over results, no process started."""

from __future__ import annotations

import math
from typing import Any

from bench import s9_targets as s9
from bench.targets import NOT_RUN, TARGETS, rows, within


def s9_result(**chat: float) -> dict[str, Any]:
    irc = {s9.CPU: 8.0, s9.P50: 0.25, s9.RATE: 30000.0, s9.RSS: 5.0}
    return {
        "scenario": "S9",
        "title": "targets",
        "rows": [{"metric": m, "chat": v, "ngircd": irc.get(m)} for m, v in chat.items()],
    }


def by_target(table: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in table}


def label(prefix: str) -> str:
    return next(t[0] for t in TARGETS if t[0].startswith(prefix))


def test_every_target_is_a_row_and_a_scenario_not_run_says_so() -> None:
    table = rows({})
    assert [r["target"] for r in table] == [t[0] for t in TARGETS]
    assert len(table) == 8
    assert all(r["measured"] == NOT_RUN and r["met"] == NOT_RUN for r in table)


def test_s9_figures_are_judged_against_their_limits_with_the_ngircd_ratio() -> None:
    result = s9_result(**{s9.CPU: 120.0, s9.FRAMES: 1.3, s9.P50: 0.5, s9.RATE: 7000.0})
    table = by_target(rows({"S9": result}))
    cpu = table[label("CPU per delivery")]
    assert (cpu["met"], cpu["ngIRCd"], cpu["ratio"]) == ("yes", 8.0, 15.0)
    assert table[label("frames per delivery")]["met"] == "no"
    assert table[label("p50 at window 1")]["ratio"] == 2.0
    assert table[label("deliveries/s")]["met"] == "no"  # at least 8,000 wanted
    assert table[label("idle RSS")]["met"] == NOT_RUN  # no such row in this S9


def test_a_failed_scenario_fails_its_targets() -> None:
    table = by_target(rows({"S9": {"scenario": "S9", "title": "FAILED", "rows": []}}))
    assert table[label("CPU per delivery")]["met"] == "failed"
    assert table[label("a group of 100")]["met"] == NOT_RUN


def test_group_sizes_a_quick_run_skips_or_a_group_did_not_reach() -> None:
    quick = {"sizes": [10, 30], "rows": [{"size": 30, "joined": 28, "idle_group_pct": 9.0}]}
    table = by_target(rows({"S10": quick}))
    assert table[label("a group of 100")]["met"] == NOT_RUN
    assert table[label("idle group of 30")]["met"] == "no"  # only 28 joined
    full = {"sizes": [10, 30, 100], "rows": [{"size": 30, "joined": 30, "idle_group_pct": 9.0}]}
    table = by_target(rows({"S10": full}))
    assert table[label("idle group of 30")]["met"] == "yes"
    assert table[label("a group of 100")]["measured"] == "not reached (30 joined)"
    assert table[label("a group of 100")]["met"] == "no"
    ran = {"size": 100, "joined": 100, "views_complete": 100, "missing": 0, "join_s": 80.0}
    table = by_target(rows({"S10": {"sizes": [100], "rows": [ran]}}))
    assert table[label("a group of 100")]["met"] == "yes"
    table = by_target(rows({"S10": {"sizes": [100], "rows": [{**ran, "missing": 3}]}}))
    assert table[label("a group of 100")]["met"] == "no"


def test_failover_needs_the_median_within_a_second_and_nothing_lost() -> None:
    def s5(agreed: float, lost: list[int]) -> dict[str, Any]:
        runs = [{"run": i + 1, "agreed_ms": agreed, "lost": n} for i, n in enumerate(lost)]
        return {"rows": [*runs, {"run": "median", "agreed_ms": agreed, "lost": 0}]}

    target = label("failover")
    assert by_target(rows({"S5": s5(950.0, [0, 0])}))[target]["met"] == "yes"
    assert by_target(rows({"S5": s5(950.0, [0, 2])}))[target]["met"] == "no"
    assert by_target(rows({"S5": s5(1050.0, [0, 0])}))[target]["met"] == "no"


def test_within_treats_a_missing_figure_as_not_met() -> None:
    assert within(1.0, 1.0) and within(9000, 8000.0, at_most=False)
    assert not within(math.nan, 1.0) and not within(None, 1.0) and not within("n/a", 1.0)


def test_frames_per_delivery_counts_duplicates_as_extra_copies() -> None:
    before = {"messages.relayed": 100}
    after = {"messages.relayed": 190, "messages.duplicate": 9}  # first duplicate: a new key
    copies, relayed = s9.frames(90, before, after)
    assert math.isclose(copies, 1.1) and math.isclose(relayed, 1.0)
    assert all(math.isnan(v) for v in s9.frames(90, {}, {"messages.sent": 5}))
    assert all(math.isnan(v) for v in s9.frames(0, before, after))
