"""What every page and form of the console shares: who is asking (the session), the calls
made as them, rendering with autoescaping, and one way to answer errors."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlsplit

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from securefiles.client.api import SecureFilesClient
from securefiles.client.credentials import REFRESH_BEFORE_SECONDS
from securefiles.common.errors import SecureFilesError
from securefiles.common.resource_names import file_name
from securefiles.web import formatting
from securefiles.web.calls import Services
from securefiles.web.protection import FormRefused, read_form
from securefiles.web.sessions import COOKIE, Person, Session, SessionStore
from securefiles.web.settings import WebSettings

log = logging.getLogger("securefiles.web")
T = TypeVar("T")
STATUS_OF = {"INVALID_ARGUMENT": 400, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
             "FAILED_PRECONDITION": 409, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


class SignInRequired(Exception):
    """No signed-in person (or their session ended): go to the sign-in page."""


def local_path(target: object, default: str = "/") -> str:
    """`target` if it is a path of this site (never `//host` or `https://…`), else `default`."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("securefiles.web", "templates"),
        autoescape=True,  # every name and property is a stranger's text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    return Jinja2Templates(env=env)


class Console:
    """The console's state: settings, sessions, the services, templates."""

    def __init__(self, settings: WebSettings, services: Services, refresh: Callable[[Person], Person | None]
                 ) -> None:
        self.settings = settings
        self.services = services
        self.sessions = SessionStore(settings.max_sessions)
        self.templates = templates()
        self.public_url = settings.public_url
        self._refresh = refresh

    @property
    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def set_cookie(self, response: Response, session: Session) -> None:
        # A browser-session cookie: the server decides when the session ends (token expiry,
        # refresh, sign-out), so a refreshed session never outlives its cookie.
        response.set_cookie(COOKIE, session.session_id, path="/", secure=True, httponly=True, samesite="lax")

    async def person_of(self, session: Session) -> Person | None:
        """The signed-in person, their token refreshed at the provider when it is about to expire."""
        person = session.person
        if person is None or not person.refresh_token or time.time() < person.expire_at - REFRESH_BEFORE_SECONDS:
            return person
        renewed = await run_in_threadpool(self._refresh, person)
        if renewed is not None:
            self.sessions.renew(session, renewed)
            return renewed
        return person


@dataclass
class Ctx:
    """One request of a signed-in person, in one project."""

    console: Console
    request: Request
    session: Session
    person: Person
    project: str

    @property
    def file(self) -> str:
        """The id-based name of the file in the path (`/projects/{project}/files/{id}`)."""
        return file_name(self.project, self.request.path_params["file"])

    async def call(self, fn: Callable[[SecureFilesClient], T], project: str | None = None) -> T:
        return await self.console.services.as_person(self.person.token, project or self.project, fn)

    def render(self, template: str, status: int = 200, **values: object) -> Response:
        context = {"request": self.request, "person": self.person, "project": self.project, "tab": "",
                   "csrf_token": self.session.csrf_token, "flashes": self.session.take_flashes(),
                   "path": self.request.url.path, "quote": functools.partial(quote, safe=""), **values}
        return self.console.templates.TemplateResponse(self.request, template, context, status_code=status)

    async def form(self) -> FormData:
        return await read_form(self.request, self.session.csrf_token, self.console.origin,
                               self.console.settings.max_file_bytes)

    def flash(self, kind: str, message: str) -> None:
        self.session.flash(kind, message)


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


async def context_of(console: Console, request: Request) -> Ctx:
    session = console.session_of(request)
    person = await console.person_of(session) if session is not None else None
    if session is None or person is None:
        raise SignInRequired
    project = request.path_params.get("project") or console.settings.services.project
    return Ctx(console, request, session, person, project)


def sign_in_redirect(request: Request) -> RedirectResponse:
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        next_path = "/"
    return redirect(f"/signin?next={quote(next_path, safe='')}")


def error_page(console: Console, request: Request, status: int, title: str, message: str,
               ctx: Ctx | None = None) -> Response:
    values = {"title": title, "message": message}
    if ctx is not None:
        return ctx.render("error.html", status=status, **values)
    return console.templates.TemplateResponse(request, "error.html", {
        "request": request, "person": None, "project": "", "tab": "", "csrf_token": "", "flashes": [],
        "path": request.url.path,
        "quote": functools.partial(quote, safe=""), **values}, status_code=status)


def page(console: Console, handler: Callable[[Ctx], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A page for signed-in people; a service's refusal becomes an error page with its reason."""

    async def endpoint(request: Request) -> Response:
        try:
            ctx = await context_of(console, request)
        except SignInRequired:
            return sign_in_redirect(request)
        try:
            return await handler(ctx)
        except FormRefused as refused:
            return error_page(console, request, refused.status, "Refused", refused.message, ctx)
        except SecureFilesError as error:
            if error.code == "UNAUTHENTICATED":
                console.sessions.drop(ctx.session.session_id)
                return sign_in_redirect(request)
            status = STATUS_OF.get(error.code, 500)
            message = f"{error.message} [{error.reason}]" if status != 500 else "something went wrong"
            return error_page(console, request, status, "Not done", message, ctx)

    return endpoint


def action(console: Console, handler: Callable[[Ctx, FormData], Awaitable[str]]
           ) -> Callable[[Request], Awaitable[Response]]:
    """A form's target: CSRF-checked; success and refusals come back as a message on the page
    the form was on (post/redirect/get)."""

    async def endpoint(request: Request) -> Response:
        try:
            ctx = await context_of(console, request)
        except SignInRequired:
            return sign_in_redirect(request)
        try:
            form = await ctx.form()
        except FormRefused as refused:
            return error_page(console, request, refused.status, "Refused", refused.message, ctx)
        back = local_path(form.get("back"))
        try:
            target = await handler(ctx, form)
        except SecureFilesError as error:
            if error.code == "UNAUTHENTICATED":
                console.sessions.drop(ctx.session.session_id)
                return sign_in_redirect(request)
            ctx.flash("error", f"{error.message} [{error.reason}]" if error.code != "INTERNAL"
                      else "something went wrong")
            return redirect(back)
        finally:
            await form.close()
        return redirect(local_path(target, back))

    return endpoint
