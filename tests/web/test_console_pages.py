"""The rest of the console, page by page in the browser: a file's properties, versions and
deletion; pipeline permissions, security and checks; rejecting a run; keys, audit and
break-glass. Each change is checked through the services, each refusal by its reason."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from securefiles.client.check_spec import build_check
from tests.conftest import unique
from tests.web.conftest import PERSON, Console

pytestmark = pytest.mark.browser


def _upload(console: Console, name: str, content: bytes = b"v1") -> str:
    with console.system.client() as admin:
        return admin.upload_file(content, name=name).secure_file_id


def test_rename_properties_versions_and_a_delete_that_needs_the_name(console: Console, page, tmp_path) -> None:
    name = unique("props")
    file_id = _upload(console, name)
    base = f"{console.url}/projects/default/files/{file_id}"
    page.goto(base)
    page.get_by_label("One key=value per line").fill("team=ios\nowner=release")
    page.get_by_role("button", name="Save properties").click()
    expect(page.locator(".flash")).to_have_text("properties saved")
    page.get_by_label("New name").fill(name + "-renamed")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("h1")).to_have_text(name + "-renamed")
    with console.system.client() as admin:
        stored = admin.get_file(f"projects/default/secureFiles/{file_id}")
        assert stored.display_name == name + "-renamed" and dict(stored.properties) == {"team": "ios",
                                                                                       "owner": "release"}
        admin.update_library(allow_replace=True)
    try:
        page.goto(base + "/versions")
        source = tmp_path / "v2.bin"
        source.write_bytes(b"v2")
        page.get_by_label("New content").set_input_files(str(source))
        page.get_by_label("Reason").fill("renewed")
        page.get_by_role("button", name="Store as a new version").click()
        expect(page.locator(".flash")).to_have_text("stored version 2")
        page.get_by_label("Reason for rolling back to version 1").fill("bad renewal")
        page.get_by_role("button", name="Roll back to 1").click()
        expect(page.locator(".flash")).to_contain_text("version 1 is served again")
    finally:
        with console.system.client() as admin:
            admin.update_library(allow_replace=False)
    with console.system.client() as admin:
        resource = f"projects/default/secureFiles/{file_id}"
        assert admin.get_file(resource).sha256 == admin.list_versions(resource)[-1].sha256  # v1's content again

    # The server checks the typed name too (the button's script is only a convenience).
    page.goto(base)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = page.request.post(base + "/delete", form={"confirm_name": name, "csrf_token": token},
                                headers={"Origin": console.url})
    assert "NOT_CONFIRMED" in refused.text()
    with console.system.client() as admin:
        assert admin.get_file(f"projects/default/secureFiles/{file_id}").display_name == name + "-renamed"


def test_an_upload_refused_by_storage_says_why_on_the_page(console: Console, page, tmp_path) -> None:
    name = unique("twice")
    _upload(console, name)
    source = tmp_path / name
    source.write_bytes(b"again")
    page.get_by_label("File (at most").set_input_files(str(source))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash-error")).to_contain_text("[FILE_EXISTS]")


def test_pipeline_permissions_security_and_checks(console: Console, page) -> None:
    name = unique("access")
    file_id = _upload(console, name)
    pipeline = unique("pipe")
    with console.system.client() as admin:
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        admin.assign_role(f"user:{PERSON}", "administrator", file=name)  # still hers without the library's
    base = f"{console.url}/projects/default/files/{file_id}"

    page.goto(base + "/pipelines")
    page.get_by_role("button", name="Open access to every pipeline").click()
    expect(page.locator("main")).to_contain_text("Open access: every pipeline")
    page.get_by_role("button", name="Turn open access off").click()
    page.get_by_role("button", name=f"Revoke {pipeline}").click()
    expect(page.locator(".pipelines")).to_contain_text("No pipeline is authorized")
    with console.system.client() as admin:
        permissions = admin.get_pipeline_permissions(f"projects/default/secureFiles/{file_id}")
        assert not permissions.all_pipelines and list(permissions.pipelines) == []

    page.goto(base + "/security")
    page.get_by_label("Person or group").fill("user:bob")
    page.get_by_label("Role", exact=True).select_option("user")
    page.get_by_role("button", name="Give role").click()
    expect(page.locator(".flash")).to_have_text("user:bob is now user of this file")
    expect(page.locator("tr", has_text="user:bob").locator("td").nth(1)).to_have_text("user")  # the role's word
    page.get_by_role("button", name="Stop inheriting library roles").click()
    expect(page.locator("main")).to_contain_text("inheritance off")
    page.get_by_role("button", name="Remove the role of user:bob").click()
    with console.system.client() as admin:
        roles = admin.list_role_assignments(f"projects/default/secureFiles/{file_id}")
        assert not roles.inherit_from_library and "user:bob" not in [r.principal for r in roles.role_assignments]

    page.goto(base + "/checks")
    page.get_by_label("Kind").select_option("branch-control")
    page.get_by_label("Allowed refs").fill("refs/heads/release/../evil")  # git would refuse it
    page.get_by_role("button", name="Add check").click()
    expect(page.locator(".flash-error")).to_contain_text("INVALID_CHECK")  # authz's validation, as for the CLI
    page.get_by_label("Allowed refs").fill("refs/heads/main")
    page.get_by_label("Reject when pending longer than").fill("2d")
    page.get_by_role("button", name="Add check").click()
    page.get_by_role("link", name=re.compile(r"^Edit")).click()
    expect(page.get_by_label("Reject when pending longer than")).to_have_value("172800s")  # days included
    page.get_by_label("Allowed refs").fill("refs/heads/main,refs/heads/release/*")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("replaced by check")
    with console.system.client() as admin:
        (check,) = admin.list_checks(f"projects/default/secureFiles/{file_id}")
    assert list(check.branch_control.allowed_refs) == ["refs/heads/main", "refs/heads/release/*"]
    assert check.timeout.seconds == 2 * 86400  # kept through the edit
    page.get_by_role("button", name=f"Delete check {check.check_id}").click()
    expect(page.locator(".checks")).to_contain_text("No checks")


def test_rejecting_in_the_browser_refuses_the_run(console: Console, page, tmp_path) -> None:
    name = unique("reject")
    pipeline = unique("pipe")
    with console.system.client() as admin:
        admin.upload_file(b"secret", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        admin.assign_role("user:carol", "user")
        admin.add_check(name, build_check("approval", approvers=[f"user:{PERSON}"]))
        job = admin.start_run(pipeline, "refs/heads/main", requested_by="user:carol").job_token
    env = {"SECUREFILES_JOB_TOKEN": job}
    assert console.system.cli("agent", "download", name, "--dest", str(tmp_path), env=env).code == 4
    page.goto(f"{console.url}/projects/default/approvals")
    item = page.locator("article.approval", has_text=name)
    item.get_by_label("Comment").fill("not this week")
    item.get_by_role("button", name="Reject").click()
    expect(page.locator(".flash")).to_contain_text("it is now rejected")
    refused = console.system.cli("agent", "download", name, "--dest", str(tmp_path), env=env)
    assert refused.code == 3 and "CHECK_REJECTED" in refused.stderr


def test_operators_keys_audit_and_break_glass(console: Console, page) -> None:
    page.goto(f"{console.url}/operators/keys")
    before = page.locator("tbody tr").count()
    page.get_by_text("Rotate…").click()
    page.get_by_label("Reason", exact=True).fill("console test")
    page.get_by_label("Make a new primary key version of eu").check()
    page.get_by_role("button", name="Rotate").click()
    expect(page.locator(".flash")).to_contain_text("is the primary key version of eu")
    expect(page.locator("tbody tr")).to_have_count(before + 1)
    expect(page.locator("section", has_text="Region eu").locator(".badge", has_text="primary")).to_have_count(1)
    # Disabling needs the version's name typed; a wrong one changes nothing.
    page.get_by_text("Disable, enable or destroy a version…").click()
    page.get_by_label("Action").select_option("disable")
    page.get_by_label("Type the version's name").fill("regions/eu/keyVersions/999")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".flash-error")).to_contain_text("NOT_CONFIRMED")
    with console.system.client() as admin:
        _, versions = admin.list_key_versions("eu")
    assert all(v.state != 3 for v in versions)  # none DISABLED

    page.goto(f"{console.url}/operators/audit?service=authz&principal=user%3A{PERSON}")
    expect(page.locator("table.audit")).to_contain_text("SignIn")
    page.get_by_role("button", name="Verify every chain").click()
    expect(page.locator(".verify-result")).to_have_count(3)
    for result in page.locator(".verify-result").all_inner_texts():
        assert "intact" in result and "NOT" not in result

    page.goto(f"{console.url}/operators/access")
    page.get_by_label("Reason").fill("INC-7: signing fails")
    page.get_by_role("button", name="Request").click()
    row = page.locator("tr", has_text="INC-7: signing fails")
    expect(row).to_contain_text("pending")
    row.get_by_role("button", name="Approve").click()  # by the same operator: the two-person rule
    expect(page.locator(".flash-error")).to_contain_text("SECOND_OPERATOR_REQUIRED")
    page.locator("tr", has_text="INC-7: signing fails").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="INC-7: signing fails")).to_contain_text("revoked")


def test_an_approval_for_others_can_be_tried_and_authz_refuses(console: Console, page, tmp_path) -> None:
    """Alice administers the library, so she sees every approval; one for another group is
    under 'Waiting for others', and deciding it anyway gets authz's refusal."""
    name = unique("others")
    pipeline = unique("pipe")
    with console.system.client() as admin:
        admin.upload_file(b"secret", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        admin.assign_role("user:carol", "user")
        admin.add_check(name, build_check("approval", approvers=["group:security-officers"]))
        job = admin.start_run(pipeline, "refs/heads/main", requested_by="user:carol").job_token
    env = {"SECUREFILES_JOB_TOKEN": job}
    assert console.system.cli("agent", "download", name, "--dest", str(tmp_path), env=env).code == 4
    page.goto(f"{console.url}/projects/default/approvals")
    others = page.locator("section", has=page.get_by_role("heading", name="Waiting for others"))
    item = others.locator("article.approval", has_text=name)
    item.get_by_text("Decide anyway").click()
    item.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash-error")).to_contain_text("[NOT_AN_APPROVER]")
    assert console.system.cli("agent", "download", name, "--dest", str(tmp_path), env=env).code == 4
