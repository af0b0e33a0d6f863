"""Command modules: each `services/commands/<name>.py` defines `register(subparsers)`.

`services/cli.py` imports every module here, so a feature adds its command
without editing the CLI's core.
"""
