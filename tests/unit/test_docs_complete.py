"""README.md stays complete: every reason code and every setting the code reads is documented."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services" / "securefiles"
README = (REPO / "README.md").read_text()
SETTING_READERS = {"env_str", "env_int", "env_bool", "env_optional"}


def test_the_reason_code_table_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "reason_codes.py"), "--check",
                             str(REPO / "README.md")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "| `PROJECT_NOT_FOUND` | NOT_FOUND | 5 |" in README


def _service_settings() -> set[str]:
    """Every SECUREFILES_* variable the services read (through common/config.py)."""
    names = set()
    for path in SERVICES.rglob("*.py"):
        if "_pb2" in path.name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SETTING_READERS
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
                names.add(node.args[1].value)
            if (isinstance(node, ast.BinOp) and isinstance(node.left, ast.Name) and node.left.id == "PREFIX"
                    and isinstance(node.right, ast.Constant)):
                names.add(node.right.value)
    return names


def test_every_setting_a_service_reads_is_in_the_readme() -> None:
    settings = _service_settings()
    assert {"AUDIT_KEY", "REQUESTS_PER_SECOND", "INTERNAL_LISTEN", "LISTEN"} <= settings  # the scan works
    documented = set(re.findall(r"SECUREFILES_([A-Z0-9_]+)", README))
    missing = {name for name in settings if name not in documented and f"{name}_FILE" not in documented}
    assert not missing, f"README.md does not document SECUREFILES_{', SECUREFILES_'.join(sorted(missing))}"


def test_every_variable_the_client_reads_is_in_the_readme() -> None:
    source = "".join((SERVICES / "client" / name).read_text() for name in ("config.py", "api.py", "job_identity.py"))
    variables = set(re.findall(r'"SECUREFILES_([A-Z_]+)"', source))
    variables |= set(re.findall(r'\("\w+", "([A-Z_]+)"\)', source))  # ("storage", "STORAGE_ENDPOINT"), ...
    assert {"CONFIG", "TOKEN", "JOB_TOKEN", "OIDC_TOKEN", "AUDIENCE", "STORAGE_ENDPOINT", "CA_FILE"} <= variables
    documented = set(re.findall(r"SECUREFILES_([A-Z0-9_]+)", README))
    assert variables <= documented, variables - documented
