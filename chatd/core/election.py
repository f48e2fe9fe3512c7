"""Bully election state: ranks, and a node's candidacy.

Rules:
- A node's rank is ``(priority, node-id)``; the highest live node must end as coordinator.
- A candidate for term ``t`` sends ``election`` to every higher member it is linked to
  (and to each higher member as soon as a link to it comes up) and is ``VOTING`` until
  ``election_timeout``: no ``vote`` by then and it takes term ``t``.
- A ``vote`` for ``t`` from a higher member moves it to ``AWAITING`` that node's
  announcement; none within ``announce_timeout`` and it stands again for ``t + 1``.
- Any accepted coordinator claim of a term ≥ ``t`` ends the candidacy.
"""

from __future__ import annotations

import enum

from attrs import define

Rank = tuple[int, str]


class Phase(enum.Enum):
    VOTING = "voting"
    AWAITING = "awaiting"


@define
class Candidacy:
    term: int
    phase: Phase
    deadline: float

    def outvoted(self, now: float, announce_timeout: float) -> None:
        if self.phase is not Phase.VOTING:
            return
        self.phase = Phase.AWAITING
        self.deadline = now + announce_timeout
