"""Errors of the generator, under the project's one exception root."""

from __future__ import annotations

from schemas.errors import ConfigurationError, DepdetectError, TransientError


class GenerationError(DepdetectError):
    """The generator cannot go on; the message says what to do."""


class ResponseParseError(GenerationError, ValueError):
    """A model answer holds no usable list of texts (the request is retried)."""


class RunConflictError(ConfigurationError):
    """A run directory holds a run with another configuration, or an unclear submission."""


class MissingApiKeyError(ConfigurationError):
    """A real run needs an Anthropic API key."""


class BatchSubmissionError(TransientError):
    """Creating a batch failed in a way that may or may not have created it; rerun to reconcile."""
