"""The README's example outputs are what ``tlspcap analyze`` prints today.

Each fenced block that starts with ``$ tlspcap analyze ...`` (one command, run from the
repository root) shows an excerpt of its output: the lines must appear, in order and together,
in what the command prints now. ``TLSPCAP_UPDATE_GOLDEN=1`` rewrites each excerpt from the
current output (from its first line to the end of that connection) for review with git diff.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tlspcap.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```\n(\$ tlspcap analyze [^\n]*)\n(.*?)^```$", re.M | re.S)


def _blocks() -> list[tuple[str, list[str]]]:
    text = README.read_text()
    return [
        (m.group(1), m.group(2).splitlines())
        for m in BLOCK.finditer(text)
        if "\n$ " not in m.group(2) and "--out" not in m.group(1)
    ]


def _run(command: str) -> list[str]:
    args = shlex.split(command[2:])[1:]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return [line for line in (result.stderr + result.stdout).splitlines() if line]


def _head(line: str) -> str:
    """What identifies an excerpt's first line across changes of its verdict."""
    return line.split("[", 1)[0] if " -> " in line else line


def _excerpt(lines: list[str], first: str) -> list[str]:
    """From the line that starts like ``first`` to the end of the connection it shows."""
    start = next(i for i, line in enumerate(lines) if line.startswith(_head(first)))
    out: list[str] = []
    in_conn = False
    for line in lines[start:]:
        conn = " -> " in line and not line.startswith(" ")
        if out and (line.startswith("==") or (conn and in_conn)):
            break
        in_conn = in_conn or conn
        out.append(line)
    return out


EXAMPLES = _blocks()


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 15


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c[2:90] for c, _ in EXAMPLES])
def test_readme_output_is_real(command: str, shown: list[str]) -> None:
    out = _run(command)
    if os.environ.get("TLSPCAP_UPDATE_GOLDEN"):
        fresh = _excerpt(out, shown[0])
        text = README.read_text()
        old = command + "\n" + "\n".join(shown) + "\n"
        README.write_text(text.replace(old, command + "\n" + "\n".join(fresh) + "\n", 1))
        return
    shown = [line for line in shown if line]
    n = len(shown)
    assert any(out[i : i + n] == shown for i in range(len(out) - n + 1)), "\n".join(out)
