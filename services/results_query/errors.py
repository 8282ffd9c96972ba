"""Errors of the results queries (all under the project's one root, ``DepdetectError``)."""

from __future__ import annotations

from schemas.errors import DepdetectError


class ResultsQueryError(DepdetectError):
    """Root of the errors a results query raises on purpose."""


class ResultNotFoundError(ResultsQueryError, LookupError):
    """No result row has the id that was asked for."""

    def __init__(self, result_id: int) -> None:
        super().__init__(f"result {result_id} does not exist")
        self.result_id = result_id


class NotFlaggedError(ResultsQueryError):
    """Decisions are for flagged results; an unflagged row was never put to a moderator."""

    def __init__(self, result_id: int) -> None:
        super().__init__(
            f"result {result_id} was not flagged; only flagged results take moderator decisions"
        )
        self.result_id = result_id


class DecisionIdConflictError(ResultsQueryError):
    """A client-chosen decision id already names a different decision."""

    def __init__(self, decision_id: str) -> None:
        super().__init__(
            f"decision_id {decision_id!r} is already used by a different decision; "
            "choose a new id for a new decision"
        )
        self.decision_id = decision_id


class DecisionContentionError(ResultsQueryError):
    """Concurrent decisions on one result kept colliding; the caller may try again."""


class ClaimHeldError(ResultsQueryError):
    """Another moderator holds an unexpired claim on the result (the review console)."""

    def __init__(self, result_id: int, moderator_id: str, expires_at: object) -> None:
        super().__init__(
            f"result {result_id} is being reviewed by {moderator_id} until {expires_at}"
        )
        self.result_id = result_id
        self.moderator_id = moderator_id
        self.expires_at = expires_at
