"""Operators: key versions per region (rotate, rewrap, disable/enable/destroy), the audit logs
(filters, verify) and break-glass requests. kms, storage and authz decide who is an operator."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.responses import Response

from securefiles.client.api import SecureFilesClient
from securefiles.client.types import AuditVerification
from securefiles.common.durations import parse_duration
from securefiles.common.errors import InvalidArgument, SecureFilesError
from securefiles.common.resource_names import key_version_name
from securefiles.web.console import Ctx
from securefiles.web.pages.files import text

KEY_ACTIONS = ("disable", "enable", "destroy")


def _confirmed(form: FormData) -> None:
    if text(form, "confirm") != "on":
        raise InvalidArgument("tick the box to confirm; nothing was done", reason="NOT_CONFIRMED")


async def keys(ctx: Ctx) -> Response:
    def load(c: SecureFilesClient) -> list[dict[str, Any]]:
        regions = []
        for region in c.config.regions:
            _, versions = c.keys.versions(region)
            counts = c.keys.data_keys(region)
            regions.append({"region": region, "versions": [
                {"version": v, "state": v.state_word, "data_keys": counts.get(v.name, 0)} for v in versions]})
        return regions

    return ctx.render("keys.html", tab="keys", regions=await ctx.call(load))


async def rotate(ctx: Ctx, form: FormData) -> str:
    _confirmed(form)
    region = text(form, "region")
    created = await ctx.call(lambda c: c.keys.rotate(region, reason=text(form, "reason")))
    ctx.flash("notice", f"{created.name} is the primary key version of {region}; rewrap to move data keys to it")
    return "/operators/keys"


async def rewrap(ctx: Ctx, form: FormData) -> str:
    _confirmed(form)
    region = text(form, "region")
    done = await ctx.call(lambda c: c.keys.rewrap(region))
    ctx.flash("notice", f"rewrapped {done.rewrapped} data key(s) in {region}" +
              (f"; {done.failed} failed" if done.failed else ""))
    return "/operators/keys"


async def key_state(ctx: Ctx, form: FormData) -> str:
    """Disable, enable or destroy one version: the operator types the version's name."""
    region, version, what = text(form, "region"), text(form, "version"), text(form, "action")
    if what not in KEY_ACTIONS:
        raise InvalidArgument(f"one of {', '.join(KEY_ACTIONS)}", reason="INVALID_ARGUMENT")
    name = key_version_name(region, version)
    if text(form, "confirm_name") != name:
        raise InvalidArgument(f"type {name} to {what} it; nothing was changed", reason="NOT_CONFIRMED")
    if what == "destroy":
        in_use = (await ctx.call(lambda c: c.keys.data_keys(region))).get(name, 0)
        if in_use:
            raise InvalidArgument(f"{in_use} data key(s) still use {name}: rewrap first; nothing was destroyed",
                                  reason="KEY_VERSION_IN_USE")
    changed = await ctx.call(lambda c: c.keys.set_state(version, what, region))
    ctx.flash("notice", f"{changed.name} is {changed.state_word.lower()}")
    return "/operators/keys"


async def audit(ctx: Ctx) -> Response:
    query = ctx.request.query_params
    filters = {"service": query.get("service", "authz"), "resource": query.get("resource", ""),
               "principal": query.get("principal", "")}
    page_token = query.get("page_token", "")

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        services = list(c.audit.targets())
        if filters["service"] not in services:
            raise InvalidArgument(f"choose a service: {', '.join(services)}", reason="INVALID_ARGUMENT")
        return services, c.audit.page(filters["service"], page_token, filters["resource"], filters["principal"])

    services, page = await ctx.call(load)
    return ctx.render("audit.html", tab="audit", services=services, filters=filters, events=list(page.events),
                      next_page_token=page.next_page_token, verified=None)


async def verify(ctx: Ctx) -> Response:
    """`securefiles audit verify`: every chain, each against the newest head another service witnessed."""
    form = await ctx.form()
    await form.close()

    def run(c: SecureFilesClient) -> tuple[list[str], list[tuple[str, AuditVerification | None, int, str]]]:
        results: list[tuple[str, AuditVerification | None, int, str]] = []
        for service in c.audit.targets():
            try:
                witnessed = c.audit.latest_witnessed_head(service)
                results.append((service, c.audit.verify(service, witnessed), witnessed.sequence if witnessed else 0,
                                ""))
            except SecureFilesError as error:
                results.append((service, None, 0, f"{error.message} [{error.reason}]"))
        return list(c.audit.targets()), results

    services, results = await ctx.call(run)
    return ctx.render("audit.html", tab="audit", services=services,
                      filters={"service": "authz", "resource": "", "principal": ""}, events=[], next_page_token="",
                      verified=results)


async def access(ctx: Ctx) -> Response:
    requests = await ctx.call(lambda c: c.access.list())
    return ctx.render("access.html", tab="access", requests=list(reversed(requests)))


async def request_access(ctx: Ctx, form: FormData) -> str:
    ttl_text = text(form, "ttl") or "1h"
    try:
        ttl = parse_duration(ttl_text)
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_DURATION") from None
    project = text(form, "project")
    created = await ctx.call(lambda c: c.access.request(project, text(form, "reason"), ttl))
    ctx.flash("notice", f"{created.name} asks for access to {project}; a second operator must approve it")
    return "/operators/access"


async def decide_access(ctx: Ctx, form: FormData) -> str:
    request_id, what = ctx.request.path_params["request"], text(form, "action")
    if what not in ("approve", "revoke"):
        raise InvalidArgument("approve or revoke", reason="INVALID_ARGUMENT")
    if what == "approve":
        done = await ctx.call(lambda c: c.access.approve(request_id))
    else:
        done = await ctx.call(lambda c: c.access.revoke(request_id))
    ctx.flash("notice", f"{done.name}: {what}d")
    return "/operators/access"
