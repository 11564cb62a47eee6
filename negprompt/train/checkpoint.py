"""Training checkpoints: written atomically after every epoch, checked before a run resumes.

A checkpoint (``<folder>/checkpoint.pt``, read with ``torch.load(weights_only=True)``) holds the
contexts, the best contexts so far, the optimizer and scheduler states, the training generator's
state, the number of finished epochs, the per-epoch history, the configuration, the prompt
configuration, the class names and the backbone's identity.

The file starts with one header line, ``negprompt-checkpoint sha256=<hex>``, the SHA-256 of the
`torch.save` payload that follows; `load_checkpoint` verifies it before unpickling anything, so a
flipped bit or a partly copied file is refused with the file named and the way to start the stage
again, never resumed with other weights. A checkpoint without the header (written before checksums)
is still read.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from negprompt.io import atomic_write, clean_stale_temps

from .config import RESUME_FREE, config_differences

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
HEADER = b"negprompt-checkpoint sha256="
"""Start of a checkpoint's first line; the hex digest of the payload and a line break follow."""


class ResumeError(ValueError):
    """A checkpoint that does not belong to the run being resumed."""


def checkpoint_path(folder: str | os.PathLike) -> Path:
    """The checkpoint file inside a checkpoint folder."""
    return Path(folder) / CHECKPOINT_NAME


def save_checkpoint(folder: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``<folder>/checkpoint.pt`` atomically (temporary file, fsync, ``os.replace``).

    Temporary files left in ``folder`` by a killed run are removed first.
    """
    path = checkpoint_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent)

    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    payload = buffer.getvalue()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(HEADER + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            fh.write(payload)

    return atomic_write(path, write, fsync=True)


def load_checkpoint(folder: str | os.PathLike) -> dict | None:
    """The checkpoint in ``folder``, or None when there is none."""
    path = checkpoint_path(folder)
    if not path.is_file():
        return None
    payload = _verified_payload(path)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ResumeError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc})") from exc
    if state.get("format") != FORMAT:
        raise ResumeError(
            f"checkpoint {path} has format {state.get('format')!r}; this version reads {FORMAT}"
        )
    return state


def _verified_payload(path: Path) -> bytes:
    """The payload of a checkpoint file after its checksum is verified (see the module docstring)."""
    data = path.read_bytes()
    if not data.startswith(HEADER):
        return data  # written before checksums
    line, _, payload = data.partition(b"\n")
    expected = line[len(HEADER) :].decode("ascii", errors="replace")
    if hashlib.sha256(payload).hexdigest() != expected:
        raise ResumeError(
            f"checkpoint {path} is damaged: its SHA-256 does not match the checksum it was written with "
            "(a flipped bit, or a partly copied file), so it is not resumed. To start this stage again, "
            f"delete {path} and run the same command again (with or without --resume)."
        )
    return payload


def check_resumable(
    state: dict,
    folder: str | os.PathLike,
    *,
    config: dict,
    prompt_config: dict,
    backbone_identity: dict,
    class_names: list[str],
    pos_ctx: torch.Tensor | None = None,
) -> None:
    """Raise :class:`ResumeError` naming every difference between the checkpoint and this run.

    Args:
        pos_ctx: stage 2: the frozen positive context the run starts from; it must equal the
            checkpoint's (the negatives were learned against it).
    """
    where = checkpoint_path(folder)
    problems = []
    problems += [f"config {d}" for d in config_differences(state["config"], config, RESUME_FREE)]
    problems += [f"prompt config {d}" for d in config_differences(state["prompt_config"], prompt_config, ())]
    problems += [
        f"backbone {d}" for d in config_differences(state["backbone_identity"], backbone_identity, ())
    ]
    if list(state["class_names"]) != list(class_names):
        saved, now = list(state["class_names"]), list(class_names)
        if len(saved) != len(now):
            problems.append(f"class names: {len(saved)} classes in the checkpoint, {len(now)} now")
        else:
            i = next(i for i, (a, b) in enumerate(zip(saved, now)) if a != b)
            problems.append(f"class names: class {i} is {saved[i]!r} in the checkpoint, {now[i]!r} now")
    if pos_ctx is not None and not torch.equal(state["pos_ctx"], pos_ctx.detach().cpu()):
        problems.append(
            "positive context: the stage-2 run starts from other positive contexts than the checkpoint"
        )
    if problems:
        raise ResumeError(
            f"cannot resume from {where}: it was written by a different run ("
            + "; ".join(problems)
            + "). Resume with the same settings, or start afresh in another folder."
        )
