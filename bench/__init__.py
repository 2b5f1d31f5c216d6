"""Benchmarks: print tables, side by side with the peer in the same run, as ratios."""
