"""Fault tests: Baton's real processes against an own Postgres and Redis that the tests kill,
stop and restart (`pytest -m faults`). The infrastructure is in `stack.py`, which the fault
benchmark (bench/faults.py) uses too."""
