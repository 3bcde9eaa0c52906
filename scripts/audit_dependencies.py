"""`make lint` step: pip-audit the pinned lock file; tolerate an unreachable advisory database.

Fails on any known vulnerability. When the advisory service cannot be reached (an offline
machine), says so in one loud line instead of pretending the dependencies were audited.
"""

from __future__ import annotations

import json
import subprocess
import sys

LOCK = "requirements/dev.lock"


def main() -> int:
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", LOCK, "--disable-pip", "--require-hashes", "--format", "json",
         "--progress-spinner", "off"],
        capture_output=True, text=True, check=False,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print("pip-audit: ADVISORY DATABASE UNREACHABLE — dependencies were NOT audited "
              f"({(result.stderr.strip().splitlines() or ['no output'])[-1][:200]})")
        return 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    for dependency in vulnerable:
        ids = ", ".join(v.get("id", "?") for v in dependency["vulns"])
        print(f"pip-audit: {dependency['name']} {dependency['version']} is vulnerable: {ids}")
    if vulnerable:
        return 1
    if not audited:
        print(f"pip-audit: ADVISORY DATABASE UNREACHABLE — none of {len(dependencies)} pinned dependencies "
              "could be audited")
        return 0
    print(f"pip-audit: {len(audited)} pinned dependencies audited, no known vulnerability "
          f"({len(dependencies) - len(audited)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
