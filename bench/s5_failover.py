"""S5 failover: runs ``bench/failover.py`` (kill -9 of the coordinator under traffic) as a
subprocess and turns its JSON into rows. No IRC reference: one ngIRCd has no failover.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT


def _ms(value: Any) -> Any:
    return None if value is None else value * 1000


def run_script(script: Path, runs: int) -> tuple[dict[str, Any], int]:
    """``failover.py --runs RUNS`` in a child; its JSON report and exit status."""
    with tempfile.TemporaryDirectory(prefix="bench-s5-") as tmp:
        out = Path(tmp) / "failover.json"
        proc = subprocess.run(
            [sys.executable, str(script), "--runs", str(runs), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120 + 90 * runs,
            cwd=ROOT,
            check=False,
        )
        if not out.exists():
            raise RuntimeError(f"failover.py exited {proc.returncode}: {proc.stderr[-2000:]}")
        return json.loads(out.read_text()), proc.returncode


def rows_of(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run (times in ms), then the medians."""
    rows: list[dict[str, Any]] = []
    for r in raw["runs"]:
        if "error" in r:
            rows.append({"run": r["run"], "error": r["error"]})
            continue
        rows.append(
            {
                "run": r["run"],
                "N": r["nodes"],
                "suspected_ms": _ms(r["suspected_s"]),
                "elected_ms": _ms(r["elected_s"]),
                "agreed_ms": _ms(r["agreed_s"]),
                "director_ms": _ms(r["director_s"]),
                "acked": r["acked"],
                "lost": r["lost"],
                "max_coordinators": r["max_coordinators"],
            }
        )
    med = raw["median"]
    rows.append(
        {
            "run": "median",
            "suspected_ms": _ms(med["suspected_s"]),
            "elected_ms": _ms(med["elected_s"]),
            "agreed_ms": _ms(med["agreed_s"]),
            "director_ms": _ms(med["director_s"]),
            "lost": med["lost"],
            "max_coordinators": med["max_coordinators"],
        }
    )
    return rows


def run(quick: bool) -> dict[str, Any]:
    script = ROOT / "bench" / "failover.py"
    if not script.exists():
        return {
            "scenario": "S5",
            "title": "failover",
            "rows": [],
            "notes": ["TODO: bench/failover.py is missing"],
        }
    runs = 2 if quick else 5
    raw, returncode = run_script(script, runs)
    notes = [
        f"bench/failover.py --runs {runs} (exit {returncode}); times from SIGKILL; secure "
        "(a group secret, TLS 1.3 peer links, the default)",
        "references (facts.md): Serf kill -9 -> failed in 5.4-6.5 s; the course project's "
        "survivors agree after 12.7-15.3 s",
    ]
    return {
        "scenario": "S5",
        "title": "coordinator failover (kill -9)",
        "rows": rows_of(raw),
        "notes": notes,
        "raw": raw,
    }
