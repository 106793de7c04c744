"""``reporting``: the layer above the primitives that runs the benchmarks and writes the report.

``reporting.bench_cli`` (``privcrypt bench NAME``) and ``reporting.demo`` (``privcrypt demo``)
load the scripts in the checkout's ``benchmarks/`` folder; ``reporting.html`` writes the
self-contained HTML page and ``reporting.figures`` draws its figures (matplotlib, Agg).
Nothing in ``privcrypt``, ``fl`` or ``imaging`` imports this package.
"""
