"""Approvals and checks through the CLI and the agent, on the running system."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time

from tests.conftest import LocalSystem, unique, user_token


def _setup(system: LocalSystem, *check_args: list[str]) -> tuple[str, str]:
    """A file with checks, a pipeline authorized on it: (file, pipeline)."""
    name, pipeline = unique("checked") + ".p12", unique("pipe")
    with system.client() as admin:
        admin.upload_file(b"guarded by checks", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        for user in ("user:alice", "user:bob", "user:carol"):
            admin.assign_role(user, "user")
    for args in check_args:
        added = system.cli("checks", "add", name, *args, "--output", "json")
        assert added.code == 0, added.stderr
    return name, pipeline


def _start(system: LocalSystem, pipeline: str, branch: str = "refs/heads/main") -> dict:
    started = system.cli("runs", "start", pipeline, "--branch", branch, "--requested-by", "user:alice",
                         "--output", "json")
    assert started.code == 0, started.stderr
    return started.json()


def _as(system: LocalSystem, user: str) -> dict[str, str]:
    return {"SECUREFILES_TOKEN": user_token(system, user)}


def test_checks_list_shows_every_check(system: LocalSystem) -> None:
    name, _ = _setup(system, ["branch-control", "--allowed", "refs/heads/main,refs/heads/release/*"],
                     ["approval", "--approver", "user:bob", "--approver", "user:carol", "--min-approvals", "2",
                      "--instructions", "check the changelog", "--timeout", "2d"],
                     ["business-hours", "--timezone", "Europe/Berlin", "--days", "mon-fri", "--start", "09:00",
                      "--end", "17:00"],
                     ["exclusive-lock", "--timeout", "1h"])
    listed = system.cli("checks", "list", name, "--output", "json").json()
    assert [c["type"] for c in listed] == ["branch-control", "approval", "business-hours", "exclusive-lock"]
    assert listed[0]["branchControl"] == {"allowedRefs": ["refs/heads/main", "refs/heads/release/*"]}
    assert listed[1]["approval"]["approvers"] == ["user:bob", "user:carol"]
    assert listed[1]["approval"]["minApprovals"] == 2 and listed[1]["branchControl"] is None
    assert listed[1]["timeout"] == f"{2 * 86400}s"
    assert listed[2]["businessHours"]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert listed[3]["timeout"] == "3600s" and listed[3]["exclusiveLock"] == {}
    deleted = system.cli("checks", "delete", name, str(listed[3]["checkId"]))
    assert deleted.code == 0
    assert len(system.cli("checks", "list", name, "--output", "json").json()) == 3


def test_pending_download_exits_4_then_approval_lets_it_through(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["approval", "--approver", "user:bob"])
    run = _start(system, pipeline)
    job = {"SECUREFILES_JOB_TOKEN": run["jobToken"]}
    pending = system.cli("agent", "download", name, "--dest", str(tmp_path), env=job)
    assert pending.code == 4
    assert "CHECKS_PENDING" in pending.stderr and "approval" in pending.stderr
    assert list(tmp_path.iterdir()) == []

    approvals = system.cli("approvals", "list", "--pending", "--output", "json", env=_as(system, "user:bob")).json()
    mine = [a for a in approvals if a["run"].endswith(f"/runs/{run['run']['runId']}")]
    assert len(mine) == 1 and mine[0]["state"] == "CHECK_STATE_PENDING" and mine[0]["approvers"] == ["user:bob"]

    outsider = system.cli("approvals", "approve", str(mine[0]["approvalId"]), env=_as(system, "user:carol"))
    assert outsider.code == 3 and "NOT_AN_APPROVER" in outsider.stderr
    approved = system.cli("approvals", "approve", str(mine[0]["approvalId"]), "--comment", "ship it",
                          env=_as(system, "user:bob"))
    assert approved.code == 0, approved.stderr
    downloaded = system.cli("agent", "download", name, "--dest", str(tmp_path), env=job)
    assert downloaded.code == 0, downloaded.stderr
    assert (tmp_path / name).read_bytes() == b"guarded by checks"

    events = system.cli("audit", "list", "--service", "authz", "--output", "json").json()
    assert any(e["action"] == "Approve" and e["principal"] == "user:bob" and e["decision"] == "ALLOW"
               for e in events)
    assert any(e["action"] == "Approve" and e["principal"] == "user:carol" and e["decision"] == "DENY"
               for e in events)


def test_rejected_check_exits_3_naming_the_check(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["branch-control", "--allowed", "refs/heads/main"])
    run = _start(system, pipeline, branch="refs/heads/experiment")
    result = system.cli("agent", "download", name, "--dest", str(tmp_path),
                        env={"SECUREFILES_JOB_TOKEN": run["jobToken"]})
    assert result.code == 3
    assert "CHECK_REJECTED" in result.stderr and "branch-control" in result.stderr


def test_rejection_by_an_approver(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["approval", "--approver", "user:bob"])
    run = _start(system, pipeline)
    requested = system.cli("runs", "request", name, "--output", "json", env={"SECUREFILES_JOB_TOKEN": run["jobToken"]})
    assert requested.code == 0, requested.stderr
    approval_id = requested.json()[0]["results"][0]["approvalId"]
    assert approval_id > 0
    assert system.cli("approvals", "reject", str(approval_id), "--comment", "not today",
                      env=_as(system, "user:bob")).code == 0
    result = system.cli("agent", "download", name, "--dest", str(tmp_path),
                        env={"SECUREFILES_JOB_TOKEN": run["jobToken"]})
    assert result.code == 3 and "rejected by user:bob" in result.stderr


class WaitingAgent:
    """`agent download --wait-for-checks` in the background; what it says on stderr can be waited for."""

    def __init__(self, system: LocalSystem, token: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "securefiles", "agent", "download", *args], text=True,
            env=system.env(SECUREFILES_JOB_TOKEN=token), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 60) -> str:
        """The first line (from now on, or already said) containing `needle`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        for line in self.said:
            if needle in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the agent never said {needle!r}; it said {self.said}") from None
            self.said.append(line)
            if needle in line:
                return line

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, _ = self.process.communicate(timeout=timeout)
        self._reader.join(timeout)
        while not self.lines.empty():
            self.said.append(self.lines.get())
        return self.process.returncode, out, "".join(self.said)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_wait_for_checks_downloads_once_the_last_approval_lands(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["approval", "--approver", "user:bob", "--approver", "user:carol",
                                     "--min-approvals", "2"])
    run = _start(system, pipeline)
    agent = WaitingAgent(system, run["jobToken"], name, "--dest", str(tmp_path), "--wait-for-checks", "2min")
    try:
        requested = system.cli("runs", "request", name, "--run", run["run"]["name"], "--output", "json")
        approval_id = str(requested.json()[0]["results"][0]["approvalId"])
        agent.wait_for_line("waiting for 2 more approval(s)")  # it asked, and it waits
        assert agent.process.poll() is None
        assert system.cli("approvals", "approve", approval_id, env=_as(system, "user:bob")).code == 0
        agent.wait_for_line("waiting for 1 more approval(s)")  # it saw bob's approval, and waits on
        assert agent.process.poll() is None
        assert not (tmp_path / name).exists()
        assert system.cli("approvals", "approve", approval_id, env=_as(system, "user:carol")).code == 0
        code, out, err = agent.finish()
    finally:
        agent.kill()
    assert code == 0, err
    assert out.strip() == str(tmp_path / name)
    assert (tmp_path / name).read_bytes() == b"guarded by checks"


