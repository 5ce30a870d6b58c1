"""A figure with no data says so, rather than showing empty axes that read as a bug."""
from __future__ import annotations

import math
from typing import Iterable


def has_numbers(values: Iterable) -> bool:
    return any(value is not None and not (isinstance(value, float) and math.isnan(value)) for value in values)


def say_no_data(axes, why: str) -> None:
    """Write `why` across `axes` (e.g. "no labelled turns: every label was unreadable")."""
    axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True, fontsize="small", color="0.35",
              transform=axes.transAxes)
