"""Bearer tokens from a file or the environment, not the process list: `--token` still works and warns once."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from radstream.services.commands import token_flags
from radstream.services.commands.errors import CliError
from radstream.services.commands.token_flags import add_token_flags, bearer_token

ENV = "RADSTREAM_PULL_TOKEN"


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_token_flags(p, ENV)
    return p.parse_args(list(argv))


def test_each_source_in_order_and_the_command_line_warns_once(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(token_flags, "_warned", set())
    (tmp_path / "t").write_text("from-file\n")
    (tmp_path / "e").write_text("from-env-file\n")
    env = {ENV: "from-env", f"{ENV}_FILE": str(tmp_path / "e")}
    assert bearer_token(_args("--token", "on-the-line", "--token-file", str(tmp_path / "t")), ENV, env) == "on-the-line"
    assert bearer_token(_args("--token", "on-the-line"), ENV, env) == "on-the-line"
    warned = capsys.readouterr().err.splitlines()
    assert warned == [f"radstream: warning: --token is visible in the process list (ps): use --token-file FILE or ${ENV}_FILE"]
    assert bearer_token(_args("--token-file", str(tmp_path / "t")), ENV, env) == "from-file"
    assert bearer_token(_args(), ENV, env) == "from-env"
    assert bearer_token(_args(), ENV, {f"{ENV}_FILE": str(tmp_path / "e")}) == "from-env-file"
    assert bearer_token(_args(), ENV, {}) is None
    assert capsys.readouterr().err == ""  # only the command line warns


def test_a_missing_or_empty_token_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="cannot read the token file /nonexistent/t: No such file"):
        bearer_token(_args("--token-file", "/nonexistent/t"), ENV, {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CliError, match="is empty"):
        bearer_token(_args(), ENV, {f"{ENV}_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize("argv", [["pull", "--dicomweb", "x", "--study", "1"], ["export", "stow", "--url", "x"],
                                  ["export", "fhir", "--url", "x"]])
def test_every_command_that_takes_a_token_takes_a_token_file(argv: list[str]) -> None:
    from radstream.services.cli import build_parser

    args = build_parser().parse_args([*argv, "--token-file", "/run/secrets/t"])
    assert args.token_file == "/run/secrets/t" and args.token is None


def test_export_stow_refuses_plain_http_unless_allowed(tmp_path: Path) -> None:
    """The SR and GSPS objects carry the patient: like export fhir, http:// needs --allow-http."""
    done = subprocess.run([sys.executable, "-m", "radstream.services.cli", "export", "stow", "--url",
                           "http://pacs:8042/dicom-web", "--bootstrap", "127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60, env={"RADSTREAM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["radstream: error: --url is plain http: the SR and GSPS objects carry "
                                                "the patient; use https, or --allow-http for a PACS on a trusted local network"]
