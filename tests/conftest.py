"""Shared test settings: ``HYPOTHESIS_PROFILE=ci`` runs more hypothesis examples."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=500, deadline=None, print_blob=True)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
