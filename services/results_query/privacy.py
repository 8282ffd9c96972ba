"""Small-cell suppression for analysts' figures (k-anonymity of aggregate cells).

One rule, applied wherever a count leaves for analysts (the /aggregates JSON, the
dashboard, the CLI): a cell counting between 1 and k-1 items is withheld, so that
narrow filters cannot single out one person's result. Zero is shown: it describes nobody.
"""

from __future__ import annotations


def is_small(count: int, min_cell_size: int) -> bool:
    return 0 < count < min_cell_size


def shown(count: int, min_cell_size: int) -> int | None:
    """The count, or None when the cell must be suppressed."""
    return None if is_small(count, min_cell_size) else count
