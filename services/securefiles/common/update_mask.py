"""Update masks (AIP-134, AIP-161): `*` replaces every updatable field, and a map field takes
sub-paths (`properties.k2`, or properties.`a.b` for keys that are not identifiers) that set or
remove one key. One reading for every Update RPC."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from securefiles.common.errors import InvalidArgument

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|`[^`]+`")


@dataclass(frozen=True)
class Mask:
    """The fields to replace whole, and per map field the keys to set or remove."""

    fields: frozenset[str]
    map_keys: dict[str, frozenset[str]] = field(default_factory=dict)


def read_mask(paths: Iterable[str], updatable: Collection[str], maps: Collection[str] = ()) -> Mask:
    """`paths` as a Mask; INVALID_UPDATE_MASK for a field that cannot be updated, `*` with anything
    else, or a map both replaced and changed by key."""
    paths = list(paths)
    if "*" in paths:
        if len(paths) > 1:
            raise invalid("'*' replaces every updatable field and stands alone")
        return Mask(frozenset(updatable))
    fields: set[str] = set()
    map_keys: dict[str, set[str]] = {}
    for path in paths:
        head, dot, rest = path.partition(".")
        if dot and head in maps and _KEY.fullmatch(rest):
            map_keys.setdefault(head, set()).add(rest.strip("`"))
        elif path in updatable:
            fields.add(path)
        else:
            raise invalid(f"cannot update {path!r}; updatable: {', '.join(sorted(updatable))}"
                          + (f", {', '.join(f'{m}.KEY' for m in sorted(maps))}" if maps else "") + " or '*'")
    if both := fields & map_keys.keys():
        raise invalid(f"{', '.join(sorted(both))} is replaced whole and changed by key at once")
    return Mask(frozenset(fields), {name: frozenset(keys) for name, keys in map_keys.items()})


def invalid(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid update_mask: {why}", reason="INVALID_UPDATE_MASK")
