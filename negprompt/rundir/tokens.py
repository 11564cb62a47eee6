"""The structure of ``context_tokens.json``: nearest vocabulary tokens of each learned context vector.

::

    {method: {"positive": [[{"token": str, "similarity": number}, ...] per context vector],
              "negative": [[[{"token": ..., "similarity": ...}, ...] per vector] per negative set]}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from negprompt.rundir.schema import RunDirError


def _check_vectors(vectors: object, where: str) -> None:
    if not isinstance(vectors, list):
        raise RunDirError(
            f"{where} must be a list (one entry per context vector), got {type(vectors).__name__}"
        )
    for v, tokens in enumerate(vectors):
        if not isinstance(tokens, list):
            raise RunDirError(f"{where}[{v}] must be a list of {{token, similarity}} objects")
        for t in tokens:
            ok = (
                isinstance(t, Mapping)
                and isinstance(t.get("token"), str)
                and isinstance(t.get("similarity", 0.0), int | float)
                and not isinstance(t.get("similarity", 0.0), bool)
                and math.isfinite(t.get("similarity", 0.0))
            )
            if not ok:
                raise RunDirError(
                    f"{where}[{v}] holds {str(t)[:60]!r}; each entry is {{'token': text, 'similarity': number}}"
                )


def check_context_tokens(tokens: object) -> None:
    """Raise `RunDirError` (rule ``"structure"``) unless ``tokens`` has the structure above."""
    try:
        if not isinstance(tokens, Mapping):
            raise RunDirError(f"the file must hold a JSON object {{method: …}}, got {type(tokens).__name__}")
        for method, entry in tokens.items():
            if not isinstance(entry, Mapping):
                raise RunDirError(f"[{method!r}] must be an object with 'positive' and 'negative' lists")
            _check_vectors(entry.get("positive") or [], f"[{method!r}]['positive']")
            negative = entry.get("negative") or []
            if not isinstance(negative, list):
                raise RunDirError(f"[{method!r}]['negative'] must be a list (one entry per negative set)")
            for m, vectors in enumerate(negative):
                _check_vectors(vectors, f"[{method!r}]['negative'][{m}]")
    except RunDirError as err:
        raise RunDirError(str(err), rule="structure") from None
