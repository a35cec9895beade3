"""The cross-encoder of bench/pair_verifier.py trained with mined hard negatives too (section 1e).

scripts/bench.sh full pair-verifier-mined
"""

from __future__ import annotations

from typing import Any

from bench import pair_verifier
from bench.common import Context


def run(ctx: Context) -> dict[str, Any]:
    return pair_verifier.run(ctx, mined=True)
