"""Routes of the review console (``/console``, moderators and admins) and the dashboard
(``/dashboard``, every role; counts only). Server-rendered, no front-end build; a few
lines of JavaScript add the keyboard shortcuts (static/console.js).

Decisions go through ``results_query.decisions.commit_decision``, the code the JSON API
uses: revisions, the decision outbox and the decision topic are the same.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from schemas.errors import TransientError
from schemas.messages import Decision, describe_validation_error, utcnow
from services.api.console.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    csrf_for,
    csrf_matches,
    end_session,
    new_secret,
    open_session,
    session_principal,
)
from services.api.counts import (
    flag_counts_shown,
    has_rates,
    outcomes_shown,
    review_times_shown,
    score_drift_shown,
)
from services.api.deps import RelayDep, ResultIdPath, SessionsDep, SettingsDep
from services.api.models import (
    FlagCountsPublic,
    OutcomesPublic,
    ReviewTimesPublic,
    ScoreDriftPublic,
)
from services.api.security.tokens import Principal, Role
from services.results_query.aggregates import Dimension
from services.results_query.claims import (
    QueueFilter,
    check_claim,
    claim_result,
    next_candidates,
    queue_facets,
    queue_view,
    release_claim,
)
from services.results_query.decisions import DecisionRequest, commit_decision
from services.results_query.errors import (
    ClaimHeldError,
    NotFlaggedError,
    ResultNotFoundError,
)
from services.results_query.filters import CleanStr, LanguageCode, ResultScope
from services.results_query.results import get_result

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
#: Shown in the queue before "… (N more characters: open the item)".
PREVIEW_CHARS = 160

#: Decisions as the console offers them: key, value, label.
DECISIONS: tuple[tuple[str, Decision, str], ...] = (
    ("1", Decision.CONFIRMED, "Indicators confirmed"),
    ("2", Decision.NOT_INDICATORS, "No indicators"),
    ("3", Decision.ESCALATED, "Urgent: escalate now"),
)
DECISION_LABELS = {value.value: label for _, value, label in DECISIONS}

# Same-origin everything; no inline script or style, so an injected tag could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Pages carry texts: never into a shared or browser cache.
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


class ConsoleDenied(Exception):
    """Signed in, but the role may not open this page (an analyst in the console)."""

    def __init__(self, principal: Principal) -> None:
        super().__init__(principal.name)
        self.principal = principal


@dataclass(frozen=True, kw_only=True)
class Viewer:
    principal: Principal
    session_secret: str

    @property
    def csrf(self) -> str:
        return csrf_for(self.session_secret)

    @property
    def is_moderator(self) -> bool:
        return self.principal.role in (Role.MODERATOR, Role.ADMIN)


def _safe_next(target: str | None, default: str) -> str:
    # Only paths of this site: no open redirect to another host ("//evil", "https://…").
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    viewer: Viewer | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "csrf_field": CSRF_FIELD, **context},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)


def _secure(request: Request, settings: Settings) -> bool:
    return settings.console.secure_cookies or request.url.scheme == "https"


def get_viewer(request: Request, sessions: SessionsDep) -> Viewer:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        with sessions() as session:
            principal = session_principal(session=session, secret=secret, now=utcnow())
        if principal is not None:
            return Viewer(principal=principal, session_secret=secret)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise HTTPException(
        status.HTTP_303_SEE_OTHER,
        "sign in first",
        headers={"Location": "/console/sign-in?" + urlencode({"next": here})},
    )


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def get_moderator(viewer: ViewerDep) -> Viewer:
    if not viewer.is_moderator:
        raise ConsoleDenied(viewer.principal)
    return viewer


ModeratorViewerDep = Annotated[Viewer, Depends(get_moderator)]


async def checked_form(request: Request, viewer: ViewerDep) -> dict[str, str]:
    """The form of a POST whose CSRF token matches the session; 403 otherwise."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not csrf_matches(viewer.session_secret, fields.get(CSRF_FIELD)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return fields


FormDep = Annotated[dict[str, str], Depends(checked_form)]


# --------------------------------------------------------------------------- sign-in


@router.get("/console", response_class=HTMLResponse)
def console_home(request: Request, sessions: SessionsDep) -> Response:
    """The start page: the queue for moderators, the dashboard for analysts."""
    try:
        viewer = get_viewer(request, sessions)
    except HTTPException:
        return _redirect("/console/sign-in")
    return _redirect("/console/queue" if viewer.is_moderator else "/dashboard")


