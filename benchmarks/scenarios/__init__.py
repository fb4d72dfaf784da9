"""The scenario suite: real servers under their own benchmark clients, real attacks.

`python -m benchmarks.scenarios` (or `benchmarks/bench_scenarios.py --suite`) runs it; see
`run.py` for the protocol and `benchmarks/README.md` ("scenarios") for the results.
Pieces, in the order the data flows: `servers/` start a server and its load,
`attacks.py` and `inject.py` attack it, `harness.py` drives the real sysgram CLI
(record, train --from per model, one watch per model), `attribution.py` decides which
alert belongs to which attack, `report.py` writes the tables.
"""
