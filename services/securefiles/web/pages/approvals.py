"""Approvals: what waits for me (with the run, pipeline, branch, requester and instructions),
approve or reject with a comment, and the history. authz decides who may decide."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.responses import Response

from securefiles.client.api import SecureFilesClient
from securefiles.client.types import Approval
from securefiles.common.errors import InvalidArgument
from securefiles.web.console import Ctx
from securefiles.web.pages.files import text


@dataclass(frozen=True)
class ApprovalView:
    approval: Approval
    state: str
    file_name: str
    pipeline: str
    run_id: str
    mine: bool  # I am one of its approvers (directly or by a group) and have not decided yet


def _describe(approvals: list[Approval], files: dict[str, str], pipelines: dict[str, str], me: str,
              groups: tuple[str, ...]) -> list[ApprovalView]:
    views = []
    for a in approvals:
        parts = a.run.split("/")  # projects/{p}/pipelines/{id}/runs/{run}
        pipeline_id, run_id = (parts[3], parts[5]) if len(parts) == 6 else ("", a.run)
        decided = any(d.approver == me for d in a.decisions)
        eligible = me in a.approvers or any(g in a.approvers for g in groups)
        state = a.state_word
        views.append(ApprovalView(
            a, state, files.get(a.resource, a.resource), pipelines.get(pipeline_id, pipeline_id or "?"), run_id,
            mine=state == "PENDING" and eligible and not decided))
    return views


async def approvals(ctx: Ctx) -> Response:
    def load(c: SecureFilesClient) -> tuple[list[Approval], dict[str, str], dict[str, str]]:
        found = c.checks.approvals()
        files = {f.name: f.display_name for f in c.files.list()}
        pipelines = {str(p.pipeline_id): p.display_name for p in c.pipelines.list()}
        return found, files, pipelines

    found, files, pipelines = await ctx.call(load)
    views = _describe(found, files, pipelines, ctx.person.principal, ctx.person.groups)
    return ctx.render("approvals.html", tab="approvals",
                      mine=[v for v in views if v.mine],
                      waiting=[v for v in views if v.state == "PENDING" and not v.mine],
                      history=[v for v in reversed(views) if v.state != "PENDING"])


async def decide(ctx: Ctx, form: FormData) -> str:
    approval_id = ctx.request.path_params["approval"]
    decision = text(form, "decision")
    if decision not in ("approve", "reject"):
        raise InvalidArgument("approve or reject", reason="INVALID_ARGUMENT")
    decided = await ctx.call(lambda c: c.checks.decide(approval_id, decision == "approve", text(form, "comment")))
    ctx.flash("notice", f"approval {approval_id}: you {decision}d; it is now {decided.state_word.lower()}")
    return f"/projects/{ctx.project}/approvals"
