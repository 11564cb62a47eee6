"""Image folders: class sub-folders (ImageFolder layout) or flat / nested folders of OOD images.

Scanning uses ``os.scandir`` (one ``getdents`` per folder, file type from the directory entry), so
listing ImageNet's 1.3 M training images takes seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from .imageset import IMAGE_EXTS, ImageSet
from .layout import DOCS_HINT, LayoutError, Node, layout_error, render_tree

log = logging.getLogger(__name__)

OOD_SETS: tuple[str, ...] = ("iNaturalist", "SUN", "Places", "dtd")
"""The conventional OOD sets of MOS / MCM (``dtd`` is the Textures set)."""

OOD_EXPECTED_COUNTS: dict[str, int] = {"iNaturalist": 10000, "SUN": 10000, "Places": 10000, "dtd": 5640}


def split_entries(path: str, exts: Collection[str]) -> tuple[list[str], list[str], int]:
    """(sorted sub-folder names, sorted image file names, number of ignored non-image files) of ``path``."""
    dirs: list[str] = []
    files: list[str] = []
    ignored = 0
    with os.scandir(path) as it:
        for e in it:
            name = e.name
            if name.startswith("."):
                continue
            if e.is_dir():
                dirs.append(name)
            elif os.path.splitext(name)[1].lower() in exts:
                files.append(name)
            else:
                ignored += 1
    dirs.sort()
    files.sort()
    return dirs, files, ignored


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def scan_images(
    folder: str | os.PathLike,
    exts: Collection[str] = IMAGE_EXTS,
    prefix: str = "",
    avoid: Collection[tuple[int, int]] = (),
) -> tuple[list[str], int]:
    """All image files under ``folder``, recursively, as sorted POSIX paths relative to it.

    Hidden entries (names starting with ``.``) are skipped. Returns ``(paths, ignored)``, where
    ``ignored`` counts non-image files. ``prefix`` is prepended to every returned path. A folder is
    listed once even when symlinks reach it again (a link to a parent is a loop, not 40 levels of
    copies), with a warning naming the link; so is a folder in ``avoid`` (``(st_dev, st_ino)``
    pairs: the other class folders of a set), except ``folder`` itself.
    """
    out: list[str] = []
    ignored = 0
    seen: set[tuple[int, int]] = set(avoid)
    start = os.fspath(folder)
    stack = [(start, prefix)]
    while stack:
        path, rel = stack.pop()
        key = _identity(path)
        if key is None:
            log.warning("skipping %s: it cannot be read (a broken or looping link?)", path)
            continue
        if key in seen and path != start:
            log.warning(
                "skipping %s: it links to a folder already listed (a symlink loop or duplicate)", path
            )
            continue
        seen.add(key)
        dirs, files, n_ign = split_entries(path, exts)
        ignored += n_ign
        out.extend(rel + f for f in files)
        for d in reversed(dirs):
            stack.append((os.path.join(path, d), f"{rel}{d}/"))
    out.sort()
    return out, ignored


def _folder_tree(root_label: str, classes: bool) -> str:
    if classes:
        nodes = (
            Node("<class_a>", (Node("img001.jpg", is_dir=False), Node("…", is_dir=False))),
            Node("<class_b>", (Node("…", is_dir=False),)),
        )
    else:
        nodes = (
            Node("img001.jpg", is_dir=False),
            Node(
                "<any sub-folder>", (Node("img002.png", is_dir=False),), note="(nested folders are searched)"
            ),
        )
    return render_tree(root_label, nodes)


def image_folder(
    root: str | os.PathLike,
    name: str | None = None,
    *,
    class_names: Mapping[str, str] | Sequence[str] | None = None,
    ood: bool = False,
    extensions: Collection[str] = IMAGE_EXTS,
) -> ImageSet:
    """List an image folder as an `ImageSet`.

    Two layouts are understood:

    * class sub-folders ``root/<class>/…``: one class per sub-folder, sorted by folder name; the
      label is the folder's position. Images inside a class folder are found recursively.
    * a flat (or nested, with ``ood=True``) folder of images: every label is ``-1`` (an OOD set).

    Args:
        root: the folder.
        name: set name; defaults to the folder's name.
        class_names: either a sequence with one display name per sorted class folder, or a mapping
            folder name -> display name whose order is the label order (folders not in it are skipped).
        ood: take every image below ``root`` recursively as OOD (labels -1), ignoring sub-folders.
        extensions: file extensions that count as images (others are ignored and counted in the log).

    Raises:
        FileNotFoundError: ``root`` (or a mapped class folder) does not exist.
        ValueError: the folder holds no images, a class folder holds no images, images lie beside
            class folders, or ``class_names`` does not fit the folders.
    """
    root_p = Path(os.path.abspath(os.path.expanduser(root)))
    name = root_p.name if name is None else name
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    if root_p.exists() and not root_p.is_dir():
        raise NotADirectoryError(
            f"Image folder {name!r}: '{root_p}' is a file, not a folder; give the folder that holds the images"
        )
    if not root_p.is_dir():
        existing = next(p for p in root_p.parents if p.is_dir())
        what = "a folder of images" if ood else "class sub-folders (or a flat folder of images)"
        raise LayoutError(
            f"Image folder {name!r} not found: '{root_p}' does not exist (the deepest existing folder "
            f"is '{existing}').\nExpected {what}:\n{_folder_tree(str(root_p), classes=not ood)}\n{DOCS_HINT}"
        )
    if ood:
        paths, ignored = scan_images(root_p, exts)
        _log_ignored(name, ignored)
        if not paths:
            raise ValueError(
                f"Image folder {name!r} at '{root_p}' holds no images (extensions {sorted(exts)}). "
                f"Expected:\n{_folder_tree(str(root_p), classes=False)}\n{DOCS_HINT}"
            )
        return ImageSet(name, root_p, paths, [-1] * len(paths))

    dirs, files, ignored = split_entries(os.fspath(root_p), exts)
    if not dirs:
        if not files:
            raise ValueError(
                f"Image folder {name!r} at '{root_p}' is empty: no class sub-folders and no images. "
                f"Expected one of:\n{_folder_tree(str(root_p), True)}\n{_folder_tree(str(root_p), False)}\n{DOCS_HINT}"
            )
        if class_names:
            raise ValueError(
                f"Image folder {name!r} at '{root_p}' has no class sub-folders, but class_names were given."
            )
        _log_ignored(name, ignored)
        return ImageSet(name, root_p, files, [-1] * len(files))
    if files:
        raise ValueError(
            f"Image folder {name!r} at '{root_p}' mixes class sub-folders with {len(files)} loose images "
            f"(e.g. {files[0]!r}); move the images into class folders; or, if this is an OOD set, give "
            "it as one (--ood-dir on the command line, ood=True in Python) to take all images as OOD."
        )
    folders, display = _resolve_classes(root_p, name, dirs, class_names)
    _refuse_linked_classes(root_p, name, folders)
    paths: list[str] = []
    labels: list[int] = []
    # a link inside one class folder to the root or to another class is not followed (no image twice)
    tops = {_identity(root_p), *(_identity(root_p / f) for f in folders)} - {None}
    for label, folder in enumerate(folders):
        found, n_ign = scan_images(root_p / folder, exts, prefix=f"{folder}/", avoid=tops)
        ignored += n_ign
        if not found:
            raise ValueError(
                f"Class folder '{folder}' of image folder {name!r} ('{root_p / folder}') holds no images "
                f"(extensions {sorted(exts)}); add images or remove the folder."
            )
        paths.extend(found)
        labels.extend([label] * len(found))
    _log_ignored(name, ignored)
    return ImageSet(name, root_p, paths, labels, tuple(display))


def _refuse_linked_classes(root: Path, name: str, folders: list[str]) -> None:
    """Two class folders that are one folder (a symlink to another class): its images would count twice."""
    seen: dict[tuple[int, int], str] = {}
    for folder in folders:
        key = _identity(root / folder)
        if key is not None and key in seen:
            raise ValueError(
                f"Class folder '{folder}' of image folder {name!r} is a link to class folder '{seen[key]}' "
                f"('{root / folder}'): its images would count under two labels. Remove the link, or copy "
                "the images if both classes are meant."
            )
        if key is not None:
            seen[key] = folder


def _resolve_classes(
    root: Path, name: str, dirs: list[str], class_names: Mapping[str, str] | Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """(class folders in label order, display names) for a class-folder layout."""
    if class_names is None:
        return dirs, list(dirs)
    if isinstance(class_names, Mapping):
        missing = [f for f in class_names if f not in dirs]
        if missing:
            raise layout_error(
                f"Class folder(s) {missing[:5]} of image folder {name!r}",
                root,
                (missing[0],),
                tuple(Node(f) for f in class_names),
                base_label="root",
                extra=f"Existing class folders: {dirs[:10]}{' …' if len(dirs) > 10 else ''}",
            )
        others = [d for d in dirs if d not in class_names]
        if others:  # information, not a problem: a benchmark may use some of a folder's classes
            log.info(
                "image folder %r: using %d of its %d class folders; the other %d (%s) are not ID classes "
                "of this run (expected where a benchmark holds classes out, e.g. the demo and mini presets)",
                name, len(class_names), len(dirs), len(others), ", ".join(others[:6]) + (" …" if len(others) > 6 else ""),
            )  # fmt: skip
        return list(class_names), [str(v) for v in class_names.values()]
    if isinstance(class_names, str):
        raise TypeError("class_names must be a sequence of names or a mapping folder -> name, not a string")
    names = list(class_names)
    if len(names) != len(dirs):
        raise ValueError(
            f"Image folder {name!r} has {len(dirs)} class folders but {len(names)} class_names were given; "
            "give one name per sorted folder, or a mapping folder -> name."
        )
    return dirs, [str(n) for n in names]


def _log_ignored(name: str, ignored: int) -> None:
    if ignored:
        log.debug("image folder %r: ignored %d non-image files", name, ignored)


def ood_folder(data_root: str | os.PathLike, name: str) -> ImageSet:
    """An OOD set stored as ``data_root/<name>/images``: every image below it, recursively.

    When ``images/`` holds only class folders, each with images (Textures: 47 of them), the images
    keep their folder as their OOD class (labels among the folder names, underscores shown as
    spaces), so results can be broken down per OOD class; otherwise every label is -1.

    The conventional sets are ``iNaturalist``, ``SUN``, ``Places`` and ``dtd`` (Textures; also
    accepted as ``"Textures"``); names match case-insensitively. Any other name is looked up the
    same way, so a custom OOD set only needs ``data_root/<name>/images``.
    """
    root = Path(os.path.abspath(os.path.expanduser(data_root)))
    canonical = {n.lower(): n for n in OOD_SETS} | {"textures": "dtd"}
    folder = canonical.get(name.lower(), name)
    nodes = tuple(Node(n, (Node("images", (Node("…", is_dir=False),), note=_ood_note(n)),)) for n in OOD_SETS)
    if folder not in OOD_SETS:
        nodes = (*nodes, Node(folder, (Node("images", (Node("…", is_dir=False),)),)))
    if not (root / folder / "images").is_dir():
        raise layout_error(
            f"OOD set {name!r}",
            root,
            (folder, "images"),
            nodes,
            extra=f"Known OOD sets: {', '.join(OOD_SETS)} (any other name works with the same layout).",
        )
    images = root / folder / "images"
    dirs, files, _ = split_entries(os.fspath(images), IMAGE_EXTS)
    try:
        imgs = image_folder(images, name=folder) if dirs and not files else None
    except ValueError as err:  # e.g. an empty class folder: the classes are a bonus, not a must
        log.info("OOD set %r: class folders not used (%s); every image is unlabelled", folder, err)
        imgs = None
    if imgs is None:
        imgs = image_folder(images, name=folder, ood=True)
    else:
        imgs = replace(imgs, class_names=tuple(c.replace("_", " ") for c in imgs.class_names))
    expected = OOD_EXPECTED_COUNTS.get(folder)
    if expected is not None and len(imgs) != expected:
        log.warning("OOD set %r has %d images; the usual MOS subset has %d", folder, len(imgs), expected)
    return imgs


def _ood_note(name: str) -> str:
    return {
        "iNaturalist": "10,000 images (MOS subset)",
        "SUN": "10,000 images",
        "Places": "10,000 images",
        "dtd": "5,640 images in 47 class folders (Textures)",
    }[name]
