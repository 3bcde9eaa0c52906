"""File names the agent keeps for its own bookkeeping in a download directory.

Storage refuses them as secure file names and the agent never writes a downloaded file under one,
so a secure file can never be taken for the agent's record of what it downloaded (or its partial
files), whatever the server sends.
"""

from __future__ import annotations

AGENT_PREFIX = ".securefiles-"


def is_reserved_name(name: str) -> bool:
    """Whether `name` belongs to the agent's bookkeeping (`.securefiles-…`, any case)."""
    return name.lower().startswith(AGENT_PREFIX)
