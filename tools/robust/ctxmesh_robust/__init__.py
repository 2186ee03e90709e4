"""The robustness suite of ctxmesh: traffic, faults and checkers.

`scripts/robust` runs it; docs/robustness.md explains what it injects and
what it checks.
"""
