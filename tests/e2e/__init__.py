"""End-to-end tests: the real director, chatd and chatctl processes."""
