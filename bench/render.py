"""Kept for `from bench.render import render`: the renderer lives in bench/report/."""

from bench.report import render

__all__ = ["render"]
