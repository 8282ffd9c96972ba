"""The project's one exception root and the contract errors.

DepdetectError
 ├── ContractError (ValueError)        a message breaks a contract in ``schemas``
 ├── ConfigurationError (ValueError)   settings or files that cannot work together
 ├── BundleError (ValueError)          a model bundle is missing a file or has another format
 └── TransientError                    worth retrying: database or broker unavailable
"""

from __future__ import annotations


class DepdetectError(Exception):
    """Root of every error this project raises on purpose."""


class ContractError(DepdetectError, ValueError):
    """A message does not meet its contract. ``reason`` names the field and the problem."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class ConfigurationError(DepdetectError, ValueError):
    """Settings, paths or files that cannot work; the message says how to fix it."""


class BundleError(DepdetectError, ValueError):
    """A model bundle that the service must refuse."""


class TransientError(DepdetectError):
    """A dependency is unavailable for now; the caller retries with back-off."""
