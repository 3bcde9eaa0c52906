"""The one rule for generated blocks in documents: the text between a begin and an end marker is
replaced, everything around it is kept."""


def replaced(document: str, generated: str, begin_marker: str, end_marker: str) -> str:
    before, begin, rest = document.partition(begin_marker)
    _old, end, after = rest.partition(end_marker)
    if not begin or not end:
        raise SystemExit(f"the document has no {begin_marker} ... {end_marker} block")
    return f"{before}{begin_marker}\n{generated}\n{end_marker}{after}"
