"""Files: the library's list (filters, upload) and one file's metadata, properties, rename,
versions and deletion. Contents never come back: storage has no such call for people."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from securefiles.client.api import SecureFilesClient
from securefiles.client.types import Library, SecureFile
from securefiles.common.errors import InvalidArgument
from securefiles.web.console import Ctx
from securefiles.web.formatting import WARN_DAYS

EXPIRY_FILTERS = {"all": "All files", "soon": f"Expiring within {WARN_DAYS} days (or expired)", "expired": "Expired"}


def name_glob(text: str) -> str:
    """What a person types in the name filter: a glob if it has `*` or `?`, else a substring. Either
    way `[` and `]` match themselves, as in every name pattern of storage's (no `[...]` classes)."""
    text = text.strip()
    if not text:
        return ""
    if "*" in text or "?" in text:
        return text
    return f"*{text}*"


def properties_from(text: str) -> dict[str, str]:
    """`key=value` lines (blank lines ignored)."""
    properties: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"a property is a line KEY=VALUE, not {line.strip()[:40]!r}",
                                  reason="INVALID_PROPERTY")
        properties[key.strip()] = value.strip()
    return properties


def text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def file_base(ctx: Ctx) -> str:
    return f"/projects/{ctx.project}/files/{ctx.request.path_params['file']}"


async def files_list(ctx: Ctx) -> Response:
    query = ctx.request.query_params
    name, expiry = query.get("name", ""), query.get("expiry", "all")
    now = dt.datetime.now(dt.UTC)
    before = {"soon": now + dt.timedelta(days=WARN_DAYS), "expired": now}.get(expiry)

    def load(c: SecureFilesClient) -> tuple[list[SecureFile], Library]:
        return list(c.files.list(name_glob(name), expires_before=before)), c.files.library()

    files, library = await ctx.call(load)
    return ctx.render("files.html", files=files, library=library, name=name,
                      expiry=expiry if expiry in EXPIRY_FILTERS else "all", expiry_filters=EXPIRY_FILTERS,
                      max_mib=ctx.console.settings.max_file_bytes // (1024 * 1024))


async def upload(ctx: Ctx, form: FormData) -> str:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidArgument("choose a file to upload", reason="INVALID_SOURCE")
    content = await upload.read()
    name = text(form, "name") or upload.filename
    properties = properties_from(text(form, "properties"))
    password = text(form, "parse_password").encode() or None
    created = await ctx.call(lambda c: c.files.upload(content, name=name, properties=properties,
                                                      parse_password=password))
    ctx.flash("notice", f"uploaded {created.display_name}")
    return f"/projects/{ctx.project}/files/{created.secure_file_id}"


async def file_overview(ctx: Ctx) -> Response:
    file_id = ctx.file
    secure_file = await ctx.call(lambda c: c.files.get(file_id))
    properties = "\n".join(f"{k}={v}" for k, v in sorted(secure_file.properties.items()))
    return ctx.render("file_overview.html", file=secure_file, tab="overview", properties_text=properties)


async def rename(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    renamed = await ctx.call(lambda c: c.files.update(file_id, rename=text(form, "display_name")))
    ctx.flash("notice", f"renamed to {renamed.display_name}")
    return file_base(ctx)


async def update_properties(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    properties = properties_from(text(form, "properties"))
    await ctx.call(lambda c: c.files.update(file_id, properties=properties))
    ctx.flash("notice", "properties saved")
    return file_base(ctx)


async def delete(ctx: Ctx, form: FormData) -> str:
    """Deleting crypto-shreds the file: the person types its name first."""
    file_id = ctx.file
    secure_file = await ctx.call(lambda c: c.files.get(file_id))
    if text(form, "confirm_name") != secure_file.display_name:
        raise InvalidArgument("type the file's name exactly to delete it; nothing was deleted",
                              reason="NOT_CONFIRMED")
    await ctx.call(lambda c: c.files.delete(file_id))
    ctx.flash("notice", f"deleted {secure_file.display_name}")
    return f"/projects/{ctx.project}/files"


async def versions(ctx: Ctx) -> Response:
    file_id = ctx.file

    def load(c: SecureFilesClient) -> tuple[Any, ...]:
        return c.files.get(file_id), c.files.library(), c.files.versions(file_id)

    secure_file, library, kept = await ctx.call(load)
    return ctx.render("file_versions.html", file=secure_file, tab="versions", library=library, versions=kept,
                      max_mib=ctx.console.settings.max_file_bytes // (1024 * 1024))


async def replace(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidArgument("choose the new content", reason="INVALID_SOURCE")
    content = await upload.read()
    password = text(form, "parse_password").encode() or None
    replaced = await ctx.call(lambda c: c.files.replace(file_id, content, reason=text(form, "reason"),
                                                        parse_password=password))
    ctx.flash("notice", f"stored version {replaced.version}")
    return file_base(ctx) + "/versions"


async def rollback(ctx: Ctx, form: FormData) -> str:
    file_id = ctx.file
    version = text(form, "version")
    if not version.isdigit():
        raise InvalidArgument("choose a version", reason="INVALID_ARGUMENT")
    rolled = await ctx.call(lambda c: c.files.rollback(file_id, int(version), reason=text(form, "reason")))
    ctx.flash("notice", f"version {version} is served again (now version {rolled.version})")
    return file_base(ctx) + "/versions"
