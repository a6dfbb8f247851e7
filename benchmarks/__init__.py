"""The benchmark harness behind ``scripts/bench`` (it writes BENCHMARKS.md).

Every figure is measured in the same run as the baseline it is divided by, on the
same records (the mock source's shop A products), because this machine is shared and
noisy: absolute numbers move from run to run, ratios much less. These are
measurements, never assertions; the tests prove behaviour, this measures speed.
"""
