"""Benchmarks: xmodal's loss, data path, search trial and search efficiency against the naive way, and
the peak memory of a Train worker per method.

    python -m xmodal.bench [--quick] [--out reports/benchmarks]

Each section is one module with a ``run(ctx) -> dict`` function; :mod:`xmodal.bench.report` turns
their figures into ``benchmarks.md``, ``benchmarks.json`` and PNG plots. See docs/benchmarks.md.
"""

SECTIONS = ("loss", "trial", "data_path", "search_efficiency", "scaling", "memory", "trial_vs_inprocess")
