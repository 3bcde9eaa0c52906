"""How a request points at a secure file: by its id-based name, or (where a method says so) by
its display name in a project."""

from __future__ import annotations

from dataclasses import dataclass

from securefiles.common.errors import InvalidArgument
from securefiles.common.resource_names import is_file_id, parse_child, parse_project
from securefiles.storage.domain.names import normalize_name


@dataclass(frozen=True)
class FileRef:
    """A file asked for: `file_id` from a name, or `display_name` from an explicit lookup."""

    project: str
    file_id: str = ""
    display_name: str = ""

    @property
    def shown(self) -> str:
        """What the caller gave, for messages (repr-escaped where shown)."""
        return self.file_id or self.display_name


def by_name(name: str) -> FileRef:
    """`projects/{p}/secureFiles/{id}`; the id is checked by `require_id` once the project may be told."""
    project, file_id = parse_child(name, "secureFiles")
    return FileRef(project, file_id=file_id)


def by_display_name(parent: str, display_name: str) -> FileRef:
    """A lookup by display name in `parent` (`projects/{p}`), where a method accepts one."""
    if not display_name:
        raise InvalidArgument("give the file's name, or parent and display_name", reason="INVALID_RESOURCE_NAME")
    return FileRef(parse_project(parent), display_name=normalize_name(display_name))


def one_file(name: str, parent: str, display_name: str) -> FileRef:
    """A download's file: by `name`, or by `parent` + `display_name`, never both."""
    if name and (parent or display_name):
        raise InvalidArgument("give the file's name, or parent and display_name, not both",
                              reason="INVALID_RESOURCE_NAME")
    return by_name(name) if name else by_display_name(parent, display_name)


def well_formed(ref: FileRef) -> bool:
    """A lookup by display name, or a name whose last segment is an id as storage assigns them."""
    return bool(ref.display_name) or is_file_id(ref.file_id)


def require_id(ref: FileRef) -> None:
    """A name's last segment is the id storage assigned; a display name there is refused (AIP-122:
    names stay stable across a rename)."""
    if well_formed(ref):
        return
    shown = ref.file_id if len(ref.file_id) <= 80 else ref.file_id[:77] + "..."
    raise InvalidArgument(
        f"a secure file is named by its id (projects/{ref.project}/secureFiles/{{id}}), not by its display name "
        f"{shown!r}: look it up with the filter display_name = \"...\"", reason="INVALID_RESOURCE_NAME")
