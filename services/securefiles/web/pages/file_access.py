"""Who and what may use a file: pipeline permissions, security roles (and inheritance), and
the approvals and checks every run must pass. authz decides each change as for the CLI."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.responses import Response

from securefiles.client.api import SecureFilesClient
from securefiles.client.check_spec import CHECK_TYPES
from securefiles.common.errors import InvalidArgument
from securefiles.web.console import Ctx
from securefiles.web.pages.files import file_base, text

FILE_ROLES = ("reader", "user", "administrator")


async def pipelines(ctx: Ctx) -> Response:
    file_id = ctx.file

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        return c.files.get(file_id), c.pipelines.permissions(file_id), c.pipelines.list()

    secure_file, permissions, all_pipelines = await ctx.call(load)
    authorized = {p.pipeline_id for p in permissions.pipelines}
    return ctx.render("file_pipelines.html", file=secure_file, tab="pipelines", permissions=permissions,
                      available=[p for p in all_pipelines if p.pipeline_id not in authorized])


async def set_pipeline(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    what, pipeline = text(form, "action"), text(form, "pipeline")
    if what in ("open", "close"):
        await ctx.call(lambda c: c.pipelines.set_permission(file_id, None, what == "open"))
        ctx.flash("notice", "every pipeline of the project may use this file" if what == "open"
                  else "open access is off: only authorized pipelines may use this file")
    elif what in ("authorize", "revoke") and pipeline:
        await ctx.call(lambda c: c.pipelines.set_permission(file_id, pipeline, what == "authorize"))
        ctx.flash("notice", f"pipeline {'authorized' if what == 'authorize' else 'revoked'}")
    else:
        raise InvalidArgument("choose a pipeline", reason="INVALID_ARGUMENT")
    return file_base(ctx) + "/pipelines"


async def security(ctx: Ctx) -> Response:
    file_id = ctx.file

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        return c.files.get(file_id), c.roles.list(file_id)

    secure_file, roles = await ctx.call(load)
    return ctx.render("file_security.html", file=secure_file, tab="security", roles=roles, role_names=FILE_ROLES)


async def set_role(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    principal, role, what = text(form, "principal"), text(form, "role"), text(form, "action")
    if what == "remove":
        await ctx.call(lambda c: c.roles.delete(principal, file_id))
        ctx.flash("notice", f"removed {principal}'s role")
    else:
        if role not in FILE_ROLES:
            raise InvalidArgument(f"choose a role: {', '.join(FILE_ROLES)}", reason="INVALID_ROLE")
        await ctx.call(lambda c: c.roles.assign(principal, role, file_id))
        ctx.flash("notice", f"{principal} is now {role} of this file")
    return file_base(ctx) + "/security"


async def set_inheritance(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    inherit = text(form, "inherit") == "on"
    await ctx.call(lambda c: c.roles.set_inheritance(file_id, inherit))
    ctx.flash("notice", "library roles apply to this file" if inherit else "library roles no longer apply")
    return file_base(ctx) + "/security"


async def checks(ctx: Ctx) -> Response:
    file_id = ctx.file

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        return c.files.get(file_id), c.checks.list(file_id)

    secure_file, file_checks = await ctx.call(load)
    return ctx.render("file_checks.html", file=secure_file, tab="checks", checks=file_checks,
                      check_types=CHECK_TYPES, editing=None)


def check_from(form: FormData) -> dict[str, Any]:
    """The form's fields as `client.checks.add` takes them (the same builder as `securefiles checks add`
    reads them, and refuses what it refuses)."""
    min_approvals = text(form, "min_approvals")
    if min_approvals and not min_approvals.isdigit():
        raise InvalidArgument("minimum approvals must be a number", reason="INVALID_CHECK")
    approvers = [a.strip() for a in text(form, "approvers").replace("\n", ",").split(",") if a.strip()]
    return {"kind": text(form, "type"), "allowed": text(form, "allowed"), "approvers": approvers,
            "min_approvals": int(min_approvals) if min_approvals else None,
            "allow_requester": text(form, "allow_requester") == "on", "instructions": text(form, "instructions"),
            "timezone": text(form, "timezone"), "days": text(form, "days"), "start": text(form, "start"),
            "end": text(form, "end"), "timeout": text(form, "timeout")}


async def add_check(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    check = check_from(form)
    created = await ctx.call(lambda c: c.checks.add(file_id, **check))
    ctx.flash("notice", f"added {created.type} check {created.check_id}")
    return file_base(ctx) + "/checks"


async def edit_check(ctx: Ctx) -> Response:
    file_id, check_id = ctx.file, int(ctx.request.path_params["check"])

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        return c.files.get(file_id), c.checks.list(file_id)

    secure_file, file_checks = await ctx.call(load)
    editing = next((c for c in file_checks if c.check_id == check_id), None)
    if editing is None:
        ctx.flash("error", f"check {check_id} is gone")
    return ctx.render("file_checks.html", file=secure_file, tab="checks", checks=file_checks,
                      check_types=CHECK_TYPES, editing=editing)


async def save_check(ctx: Ctx, form: FormData) -> str:
    """Edit = the new settings are added, then the old check is removed: never a moment with
    neither (authz has no in-place update; runs under way re-evaluate against both)."""
    file_id, check_id = ctx.file, int(ctx.request.path_params["check"])
    check = check_from(form)
    created = await ctx.call(lambda c: c.checks.add(file_id, **check))
    await ctx.call(lambda c: c.checks.delete(file_id, check_id))
    ctx.flash("notice", f"check {check_id} replaced by check {created.check_id}")
    return file_base(ctx) + "/checks"


async def delete_check(ctx: Ctx, form: FormData) -> str:
    file_id, check_id = ctx.file, int(ctx.request.path_params["check"])
    await ctx.call(lambda c: c.checks.delete(file_id, check_id))
    ctx.flash("notice", f"removed check {check_id}")
    return file_base(ctx) + "/checks"
