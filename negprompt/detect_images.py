"""The images `negprompt detect` is applied to: folders (recursive) and files, with unreadable ones
listed by reason instead of stopping the run.

Every input becomes one :class:`~negprompt.data.ImageSet` of unlabelled images (label ``-1``) rooted
at the folder (or at a file's folder). A file that is not an image Pillow can open is left out with
its reason before any feature is computed; an image whose header opens but whose pixels cannot be
decoded is left out by the feature extraction and reported here with the reason "cannot be decoded".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from negprompt.data.folders import scan_images
from negprompt.data.imageset import IMAGE_EXTS, ImageSet

UNDECODABLE = "damaged: the pixels cannot be decoded"


@dataclass
class ImageInputs:
    """The readable images of the inputs, one set per input, and the files left out.

    Attributes:
        sets: one :class:`ImageSet` per input that holds at least one image (labels ``-1``).
        skipped: ``{reason: [absolute paths]}`` of the files left out.
    """

    sets: list[ImageSet]
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str | os.PathLike) -> None:
        self.skipped.setdefault(reason, []).append(str(path))

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def skipped_summary(self, show: int = 3) -> str:
        """``N images skipped: k not an image (a, b, …); …`` ('' when none was skipped)."""
        if not self.skipped:
            return ""
        parts = []
        for reason, paths in sorted(self.skipped.items(), key=lambda kv: -len(kv[1])):
            more = f", … {len(paths) - show} more" if len(paths) > show else ""
            parts.append(f"  {len(paths)} {reason}: {', '.join(paths[:show])}{more}")
        return f"{self.n_skipped} image(s) skipped:\n" + "\n".join(parts)


def unreadable_reason(path: str | os.PathLike) -> str | None:
    """Why Pillow cannot open the image file ``path`` (its header only), or None when it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as im:
            im.size  # noqa: B018 (the header is parsed on open)
    except FileNotFoundError:
        return "missing (removed while being listed?)"
    except PermissionError:
        return "not readable (permission denied)"
    except IsADirectoryError:
        return "a folder named like an image"
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except Image.DecompressionBombError:
        return "too many pixels (Pillow's decompression-bomb limit)"
    except (OSError, SyntaxError, ValueError):
        return "damaged: the header cannot be read"
    return None


def collect_images(
    inputs: Sequence[str | os.PathLike], extensions: Iterable[str] = IMAGE_EXTS
) -> ImageInputs:
    """The images of ``inputs`` (folders, searched recursively, or image files), checked readable.

    Each folder is one set named after it (a number is appended when two names clash); the image
    files given directly form one set per folder they lie in.

    Raises:
        FileNotFoundError: an input does not exist (the message names it).
    """
    exts = frozenset(e.lower() for e in extensions)
    result = ImageInputs(sets=[])
    loose: dict[Path, list[str]] = {}
    groups: list[tuple[Path, list[str]]] = []
    for item in inputs:
        path = Path(os.path.abspath(os.path.expanduser(item)))
        if path.is_dir():
            paths, _ignored = scan_images(path, exts)
            groups.append((path, paths))
        elif path.is_file():
            loose.setdefault(path.parent, []).append(path.name)
        else:
            raise FileNotFoundError(f"--images {item}: no such file or folder")
    groups += [(folder, sorted(set(names))) for folder, names in loose.items()]
    used: set[str] = set()
    for root, paths in groups:
        good = []
        for rel in paths:
            reason = unreadable_reason(root / rel)
            if reason is None:
                good.append(rel)
            else:
                result.skip(reason, root / rel)
        if not good:
            continue
        name, k = root.name or str(root), 1
        while name in used:
            k += 1
            name = f"{root.name}-{k}"
        used.add(name)
        result.sets.append(ImageSet(name, root, good, [-1] * len(good)))
    return result
