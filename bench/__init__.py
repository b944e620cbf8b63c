"""alphaforge benchmarks for the Features API.

Run all of them with ``python -m bench`` (or ``make bench``), one alone with
``python -m bench.plugin_overhead``, ``python -m bench.generate_latency`` or
``python -m bench.panel_build``. Each takes ``--quick`` (fewer symbols and repeats, for a
smoke run) and writes its figures as JSON to ``bench/results/<name>.json``.

All market data here is SYNTHETIC (a seeded geometric random walk, see
``bench.common.synthetic_bars``), except ``generate_latency``, which uses the bundled GSPC
sample that the server loads on start.
"""
