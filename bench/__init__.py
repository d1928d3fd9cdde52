"""Trainboard's benchmarks: how close its trainers, loaders and pages come to the libraries they drive.

``python -m bench`` (``make bench``) runs every section and writes ``bench/RESULTS.md``; ``--quick``
is a small smoke run. Every timed thing runs in a fresh child process (``bench.child``) so process
state (OpenMP thread teams, caches, imports) never leaks from one measurement into the next, and
each figure is a ratio of two things measured in the same run, repeats interleaved, so the noise
of a shared machine mostly cancels.
"""
