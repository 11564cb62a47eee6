"""Console output that suits a notebook: text progress bars, one per stage, and readable log lines.

In a terminal the package shows a progress bar per training epoch and per feature set (tqdm) and
logs at INFO. In a notebook that turns into dozens of outputs per cell, ipywidgets bars that show
"Error displaying widget: model not found" once the notebook is saved and reopened, and INFO lines
drawn in the error colour. `notebook_output` switches the package to plain-text bars (one per
training stage, one per feature set), written to stdout, and to log lines of WARNING and above;
`weights_notice` says in one line which weights a backbone carries, in the terms of a notebook's
parameter cell.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.std import tqdm as text_tqdm

__all__ = ["notebook_output", "weights_notice"]

BAR_MODULES = (
    "negprompt.features",
    "negprompt.data.pngtree",
    "negprompt.miniworld.benchmark_v2",
    "negprompt.train.loop",
    "negprompt.local",
    "negprompt.locoop",
    "negprompt.neglabel",
    "negprompt.textbank",
    "negprompt.adaneg",
    "negprompt.tanl",
)
"""Modules whose progress bars `notebook_output` replaces (each binds the name ``tqdm``)."""
_EPOCH_DESC = re.compile(r"^(stage \d+|LoCoOp) epoch (\d+)/(\d+)$")
_RANDOM = "RANDOM WEIGHTS"
_SHORTFALL = r"the bundled weights \S+ miss their targets"
"""The start of `negprompt.bundled.shortfall`'s warning: shown once as a log line, not again as a
Python warning on stderr (drawn in a notebook's error colour)."""
_OPEN_CLIP_NOISE = "No pretrained weights loaded for model"
_originals: dict[str, Any] = {}


class _StageBars:
    """A ``tqdm`` stand-in: one text bar per training stage, plain text bars for everything else.

    The training loop asks for a bar per epoch (``desc="stage s epoch e/E"`` or ``"LoCoOp epoch e/E"``,
    ``steps`` items);
    here every epoch of a stage advances one bar of ``E × steps`` steps that closes after epoch E.
    """

    def __init__(self) -> None:
        self.bar: text_tqdm | None = None
        self.stage = ""

    def __call__(self, iterable: Iterable | None = None, *args: Any, **kwargs: Any) -> Any:
        match = _EPOCH_DESC.match(str(kwargs.get("desc") or ""))
        if kwargs.get("disable") or match is None or iterable is None:
            kwargs.setdefault("mininterval", 1.0)
            return text_tqdm(iterable, *args, file=sys.stdout, dynamic_ncols=False, **kwargs)
        stage, epoch, epochs = match[1], int(match[2]), int(match[3])
        steps = len(iterable)  # type: ignore[arg-type]
        if self.bar is None or self.stage != stage or epoch == 1:
            self.close()
            self.stage = stage
            self.bar = text_tqdm(
                total=epochs * steps, initial=(epoch - 1) * steps, desc=stage, unit="step",
                file=sys.stdout, mininterval=1.0, dynamic_ncols=False,
            )  # fmt: skip
        return _EpochView(iterable, self, epoch, epochs)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


class _EpochView:
    """One epoch's iteration over the stage's bar (what the loop calls ``bar``)."""

    def __init__(self, iterable: Iterable, owner: _StageBars, epoch: int, epochs: int) -> None:
        self.iterable, self.owner, self.epoch, self.epochs = iterable, owner, epoch, epochs

    def __iter__(self) -> Iterator:
        bar = self.owner.bar
        for item in self.iterable:
            yield item
            if bar is not None:
                bar.update(1)
        if self.epoch >= self.epochs:
            self.owner.close()

    def set_postfix(self, **values: Any) -> None:
        if self.owner.bar is not None:
            values.pop("refresh", None)
            self.owner.bar.set_postfix(epoch=f"{self.epoch}/{self.epochs}", **values, refresh=False)

    def close(self) -> None:
        """The stage's bar stays open across epochs; it closes after the last one."""


class _DropOpenClipNoise(logging.Filter):
    """Drop open_clip's "Model initialized randomly" line: negprompt builds every model without
    weights and loads them itself afterwards, and reports random weights on its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _OPEN_CLIP_NOISE not in record.getMessage()


class _NotebookHandler(logging.StreamHandler):
    """negprompt's log lines on the notebook's stdout (resolved at each line: kernels swap it)."""

    def __init__(self, level: int) -> None:
        super().__init__(sys.stdout)
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        self.addFilter(lambda record: not record.getMessage().startswith(_RANDOM))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def notebook_output(enable: bool = True, *, level: int = logging.WARNING) -> None:
    """Make the package's console output fit a notebook (``enable=False`` restores the defaults).

    - progress bars: plain text on stdout instead of ipywidgets, one bar per training stage
      (not one per epoch) and one per feature set; text survives saving and reopening a notebook;
    - log lines of the ``negprompt`` logger at ``level`` and above, on stdout as
      ``WARNING: message`` (not propagated to the root logger, so never printed twice);
    - random weights: the notice comes from `weights_notice`, in notebook terms, instead of the
      command-line warning repeated as a log line, a Python warning and open_clip's own line;
    - bundled weights below their card's targets: the log line, not also a Python warning.

    Calling it again only updates ``level``.
    """
    package, root = logging.getLogger("negprompt"), logging.getLogger()
    for handler in [h for h in package.handlers if isinstance(h, _NotebookHandler)]:
        package.removeHandler(handler)
    for flt in [f for f in root.filters if isinstance(f, _DropOpenClipNoise)]:
        root.removeFilter(flt)
    ours = (_RANDOM, _SHORTFALL)
    warnings.filters[:] = [f for f in warnings.filters if getattr(f[1], "pattern", None) not in ours]
    if not enable:
        for name, original in _originals.items():
            importlib.import_module(name).tqdm = original
        _originals.clear()
        package.propagate = True
        return
    bars = _StageBars()
    for name in BAR_MODULES:
        module = importlib.import_module(name)
        _originals.setdefault(name, module.tqdm)
        module.tqdm = bars
    package.addHandler(_NotebookHandler(level))
    package.propagate = False
    root.addFilter(_DropOpenClipNoise())
    warnings.filterwarnings("ignore", message=_RANDOM, category=UserWarning)
    warnings.filterwarnings("ignore", message=_SHORTFALL, category=UserWarning)


def weights_notice(backbone: Any) -> str:
    """One line on the weights of ``backbone`` (a `negprompt.Backbone`), in parameter-cell terms.

    Real weights: ``"weights: negprompt-mini, 'miniworld-v1' (trained)"``; bundled weights below
    their card's targets say which (``"… (trained; below its card's targets: id_top1 36.1% < 60%)"``).
    Random weights: a notice that every score is meaningless and how to change ``MODEL`` /
    ``PRETRAINED``.
    """
    if not backbone.random_weights:
        from negprompt.bundled import missed_targets

        missed = missed_targets(backbone.name, str(backbone.weights))
        below = f"; below its card's targets: {', '.join(missed)}" if missed else ""
        return f"weights: {backbone.name}, {backbone.weights!r} (trained{below})"
    if str(backbone.pretrained).lower() == "none":
        why = f"PRETRAINED = 'none' asks for random weights for MODEL = {backbone.name!r}"
    else:
        why = f"no trained weights were found for MODEL = {backbone.name!r} with PRETRAINED = {backbone.pretrained!r}"
    fix = (
        'set PRETRAINED = "auto" (its bundled weights)'
        if backbone.name == "negprompt-mini"
        else 'use MODEL = "negprompt-mini" with PRETRAINED = "auto" (bundled, offline), or set PRETRAINED '
        'to a weights tag such as "openai", a checkpoint file or a hub id'
    )
    return (
        f"RANDOM WEIGHTS: {why}, so every score and metric below is meaningless (the steps still run). "
        f"In the parameter cell, {fix}."
    )
