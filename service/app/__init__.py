"""Use cases: one module per capability. Each takes plain domain values and a unit of work,
calls the engine's pure rules, and commits through the unit of work (unit_of_work.py)."""
