"""The sans-I/O core: pure state machines that take events and ``now`` and return effects.

Nothing here imports trio, sockets or ``time``.
"""
