"""Print the `vllm:` metric names a running vLLM exposes on /metrics, sorted, one per line.

    python scripts/vllm/metric_names.py [URL]        default URL: http://127.0.0.1:8100/metrics

Names are given without label sets: every sample name (`..._total`, `..._created`, `..._bucket`,
`..._sum`, `..._count`, gauges) plus the family names from `# TYPE` lines (histogram base names).
This is how docs/vllm-metrics.txt is made. Standard library only.
"""

from __future__ import annotations

import re
import sys
import urllib.request

SAMPLE = re.compile(r"^(vllm:[A-Za-z0-9_:]+)[{ ]")
TYPE = re.compile(r"^# TYPE (vllm:[A-Za-z0-9_:]+) ")


def metric_names(text: str) -> list[str]:
    names: set[str] = set()
    for line in text.splitlines():
        m = SAMPLE.match(line) or TYPE.match(line)
        if m:
            names.add(m.group(1))
    return sorted(names)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8100/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    names = metric_names(text)
    if not names:
        print(f"no vllm: metrics at {url}", file=sys.stderr)
        return 1
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
