"""Dependencies for the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from services.api.outbox.relay import DecisionRelay
from services.api.resources import ApiResources
from services.api.security.tokens import Principal, Role, authenticate


def get_resources(request: Request) -> ApiResources:
    resources = request.app.state.resources
    assert isinstance(resources, ApiResources)
    return resources


ResourcesDep = Annotated[ApiResources, Depends(get_resources)]


def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


def get_sessions(resources: ResourcesDep) -> sessionmaker[Session]:
    return resources.sessions


def get_relay(resources: ResourcesDep) -> DecisionRelay:
    return resources.relay


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
RelayDep = Annotated[DecisionRelay, Depends(get_relay)]


def get_session(sessions: SessionsDep) -> Iterator[Session]:
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# auto_error=False: a missing header must give our 401 with WWW-Authenticate, not a 403.
_bearer = HTTPBearer(auto_error=False, description="A token from `depdetect tokens create`.")


def get_principal(
    sessions: SessionsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a bearer token is required", headers=challenge
        )
    # Its own short session: the check must not hold a transaction open for the route.
    with sessions() as session:
        principal = authenticate(session=session, secret=credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "the token is unknown or revoked", headers=challenge
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    allowed = ", ".join(r.value for r in roles)

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this; it needs one of: {allowed}",
            )
        return principal

    return check


#: May read texts and record decisions.
ModeratorDep = Annotated[Principal, Depends(require_role(Role.MODERATOR, Role.ADMIN))]
#: May read aggregate figures (no texts).
FiguresDep = Annotated[Principal, Depends(require_role(Role.ANALYST, Role.MODERATOR, Role.ADMIN))]


#: A result's primary key; bounded so that no value reaches the database as an overflow.
ResultIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The result's id.")]
