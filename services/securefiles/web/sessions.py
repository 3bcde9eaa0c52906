"""Server-side sessions: the browser holds only a random session id (an HttpOnly, Secure,
SameSite cookie); the person's session token, CSRF token and sign-in state stay here.

In memory, bounded, and gone when the console restarts (people sign in again). A person's
session lives as long as their authz session token, and ends at once on sign-out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "__Host-securefiles-session"  # __Host-: Secure, Path=/, no Domain; the browser enforces it
ANONYMOUS_SECONDS = 15 * 60  # long enough to finish signing in


@dataclass(frozen=True)
class Person:
    """Who signed in, and the token the console calls the services with on their behalf."""

    principal: str
    groups: tuple[str, ...]
    token: str
    expire_at: float
    refresh_token: str = ""


@dataclass(frozen=True)
class PendingSignIn:
    """What the OpenID provider's answer must match (RFC 6749 state, OIDC nonce, PKCE verifier)."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next_path: str


@dataclass
class Session:
    session_id: str
    csrf_token: str
    expire_at: float
    person: Person | None = None
    sign_in: PendingSignIn | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message), shown once

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))
        del self.flashes[:-5]

    def take_flashes(self) -> list[tuple[str, str]]:
        shown, self.flashes = self.flashes, []
        return shown


class SessionStore:
    """Sessions by id, anonymous ones (signing in) apart: a flood of sign-ins that are never
    finished evicts only other unfinished sign-ins, never a signed-in person's session."""

    def __init__(self, max_sessions: int, clock: Callable[[], float] = time.time) -> None:
        self._people: OrderedDict[str, Session] = OrderedDict()
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._max = max_sessions
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            for sessions in (self._people, self._anonymous):
                session = sessions.get(session_id)
                if session is None:
                    continue
                if session.expire_at <= self._clock():
                    del sessions[session_id]
                    return None
                return session
        return None

    def new(self) -> Session:
        """An anonymous session: it carries a sign-in under way and a CSRF token."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock() + ANONYMOUS_SECONDS)
        self._put(self._anonymous, session)
        return session

    def sign_in(self, old: Session, person: Person) -> Session:
        """A fresh session id and CSRF token for the signed-in person (no session fixation)."""
        self.drop(old.session_id)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), person.expire_at, person=person)
        self._put(self._people, session)
        return session

    def renew(self, session: Session, person: Person) -> None:
        """The person's token was refreshed: same session, new token and expiry."""
        session.person = person
        session.expire_at = person.expire_at

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._people.pop(session_id, None)
            self._anonymous.pop(session_id, None)

    def _put(self, sessions: OrderedDict[str, Session], session: Session) -> None:
        with self._lock:
            now = self._clock()
            while sessions and next(iter(sessions.values())).expire_at <= now:
                sessions.popitem(last=False)  # anonymous ones expire in order; people's mostly do
            while len(sessions) >= self._max:
                sessions.popitem(last=False)
            sessions[session.session_id] = session

    def __len__(self) -> int:
        return len(self._people) + len(self._anonymous)
