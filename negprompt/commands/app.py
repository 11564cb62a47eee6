"""``negprompt app``: the Streamlit dashboard over a folder of run directories.

Runs ``streamlit run <app entry> -- --runs-dir RUNS_DIR`` headless on ``HOST:PORT``. The dashboard
only reads run directories (see docs/run-directory.md); it never trains.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

APP_ENV = "NEGPROMPT_APP"
RUNS_DIR_ENV = "NEGPROMPT_RUNS_DIR"
IMAGE_DIRS_ENV = "NEGPROMPT_IMAGE_DIRS"
"""More folders the dashboard may serve images from (``os.pathsep``-separated), besides the runs
folder and the project's data cache; a run's own ``config.data.roots`` never widen them."""
ENTRY_NAMES = ("app.py", "streamlit_app.py")


def find_app_entry() -> Path:
    """The dashboard's entry script.

    Looks at ``$NEGPROMPT_APP`` (a file, or a folder holding ``app.py``), then at the ``app/``
    folder beside the ``negprompt`` package (a source checkout or an editable install).

    Raises:
        FileNotFoundError: no entry script was found; the message says where it looked and how to fix it.
    """
    import negprompt

    candidates: list[Path] = []
    env = os.environ.get(APP_ENV)
    if env:
        path = Path(env).expanduser()
        candidates += [path] if path.suffix == ".py" else [path / name for name in ENTRY_NAMES]
    app_dir = Path(negprompt.__file__).resolve().parent.parent / "app"
    candidates += [app_dir / name for name in ENTRY_NAMES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"the dashboard's entry script was not found (looked at {looked}). The dashboard ships in the "
        f"app/ folder of the source repository: install negprompt from a checkout with "
        f"`pip install -e '.[app]'`, or set {APP_ENV} to the path of app/app.py"
    )


def streamlit_command(
    runs_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8501,
    options: dict[str, str] | None = None,
) -> list[str]:
    """The ``python -m streamlit run …`` command line that serves the dashboard headless.

    Args:
        runs_dir: folder searched for run directories, passed to the app as ``--runs-dir``.
        host, port: where the server listens.
        options: more Streamlit config options, e.g. ``{"server.fileWatcherType": "none"}``.
    """
    settings = {
        "server.headless": "true",
        "server.address": host,
        "server.port": str(port),
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "minimal",
        **(options or {}),
    }
    command = [sys.executable, "-m", "streamlit", "run", str(find_app_entry())]
    for name, value in settings.items():
        command += [f"--{name}", str(value)]
    return [*command, "--", "--runs-dir", str(Path(runs_dir).expanduser().absolute())]


def app_environment(runs_dir: str | os.PathLike, images: list[str | os.PathLike] | None = None) -> dict:
    """The server's environment: ``$NEGPROMPT_RUNS_DIR`` and ``$NEGPROMPT_IMAGE_DIRS`` (its earlier
    value, then ``images`` as absolute paths, separated by ``os.pathsep``)."""
    folders = [
        os.environ.get(IMAGE_DIRS_ENV, ""),
        *(str(Path(f).expanduser().absolute()) for f in images or []),
    ]
    return {
        **os.environ,
        RUNS_DIR_ENV: str(runs_dir),
        IMAGE_DIRS_ENV: os.pathsep.join(f for f in folders if f),
    }


def launch_app(
    runs_dir: str | os.PathLike = "runs",
    host: str = "127.0.0.1",
    port: int = 8501,
    block: bool = True,
    images: list[str | os.PathLike] | None = None,
) -> int | subprocess.Popen:
    """Serve the dashboard over the run directories under ``runs_dir``.

    Args:
        runs_dir: folder searched for run directories (it may not exist yet; the app then says so).
        host: address to listen on (127.0.0.1: this machine only).
        port: TCP port.
        block: wait for the server to stop (Ctrl-C) and return its exit code; else return the
            running process at once (the caller stops it with ``terminate()``).
        images: more folders to serve images from (added to ``$NEGPROMPT_IMAGE_DIRS``); by default
            only the runs folder and the project's data cache (``~/.cache/negprompt/data``).

    Raises:
        FileNotFoundError: the dashboard's entry script is missing (see `find_app_entry`).
        ModuleNotFoundError: streamlit is not installed.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError(
            "the dashboard needs streamlit, plotly and umap-learn: pip install 'negprompt[app]'"
        )
    command = streamlit_command(runs_dir, host, port)
    print(
        f"negprompt dashboard on http://{host}:{port} (runs from {command[-1]}); Ctrl-C stops it", flush=True
    )
    env = app_environment(command[-1], images)
    process = subprocess.Popen(command, env=env)
    if not block:
        return process

    def stop(signum, frame):  # SIGTERM to this process stops the server too
        raise KeyboardInterrupt

    previous = (
        signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def register(sub) -> None:
    """Add the ``app`` sub-command to ``negprompt``'s sub-parsers."""
    p = sub.add_parser(
        "app",
        help="open the dashboard over a folder of runs",
        description="Serve the Streamlit dashboard over the run directories under RUNS_DIR: metrics, "
        "score distributions with a live threshold, prompt embeddings, per-image decisions, run comparison.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "runs_dir",
        nargs="?",
        default=os.environ.get(RUNS_DIR_ENV, "runs"),
        metavar="RUNS_DIR",
        help=f"folder searched for run directories (or ${RUNS_DIR_ENV})",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 serves the network")
    p.add_argument("--port", type=int, default=8501, help="TCP port")
    p.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="FOLDER",
        help="serve images from FOLDER too (repeatable; also $NEGPROMPT_IMAGE_DIRS); by default only the "
        "runs folder and the data cache ~/.cache/negprompt/data",
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from negprompt.commands.common import UserError

    runs_dir = Path(args.runs_dir).expanduser()
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"{runs_dir} is a file; give the folder that holds run directories")
    if not runs_dir.is_dir():
        print(f"note: {runs_dir} does not exist yet; the dashboard will show runs once it holds some")

    try:
        return int(launch_app(runs_dir, args.host, args.port, block=True, images=args.images))
    except ModuleNotFoundError as err:
        raise UserError(str(err)) from err
