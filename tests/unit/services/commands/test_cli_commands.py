"""One CLI style: every command a module in services/commands/, one CliError, one bootstrap check."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from radstream.services import commands
from radstream.services.cli import build_parser
from radstream.services.commands import export
from radstream.services.commands.bootstrap import NO_BOOTSTRAP, require_bootstrap
from radstream.services.commands.errors import EXIT_ERROR, EXIT_USAGE, CliError

ROOT = Path(__file__).resolve().parents[4]
COMMANDS_DIR = ROOT / "services" / "commands"
NOT_COMMANDS = {"__init__", "errors", "bootstrap", "auth_flags", "pacs_flags", "token_flags", "tls_flags", "webhook_flags"}  # shared helpers, not commands


def _handlers(parser: argparse.ArgumentParser):
    """Every (sub)command's `func`, walking nested subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _handlers(sub)
    if parser.get_default("func") is not None:
        yield parser.get_default("func")


def test_every_command_module_is_registered_once() -> None:
    modules = {p.stem for p in COMMANDS_DIR.glob("*.py")} - NOT_COMMANDS
    targets = {m for m in modules if m.startswith("export_")}  # `radstream export <target>`, not commands
    # `radstream models promote|rollback|versions|compare`, registered by models.py (D-056)
    models_subcommands = {m for m in modules if m.startswith("models_")}
    assert models_subcommands == {"models_rollout"}
    assert sorted(commands.COMMANDS) == sorted(modules - targets - models_subcommands)
    assert len(set(commands.COMMANDS)) == len(commands.COMMANDS)
    from radstream.services.commands.export import TARGETS

    assert sorted(TARGETS) == sorted(m.removeprefix("export_") for m in targets)
    assert len(set(TARGETS)) == len(TARGETS)


def test_every_handler_lives_in_a_command_module() -> None:
    handlers = list(_handlers(build_parser()))
    assert len(handlers) >= 30  # every leaf command: 36 today
    for func in handlers:
        # thresholds wraps each handler in a lambda defined in its own module: the module is what counts
        assert func.__module__.startswith("radstream.services.commands."), func


def test_no_module_imports_cli_error_from_the_cli() -> None:
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "services").rglob("*.py")
                 if "from radstream.services.cli import" in p.read_text()]
    assert offenders == []
    assert [p.name for p in (ROOT / "services").rglob("*.py") if "class CliError" in p.read_text()] == ["errors.py"]


def test_the_bootstrap_check_lives_in_one_place() -> None:
    readers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "services").rglob("*.py")
               if "kafka.bootstrap:" in p.read_text() or "settings.bootstrap:" in p.read_text()
               or NO_BOOTSTRAP in p.read_text()]
    assert readers == ["services/commands/bootstrap.py"]


def test_require_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RADSTREAM_BOOTSTRAP", raising=False)
    with pytest.raises(CliError) as missing:
        require_bootstrap(argparse.Namespace(bootstrap=None))
    assert (str(missing.value), missing.value.code) == (NO_BOOTSTRAP, EXIT_USAGE)
    with pytest.raises(CliError) as custom:
        require_bootstrap(argparse.Namespace(), "--from-kafka needs a broker", EXIT_ERROR)
    assert (str(custom.value), custom.value.code) == ("--from-kafka needs a broker", EXIT_ERROR)
    assert require_bootstrap(argparse.Namespace(bootstrap="h:1")).kafka.bootstrap == "h:1"
    monkeypatch.setenv("RADSTREAM_BOOTSTRAP", "env:2")
    assert require_bootstrap(argparse.Namespace(bootstrap=None)).kafka.bootstrap == "env:2"
    assert require_bootstrap(argparse.Namespace(bootstrap="h:1")).kafka.bootstrap == "h:1"


def test_exit_codes_are_exact_when_run_as_a_module() -> None:
    """`python -m radstream.services.cli` runs cli.py as __main__; CliError's one home makes its codes exact."""
    env = {"PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "results"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == EXIT_USAGE and res.stderr == f"radstream: error: {NO_BOOTSTRAP}\n"
