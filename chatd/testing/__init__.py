"""Test support that ships with the package: an in-memory network, in-process
clusters, and the decoder fuzzer (``python -m chatd.testing.fuzz``)."""
