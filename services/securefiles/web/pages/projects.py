"""The projects a person can switch between."""

from __future__ import annotations

from starlette.responses import Response

from securefiles.web.console import Ctx


async def projects(ctx: Ctx) -> Response:
    found = await ctx.call(lambda c: c.projects.list())
    return ctx.render("projects.html", tab="projects", projects=found)
