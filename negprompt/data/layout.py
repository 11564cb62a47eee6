"""Expected folder layouts as ASCII trees, and errors that show them.

When a dataset is missing, the error names the deepest folder that exists, the first part that does
not, and prints the whole expected tree with that part marked, so the fix is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOCS_HINT = "See docs/datasets.md for the supported layouts."


@dataclass(frozen=True)
class Node:
    """One entry of an expected layout: a folder (with children) or a file, with an optional note."""

    name: str
    children: tuple[Node, ...] = ()
    note: str = ""
    is_dir: bool = True


def render_tree(root_label: str, nodes: tuple[Node, ...], mark: tuple[str, ...] = ()) -> str:
    """Render ``nodes`` under ``root_label`` as an ASCII tree.

    Args:
        mark: names along a path from the root (``("ImageNet1k", "ILSVRC")``); the node at its end
            is flagged ``<-- missing``.
    """
    lines = [root_label.rstrip("/") + "/"]

    def walk(children: tuple[Node, ...], prefix: str, path: tuple[str, ...]) -> None:
        for i, node in enumerate(children):
            last = i == len(children) - 1
            here = (*path, node.name)
            label = node.name + ("/" if node.is_dir and not node.name.startswith("…") else "")
            text = f"{prefix}{'└── ' if last else '├── '}{label}"
            notes = [node.note] if node.note else []
            if mark and here == mark:
                notes.insert(0, "<-- missing")
            if notes:
                text = f"{text:<46}  " + "  ".join(notes)
            lines.append(text.rstrip())
            walk(node.children, prefix + ("    " if last else "│   "), here)

    walk(nodes, "", ())
    return "\n".join(lines)


def first_missing(base: Path, parts: tuple[str, ...]) -> tuple[Path, tuple[str, ...]]:
    """The deepest existing folder along ``base/parts[0]/parts[1]/…`` and the parts up to the first missing one.

    Returns ``(deepest_existing, parts_to_first_missing)``; the second item is empty when the whole
    path exists.
    """
    current = base
    if not base.is_dir():
        return base, ()
    for i, part in enumerate(parts):
        nxt = current / part
        if not nxt.exists():
            return current, parts[: i + 1]
        current = nxt
    return current, ()


class LayoutError(FileNotFoundError):
    """A dataset's folder or file is missing; the message shows the expected layout."""


def layout_error(
    what: str,
    base: Path,
    parts: tuple[str, ...],
    nodes: tuple[Node, ...],
    *,
    base_label: str = "data_root",
    extra: str = "",
) -> LayoutError:
    """Build a `LayoutError` for ``base/parts…`` with the expected tree and the absent part marked."""
    existing, missing = first_missing(base, parts)
    target = base.joinpath(*parts)
    if not base.is_dir():
        where = f"the {base_label} folder '{base}' does not exist."
    else:
        where = (
            f"'{target}' does not exist: '{existing}' exists but has no '{missing[-1]}'."
            if missing
            else f"'{target}' exists but is incomplete."
        )
    tree = render_tree(f"{base_label} = {base}", nodes, mark=missing)
    msg = f"{what} not found: {where}\nExpected layout:\n{tree}\n"
    if extra:
        msg += extra.rstrip() + "\n"
    return LayoutError(msg + DOCS_HINT)
