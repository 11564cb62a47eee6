"""Command-line flags generated from the settings dataclasses of `negprompt.experiments.config`.

Each setting ``name`` of a section is the flag ``--name`` with dashes (``n_neg`` -> ``--n-neg``),
plus the aliases its field declares; ``dest`` is the setting's name, so reading the flags back is
mechanical (:func:`settings_from_args`) and a new field is a new flag with nothing else to touch.
Flags default to "not given" (``argparse.SUPPRESS``): the preset's defaults stay in force for every
setting the user does not name. Run options that are not settings (``--out``, ``--resume``,
``--threads`` …) are declared by the commands themselves.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import MISSING, fields

from negprompt.experiments.config import SECTIONS, field_types


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. epochs=20), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _typed(parse):
    """An argparse type from a parser function (its ValueError becomes a usage error)."""

    def convert(text: str):
        try:
            return parse(text)
        except (ValueError, OSError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _base_type(annotation) -> type:
    """``int | None`` -> int; ``list[str] | None`` -> list; ``bool`` -> bool."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    return typing.get_origin(annotation) or annotation


def flag(name: str) -> str:
    """The command-line flag of setting ``name``."""
    return "--" + name.replace("_", "-")


def add_settings(
    parser: argparse.ArgumentParser,
    sections: typing.Iterable[str] = tuple(SECTIONS),
    *,
    exclude: typing.Container[str] = (),
    seed: bool = True,
) -> None:
    """Add one flag per setting of ``sections`` (an argument group each), but those in ``exclude``."""
    if seed:
        parser.add_argument(
            "--seed", type=int, default=argparse.SUPPRESS, help="seed of sampling, views and training (0)"
        )
    for section in sections:
        cls = SECTIONS[section]
        group = parser.add_argument_group(section, (cls.__doc__ or "").split("\n")[0])
        hints = field_types(cls)
        for f in fields(cls):
            if f.name in exclude:
                continue
            meta, base = f.metadata, _base_type(hints[f.name])
            default = f.default if f.default is not MISSING else None
            shown = "" if default in (None, {}) else f" ({default})"
            if isinstance(default, bool):
                shown = " (on)" if default else " (off)"
            kwargs: dict = {
                "dest": f.name,
                "default": argparse.SUPPRESS,
                "help": meta.get("help", "") + shown,
            }
            if base is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif base is dict:
                kwargs.update(type=_key_value, action="append", metavar=meta.get("metavar", "KEY=VALUE"))
            else:
                if "parse" in meta:
                    kwargs["type"] = _typed(meta["parse"])
                elif base in (int, float):
                    kwargs["type"] = base
                if meta.get("append"):
                    kwargs["action"] = "append"
                if meta.get("choices"):
                    kwargs["choices"] = meta["choices"]
                if meta.get("metavar"):
                    kwargs["metavar"] = meta["metavar"]
            group.add_argument(flag(f.name), *meta.get("aliases", ()), **kwargs)


def settings_from_args(args: argparse.Namespace) -> dict:
    """The settings given on the command line, by setting name (``{"n_neg": 4, "stage1": {…}}``)."""
    out = {}
    names = {f.name: f for cls in SECTIONS.values() for f in fields(cls)}
    for name, value in vars(args).items():
        if name == "seed":
            out[name] = value
        elif name in names:
            base = _base_type(field_types(_section_class(name))[name])
            out[name] = dict(value) if base is dict else value
    return out


def _section_class(name: str) -> type:
    return next(cls for cls in SECTIONS.values() if name in {f.name for f in fields(cls)})
