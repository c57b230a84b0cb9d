"""Real processes for the tests and the benchmarks: a private Redis server, a TCP proxy that can
cut a connection, a dramatiq worker, moto's S3 server. Both ``tests/`` and ``bench/`` start their
parts through here, so a benchmark runs the worker exactly as the fault tests do."""
