"""Test support and the demo, above every program: an in-memory network, in-process
clusters (with the director's registry), the decoder fuzzer (``python -m chat_testing.fuzz``),
the hostile member, the recording relay, the harness for real processes (start, wait with a
deadline, control client, stop; used by the end-to-end tests, bench and the demo) and
``make demo``. It may import chat, chatd, chatctl and director; none of them, nor bench,
imports tests."""
