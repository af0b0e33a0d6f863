"""Command modules: each `services/commands/<name>.py` defines `register(subparsers)`.

`COMMANDS` names them in the order `radstream --help` lists them; a new command is a
new module plus its name here. `errors.py` (CliError, the exit codes) and `bootstrap.py`
(the --bootstrap option and its check) serve them all.
"""

COMMANDS = (
    "blobs", "broker", "topics", "stage", "up", "publish", "results", "status", "demo", "bench",
    "dicom", "dlq", "evaluate", "export", "fuse", "gateway", "keys", "models", "monitor", "override", "plan", "pull", "receiver", "replay",
    "sr", "thresholds", "watch",
)
