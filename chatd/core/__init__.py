"""The sans-I/O core: pure state machines that take events and ``now`` and return effects.

Nothing here does I/O, reads a clock, draws random numbers or logs: no trio, sockets,
``time``, ``random``, ``os`` or logging imports (tests/test_layers.py). Log lines are
``Log`` effects; ``chatd.core.node`` composes the parts.
"""
