"""Render bench/out/*.json into docs/benchmarks.md and the PNG plots under docs/bench/.

Nothing here measures: every number in the document is read from a result file, and a measurement
that was skipped or failed is shown as such, with its reason, instead of a figure.

    format.py    figures (ms, %), the one markdown table helper, the header every section starts with
    sections.py  the sections as data: the result each reads, its title, its body and the facts it hands on
    targets.py   the targets: thresholds as data, and the prose that explains a miss
    plots.py     the PNGs (matplotlib, from the bench extra)
    document.py  the document: head, targets table, sections
    summary.py   `python -m bench.report.summary`: the README's every-set quality table
"""

from bench.report.document import render

__all__ = ["render"]