def test_wait_for_checks_gives_up_with_exit_4(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["approval", "--approver", "user:bob"])
    run = _start(system, pipeline)
    result = system.cli("agent", "download", name, "--dest", str(tmp_path), "--wait-for-checks", "2s",
                        env={"SECUREFILES_JOB_TOKEN": run["jobToken"]})
    assert result.code == 4


def test_exclusive_lock_released_by_completing_the_run(system: LocalSystem, tmp_path) -> None:
    name, pipeline = _setup(system, ["exclusive-lock"])
    first, second = _start(system, pipeline), _start(system, pipeline)
    assert system.cli("agent", "download", name, "--dest", str(tmp_path / "a"),
                      env={"SECUREFILES_JOB_TOKEN": first["jobToken"]}).code == 0
    waiting = system.cli("agent", "download", name, "--dest", str(tmp_path / "b"),
                         env={"SECUREFILES_JOB_TOKEN": second["jobToken"]})
    assert waiting.code == 4 and "exclusive-lock" in waiting.stderr
    agent = WaitingAgent(system, second["jobToken"], name, "--dest", str(tmp_path / "b"), "--wait-for-checks", "1min")
    try:
        agent.wait_for_line("exclusive-lock")  # it waits for the lock
        assert agent.process.poll() is None
        assert system.cli("runs", "complete", first["run"]["name"]).code == 0
        code, out, err = agent.finish()
    finally:
        agent.kill()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "b" / name)
    assert (tmp_path / "b" / name).read_bytes() == b"guarded by checks"


def test_deleting_a_file_withdraws_its_approvals_and_policies(system: LocalSystem) -> None:
    """A deleted file's pending approvals no longer ask anyone, and authz keeps nothing of it."""
    name, pipeline = _setup(system, ["approval", "--approver", "user:bob"], ["exclusive-lock"])
    run = _start(system, pipeline)
    requested = system.cli("runs", "request", name, "--output", "json", env={"SECUREFILES_JOB_TOKEN": run["jobToken"]})
    assert requested.code == 0, requested.stderr
    approval_id = requested.json()[0]["results"][0]["approvalId"]

    def pending_ids() -> list[int]:
        listed = system.cli("approvals", "list", "--pending", "--output", "json", env=_as(system, "user:bob"))
        return [a["approvalId"] for a in listed.json()]

    assert approval_id in pending_ids()
    with system.client() as admin:
        resource = admin.get_file(name).name
        assert system.cli("files", "delete", name, "--yes").code == 0
    assert approval_id not in pending_ids()
    for table, column in (("role_assignments", "scope"), ("pipeline_permissions", "resource"), ("checks", "resource"),
                          ("check_suites", "resource"), ("approvals", "resource")):
        assert system.query("authz", f"SELECT count(*) FROM {table} WHERE {column} = :r", r=resource) == [(0,)], table
    events = system.cli("audit", "list", "--service", "authz", "--output", "json").json()
    assert any(e["action"] == "PurgeResourcePolicies" and e["resource"] == resource and e["decision"] == "ALLOW"
               for e in events)
