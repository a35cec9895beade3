"""Hermes Cache benchmarks: one module per measurement, JSON under bench/out/, rendered to docs/benchmarks.md.

Run with `make bench` (full) or `make bench-quick`; both go through scripts/bench.sh, which starts the
real services (Redis with vector search, vLLM on the CPU, the local control plane) and stops them after.
`python -m bench.run --help` runs or re-renders single measurements against services already running.
"""
