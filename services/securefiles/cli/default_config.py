"""The default client config link (`~/.config/securefiles/client.toml`), shared by every
checkout on the machine: `securefiles up` takes it only when it is free or already its own."""

from __future__ import annotations

import os
from pathlib import Path

from securefiles.client.config import default_config_path


def point_default_config(target: Path, link: Path | None = None) -> str:
    """Point the default config at `target` if nothing else holds it; say what happened."""
    link = link or default_config_path()
    shown = _home_relative(link)
    if link.is_symlink():
        current = Path(os.readlink(link))
        current = current if current.is_absolute() else link.parent / current
        if _same(current, target):
            return f"{shown} already points here"
        if current.exists():
            return (f"{shown} points at another instance ({current}): left alone. "
                    f"To use this one: export SECUREFILES_CONFIG={target}")
        _link(link, target)
        return f"{shown} pointed at {current}, which no longer exists: it points here now"
    if link.exists():
        return (f"{shown} is a file of its own: left alone. "
                f"To use this instance: export SECUREFILES_CONFIG={target}")
    _link(link, target)
    return f"{shown} now points here"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _home_relative(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)
