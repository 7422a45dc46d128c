"""Units of time shared by the detector, the simulator, the evaluation and maintenance.

Device time is UTC epoch seconds everywhere; a day is the period of the daily profile, the unit
of alarm budgets and of maintenance horizons. One definition, so that none of them can drift
from the others. (The compiled detector kernel reads it as a module-level constant.)
"""

from __future__ import annotations

DAY_S = 86400.0
"""Seconds in a day."""