@router.get("/console/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request, settings: SettingsDep, next: str | None = None, error: str | None = None
) -> Response:
    token = new_secret()
    response = _page(
        request,
        "sign_in.html",
        {"sign_in_csrf": token, "next": _safe_next(next, ""), "error": error},
        status_code=status.HTTP_401_UNAUTHORIZED if error else status.HTTP_200_OK,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
        path="/console",
    )
    return response


@router.post("/console/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, settings: SettingsDep, sessions: SessionsDep) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    presented = fields.get(CSRF_FIELD)
    if not cookie or not presented or cookie != presented:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    token = fields.get("token", "").strip()
    ttl = timedelta(minutes=settings.console.session_ttl_minutes)

    def exchange() -> tuple[str, Principal] | None:
        with sessions() as session, session.begin():
            return open_session(session=session, token_secret=token, now=utcnow(), ttl=ttl)

    opened = await asyncio.to_thread(exchange) if token else None
    if opened is None:
        return _redirect(
            "/console/sign-in?"
            + urlencode(
                {"error": "That token is unknown or revoked.", "next": fields.get("next", "")}
            )
        )
    secret, principal = opened
    default = "/console/queue" if principal.role in (Role.MODERATOR, Role.ADMIN) else "/dashboard"
    response = _redirect(_safe_next(fields.get("next"), default))
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


@router.post("/console/sign-out", response_class=HTMLResponse)
def sign_out(viewer: ViewerDep, _form: FormDep, sessions: SessionsDep) -> Response:
    with sessions() as session, session.begin():
        end_session(session=session, secret=viewer.session_secret, now=utcnow())
    response = _redirect("/console/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- the queue


class QueueQuery(QueueFilter):
    #: Set after a decision: which result was decided, and whether its event is out.
    done: int | None = Field(default=None, ge=1)
    decided: Decision | None = None
    published: bool | None = None
    empty: bool = False

    def queue_filter(self) -> QueueFilter:
        """The filter alone, without what the page carries after a decision."""
        return QueueFilter.model_validate(self.model_dump(include=set(QueueFilter.model_fields)))


def _filter_params(flt: QueueFilter) -> dict[str, str]:
    return {
        k: str(v)
        for k, v in flt.model_dump(mode="json", include=set(QueueFilter.model_fields)).items()
        if v is not None
    }


def _preview(text: str | None) -> tuple[str, int]:
    """The start of the text and how many characters were left out (said on the page)."""
    text = text or ""
    if len(text) <= PREVIEW_CHARS:
        return text, 0
    return text[:PREVIEW_CHARS], len(text) - PREVIEW_CHARS


@router.get("/console/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    viewer: ModeratorViewerDep,
    sessions: SessionsDep,
    query: Annotated[QueueQuery, Query()],
) -> Response:
    flt = query.queue_filter()
    now = utcnow()
    with sessions() as session:
        view = queue_view(session=session, flt=flt, moderator_id=viewer.principal.name, now=now)
        facets = queue_facets(session=session)
    return _page(
        request,
        "queue.html",
        {
            "view": view,
            "facets": facets,
            "flt": flt,
            "query": query,
            "filter_qs": urlencode(_filter_params(flt)),
            "preview": _preview,
            "now": now,
            "labels": DECISION_LABELS,
        },
        viewer=viewer,
    )


@router.get("/console/next", response_class=HTMLResponse)
def next_item(
    viewer: ModeratorViewerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    query: Annotated[QueueQuery, Query()],
) -> Response:
    """Claim the first free item in queue order and open it."""
    flt = query.queue_filter()
    params = _filter_params(flt)
    carried = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in query.model_dump(include={"done", "decided", "published"}).items()
        if v is not None
    }
    for _ in range(3):  # another moderator may take a candidate between the read and the claim
        now = utcnow()
        with sessions() as session:
            candidates = next_candidates(
                session=session, flt=flt, moderator_id=viewer.principal.name, now=now
            )
        if not candidates:
            break
        for result_id in candidates:
            try:
                _claim(sessions, result_id, viewer, settings)
            except (ClaimHeldError, NotFlaggedError, ResultNotFoundError):
                continue
            return _redirect(f"/console/items/{result_id}?" + urlencode({**params, **carried}))
    return _redirect("/console/queue?" + urlencode({**params, **carried, "empty": "true"}))


def _claim(
    sessions: sessionmaker[Session], result_id: int, viewer: Viewer, settings: Settings
) -> datetime:
    with sessions() as session, session.begin():
        claim = claim_result(
            session=session,
            result_id=result_id,
            moderator_id=viewer.principal.name,
            now=utcnow(),
            minutes=settings.console.claim_minutes,
        )
        return claim.expires_at


# --------------------------------------------------------------------------- one item


def _problem(request: Request, viewer: Viewer | None, code: int, title: str, body: str) -> Response:
    return _page(
        request, "message.html", {"title": title, "body": body}, viewer=viewer, status_code=code
    )


@router.get("/console/items/{result_id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    viewer: ModeratorViewerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    result_id: ResultIdPath,
    query: Annotated[QueueQuery, Query()],
) -> Response:
    flt = query.queue_filter()
    try:
        expires_at = _claim(sessions, result_id, viewer, settings)
    except ClaimHeldError as exc:
        return _problem(
            request,
            viewer,
            status.HTTP_409_CONFLICT,
            "Someone else is reviewing this item",
            f"{exc.moderator_id} opened result {result_id}; their claim runs until "
            f"{exc.expires_at:%H:%M} UTC. It returns to the queue if they leave it.",
        )
    except ResultNotFoundError:
        return _problem(
            request, viewer, 404, "No such result", f"Result {result_id} does not exist."
        )
    except NotFlaggedError:
        return _problem(request, viewer, 409, "Not flagged", f"Result {result_id} was not flagged.")
    with sessions() as session:
        row = get_result(session=session, result_id=result_id)
    return _page(
        request,
        "item.html",
        {
            "row": row,
            "decisions": DECISIONS,
            "labels": DECISION_LABELS,
            "expires_at": expires_at,
            "flt": flt,
            "filters": _filter_params(flt),
            "filter_qs": urlencode(_filter_params(flt)),
            "query": query,
        },
        viewer=viewer,
    )


#: How long an urgent decision waits for its event to reach the broker.
URGENT_PUBLISH_WAIT_S = 5.0


def _log_failure(task: asyncio.Task[int]) -> None:
    # Retrieve the outcome of a pass that outlived its wait (else asyncio warns); the
    # relay retries what stayed pending.
    if not task.cancelled() and task.exception() is not None:
        log.warning("a decision relay pass failed: %r", task.exception())


@router.post("/console/items/{result_id}/decide", response_class=HTMLResponse)
async def decide(
    request: Request,
    viewer: ModeratorViewerDep,
    form: FormDep,
    sessions: SessionsDep,
    relay: RelayDep,
    result_id: ResultIdPath,
) -> Response:
    try:
        flt = QueueFilter.model_validate(
            {k: v for k, v in form.items() if k in QueueFilter.model_fields and v}
        )
        request_ = DecisionRequest(
            decision=form.get("decision", ""),  # type: ignore[arg-type]
            moderator_id=viewer.principal.name,
            note=(form.get("note") or "").strip() or None,
        )
    except ValidationError as exc:
        return _problem(
            request, viewer, 422, "The decision was not recorded", describe_validation_error(exc)
        )
    moderator = viewer.principal.name

    def within(session: Session) -> None:
        now = utcnow()
        check_claim(session=session, result_id=result_id, moderator_id=moderator, now=now)
        release_claim(session=session, result_id=result_id, moderator_id=moderator)

    try:
        recorded = await asyncio.to_thread(
            commit_decision,
            sessions=sessions,
            result_id=result_id,
            request=request_,
            within=within,
        )
    except ClaimHeldError as exc:
        return _problem(
            request,
            viewer,
            status.HTTP_409_CONFLICT,
            "The decision was not recorded",
            f"Your claim ran out and {exc.moderator_id} is reviewing result {result_id} now.",
        )
    published: bool | None = None
    if recorded.created and request_.decision is Decision.ESCALATED:
        # Urgent: publish now, before the moderator moves on, rather than on the relay's
        # next pass. If the broker is down the outbox keeps it and the relay retries.
        # The wait is bounded: with the broker down the moderator hears so within seconds,
        # and the pass goes on in the background (the shield) until the sink gives up.
        task = asyncio.create_task(relay.publish_pending(), name=f"urgent-{result_id}")
        task.add_done_callback(_log_failure)
        try:
            await asyncio.wait_for(asyncio.shield(task), URGENT_PUBLISH_WAIT_S)
            published = True
        except (TransientError, TimeoutError) as exc:
            log.warning("urgent decision event for result %d stays pending: %r", result_id, exc)
            published = False
    elif recorded.created:
        relay.wake()
    params = {
        **_filter_params(flt),
        "done": str(result_id),
        "decided": request_.decision.value,
    }
    if published is not None:
        params["published"] = str(published).lower()
    return _redirect("/console/next?" + urlencode(params))


@router.post("/console/items/{result_id}/release", response_class=HTMLResponse)
def release(
    viewer: ModeratorViewerDep, form: FormDep, sessions: SessionsDep, result_id: ResultIdPath
) -> Response:
    with sessions() as session, session.begin():
        release_claim(session=session, result_id=result_id, moderator_id=viewer.principal.name)
    flt = {k: v for k, v in form.items() if k in QueueFilter.model_fields and v}
    return _redirect("/console/queue?" + urlencode(flt))


# --------------------------------------------------------------------------- dashboard


class DashboardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(default=7, ge=1, le=183, description="N: drift compares N days with N.")
    language: LanguageCode | None = None
    source: CleanStr | None = None
    model_version: CleanStr | None = None


@dataclass(frozen=True, kw_only=True)
class Figures:
    flags: FlagCountsPublic
    rates: bool
    drift: ScoreDriftPublic
    outcomes: OutcomesPublic
    reviews: ReviewTimesPublic
    since: datetime
    until: datetime


def _figures(session: Session, settings: Settings, query: DashboardQuery) -> Figures:
    """The same computations and presenters as the /aggregates endpoints."""
    until = utcnow()
    since = until - timedelta(days=2 * query.days)
    scope = ResultScope(
        since=since,
        language=query.language,
        source=query.source,
        model_version=query.model_version,
    )
    unbounded = scope.model_copy(update={"since": None})
    return Figures(
        flags=flag_counts_shown(
            session, settings, scope=scope, by=[Dimension.DAY, Dimension.LANGUAGE]
        ),
        rates=has_rates(settings),
        drift=score_drift_shown(
            session, settings, scope=unbounded, until=until, days=query.days, bins=10
        ),
        outcomes=outcomes_shown(session, settings, scope=scope, by_language=True),
        reviews=review_times_shown(session, settings, scope=scope, now=until),
        since=since,
        until=until,
    )


def _query_string(query: DashboardQuery) -> str:
    return urlencode({k: v for k, v in query.model_dump().items() if v is not None})


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    viewer: ViewerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    query: Annotated[DashboardQuery, Query()],
) -> Response:
    with sessions() as session:
        shown = _figures(session, settings, query)
    return _page(
        request,
        "dashboard.html",
        {
            "f": shown,
            "query": query,
            "qs": _query_string(query),
            "k": settings.console.min_cell_size,
        },
        viewer=viewer,
    )


