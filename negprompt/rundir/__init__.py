"""Write and read run directories: the contract between experiments and everything that shows results.

A run directory (layout in ``docs/run-directory.md``) holds one experiment's config, metrics, per-image
scores, features and learned prompts. `write_run` validates the parts and writes them atomically (a
temporary folder beside the target, renamed at the end); `load_run` opens one lazily; `find_runs`
lists them; `resolve_image_path` maps an image path of a run to a file inside the run's data roots.
`negprompt.synthetic.synthetic_run` writes a small random run with real images, for demos and tests.

The contract itself (file names, columns, checks) is in `negprompt.rundir.schema`; the writer in
`negprompt.rundir.write` and the reader in `negprompt.rundir.read`.
"""

from negprompt.rundir.find import find_runs, resolve_image_path
from negprompt.rundir.read import Run, load_run
from negprompt.rundir.schema import (
    FORMAT_VERSION,
    METRICS_COLUMNS,
    SCORES_COLUMNS,
    RunDirError,
    RunExistsError,
)
from negprompt.rundir.write import free_run_path, software_versions, write_run

__all__ = [
    "FORMAT_VERSION",
    "METRICS_COLUMNS",
    "SCORES_COLUMNS",
    "Run",
    "RunDirError",
    "RunExistsError",
    "find_runs",
    "free_run_path",
    "load_run",
    "resolve_image_path",
    "software_versions",
    "write_run",
]
