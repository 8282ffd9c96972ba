"""Training errors, under the project's one root ``DepdetectError``."""

from __future__ import annotations

from schemas.errors import DepdetectError


class ParityError(DepdetectError):
    """The exported model disagrees with PyTorch more than the bar allows."""


class ModelCollapsedError(DepdetectError):
    """The model does not separate the classes; calibration and thresholds cannot help."""