FIGURES = ("flags", "drift", "precision", "reviews")


def _draw(name: str, shown: Figures) -> bytes:
    # matplotlib is imported on the first figure, not with the app (seconds of start-up).
    from services.api.console import figures

    if name == "flags":
        return figures.flags_figure(shown.flags, rates=shown.rates)
    if name == "drift":
        return figures.drift_figure(shown.drift)
    if name == "precision":
        return figures.precision_figure(shown.outcomes)
    return figures.review_figure(shown.reviews)


@router.get("/dashboard/figures/{name}.svg")
async def dashboard_figure(
    name: str,
    _viewer: ViewerDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    query: Annotated[DashboardQuery, Query()],
) -> Response:
    if name not in FIGURES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no figure {name!r}")

    def render() -> bytes:
        with sessions() as session:
            return _draw(name, _figures(session, settings, query))

    # matplotlib is CPU work: off the event loop.
    svg = await asyncio.to_thread(render)
    return Response(svg, media_type="image/svg+xml", headers=SECURITY_HEADERS)


# --------------------------------------------------------------------------- wiring


def install_console(app: FastAPI) -> None:
    """Pages, static assets and the page for a role that may not enter."""
    app.include_router(router)
    app.mount("/static/console", StaticFiles(directory=HERE / "static"), name="console-static")

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleDenied)
        return _problem(
            request,
            None,
            status.HTTP_403_FORBIDDEN,
            "The review console is for moderators",
            f"{exc.principal.name} is signed in as {exc.principal.role.value}; the review "
            "console shows texts and needs a moderator or admin token. The dashboard is open "
            "to you.",
        )

    app.add_exception_handler(ConsoleDenied, denied)
