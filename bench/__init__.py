"""Benchmarks that report ratios against bare baselines measured in the same run."""
