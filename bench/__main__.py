"""``python -m bench [--quick] [--out DIR] [--only S1,S2,...]``: run every scenario module
present (S1..S10), print one table each, write ``results.json`` and the PNG plots to DIR,
and print issue 12's targets table last. A scenario that fails is reported and the others
still run; the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import targets
from bench.common import ROOT
from bench.irc import version
from bench.report import plots, table, write_json

MODULES = {
    "S1": "bench.s1_latency",
    "S2": "bench.s2_throughput",
    "S3": "bench.s3_overlay",
    "S4": "bench.s4_join",
    "S5": "bench.s5_failover",
    "S6": "bench.s6_memory",
    "S7": "bench.s7_scale",
    "S8": "bench.s8_encryption",
    "S9": "bench.s9_targets",
    "S10": "bench.s10_group_size",
}
TARGETS_TITLE = "issue 12 (ratio = chat / ngIRCd; met: yes / no / not run)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--only", default="", help="comma-separated scenarios, e.g. S1,S6")
    args = parser.parse_args(argv)
    wanted = [s.strip().upper() for s in args.only.split(",") if s.strip()] or list(MODULES)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    failed = False
    for scenario in wanted:
        name = MODULES.get(scenario)
        if name is None or importlib.util.find_spec(name) is None:
            print(f"== {scenario}: not present, skipped\n", flush=True)
            continue
        t0 = time.monotonic()
        try:
            result: dict[str, Any] = importlib.import_module(name).run(args.quick)
        except Exception as exc:
            failed = True
            traceback.print_exc()
            result = {
                "scenario": scenario,
                "title": "FAILED",
                "rows": [],
                "notes": [f"{type(exc).__name__}: {exc}"],
            }
        result["seconds"] = round(time.monotonic() - t0, 1)
        results[scenario] = result
        print(table(result) + f"\n  ({result['seconds']} s)\n", flush=True)

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "ngircd": version(),
        },
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": results,
        "targets": targets.rows(results),
    }
    write_json(report, args.out / "results.json")
    for path in plots(results, args.out):
        print(f"plot: {path}")
    print(f"results: {args.out / 'results.json'} ({report['seconds']} s)\n")
    print(table({"scenario": "targets", "title": TARGETS_TITLE, "rows": report["targets"]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
