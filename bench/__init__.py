"""Benchmarks of chat against ngIRCd and the physical floor on 127.0.0.1 (see README)."""
