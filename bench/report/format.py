"""Formatting shared by every section: figures, one markdown table helper, the per-measurement header."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

Result = dict[str, Any]  # one bench/out/<measurement>.json
Facts = dict[str, Any]  # what a section hands to the targets
Cell = object  # None is a blank cell ("| |"); "" is an empty text ("|  |")

NA = "n/a"


def ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NA
    return f"{v:.2f} ms" if v < 100 else f"{v:,.0f} ms"


def pct(v: float | None) -> str:
    return NA if v is None else f"{100 * v:.1f}%"


def status(ok: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[ok]


def row(*cells: Cell) -> str:
    return "|" + "|".join(" " if c is None else f" {c} " for c in cells) + "|"


def table(columns: Sequence[str], rows: Iterable[Sequence[Cell]] = ()) -> list[str]:
    """A markdown table: the heading, the rule, then one line per row."""
    return [row(*columns), "|" + "---|" * len(columns), *(row(*r) for r in rows)]


def cores(r: Result | None) -> str:
    """The CPU count the measurement recorded (bench.common.machine_info)."""
    return str(((r or {}).get("machine") or {}).get("cpus"))


def header(r: Result) -> list[str]:
    load = (r.get("machine") or {}).get("loadavg_at_start") or [None]
    load_s = f"; 1-minute load average {load[0]:.1f} on {cores(r)} cores at its start" if load[0] else ""
    run = f"{r['mode']} sizes; {r.get('seconds', 0):.0f} s, run {r['started']}{load_s}"
    lines = [f"Reproduce: `{r['command']}` ({run})."]
    if r["status"] != "ok":
        lines += ["", f"**Not measured in this run ({r['status']}):** {r.get('reason', '')}"]
    return lines
