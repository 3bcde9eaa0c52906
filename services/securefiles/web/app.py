"""Composition root of the console: settings, sessions, routes, and the HTTPS server."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from securefiles.common.logging import configure_logging
from securefiles.web.calls import Services
from securefiles.web.console import Console, action, page, redirect
from securefiles.web.pages import approvals, file_access, files, operators, projects
from securefiles.web.protection import SecurityHeaders
from securefiles.web.settings import WebSettings
from securefiles.web.sign_in import SignInFlow

log = logging.getLogger("securefiles.web")
STATIC = Path(__file__).with_name("static")


def routes(console: Console, flow: SignInFlow) -> list[BaseRoute]:
    def get(path: str, handler: Callable[..., Any]) -> Route:
        return Route(path, page(console, handler), methods=["GET"])

    def post(path: str, handler: Callable[..., Any]) -> Route:
        return Route(path, action(console, handler), methods=["POST"])

    async def home(request: Request) -> Response:
        return redirect(f"/projects/{console.settings.services.project}/files")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    f = "/projects/{project}/files/{file}"
    return [
        Route("/", home, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/favicon.ico", no_icon, methods=["GET"]),
        Route("/signin", flow.page, methods=["GET"]),
        Route("/signin/start", flow.start, methods=["GET"]),
        Route("/auth/callback", flow.callback, methods=["GET"]),
        Route("/signout", flow.sign_out, methods=["POST"]),
        get("/projects", projects.projects),
        get("/projects/{project}/files", files.files_list),
        post("/projects/{project}/files", files.upload),
        get(f, files.file_overview),
        post(f + "/rename", files.rename),
        post(f + "/properties", files.update_properties),
        post(f + "/delete", files.delete),
        get(f + "/versions", files.versions),
        post(f + "/replace", files.replace),
        post(f + "/rollback", files.rollback),
        get(f + "/pipelines", file_access.pipelines),
        post(f + "/pipelines", file_access.set_pipeline),
        get(f + "/security", file_access.security),
        post(f + "/roles", file_access.set_role),
        post(f + "/inheritance", file_access.set_inheritance),
        get(f + "/checks", file_access.checks),
        post(f + "/checks", file_access.add_check),
        get(f + "/checks/{check:int}/edit", file_access.edit_check),
        post(f + "/checks/{check:int}/edit", file_access.save_check),
        post(f + "/checks/{check:int}/delete", file_access.delete_check),
        get("/projects/{project}/approvals", approvals.approvals),
        post("/projects/{project}/approvals/{approval:int}/decide", approvals.decide),
        get("/operators/keys", operators.keys),
        post("/operators/keys/rotate", operators.rotate),
        post("/operators/keys/rewrap", operators.rewrap),
        post("/operators/keys/state", operators.key_state),
        get("/operators/audit", operators.audit),
        Route("/operators/audit/verify", page(console, operators.verify), methods=["POST"]),
        get("/operators/access", operators.access),
        post("/operators/access/request", operators.request_access),
        post("/operators/access/{request:int}/decide", operators.decide_access),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def build_app(settings: WebSettings, lifespan: Callable[..., Any] | None = None) -> Starlette:
    """The console as an ASGI app (`settings.public_url` must be set)."""
    console = Console(settings, Services(settings.services), refresh=lambda person: flow.refresh(person))
    flow = SignInFlow(console)
    host = urlsplit(settings.public_url).hostname or "localhost"
    return Starlette(
        routes=routes(console, flow),
        middleware=[Middleware(SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=[host])],
        lifespan=lifespan,
    )


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]") or "0.0.0.0", int(port)))
    sock.listen(128)
    return sock


async def serve(settings: WebSettings) -> None:
    sock = _bind(settings.listen)
    port = sock.getsockname()[1]
    if not settings.public_url:
        settings = WebSettings(**{**settings.__dict__, "public_url": f"https://localhost:{port}"})
    server: uvicorn.Server | None = None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_exit_with_parent(settings.parent_pid, lambda: server))
        if settings.port_file is not None:
            tmp = settings.port_file.with_name(settings.port_file.name + ".tmp")
            tmp.write_text(str(port))
            os.replace(tmp, settings.port_file)
        log.info("console listening", extra={"url": settings.public_url})
        yield
        watcher.cancel()

    config = uvicorn.Config(build_app(settings, lifespan), ssl_certfile=str(settings.tls_cert),
                            ssl_keyfile=str(settings.tls_key), log_config=None, access_log=False,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    await server.serve(sockets=[sock])


async def _exit_with_parent(parent_pid: int | None, server: Callable[[], uvicorn.Server | None]) -> None:
    """Under `securefiles up`: stop when up is gone (as the services do)."""
    if not parent_pid:
        return
    while True:
        await asyncio.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            running = server()
            if running is not None:
                running.should_exit = True
            return


def main() -> None:
    settings = WebSettings.from_env()
    configure_logging("web", settings.log_level)
    asyncio.run(serve(settings))
