"""Test support that ships with the package: an in-memory network and in-process clusters."""
