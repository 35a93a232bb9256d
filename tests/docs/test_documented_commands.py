"""Every `gridnoise` command the README and the documentation show is one the command line accepts:
each command line in a shell code block is parsed by the real parser (no unknown command, no unknown
or misused flag), and each command named in running text names a real command and real flags. No
install line pretends gridnoise is on PyPI."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from gridnoise.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SHELL = ("bash", "sh", "console", "shell", "")
FENCE = re.compile(r"^(```+|~~~+)\s*\{?([\w-]*)\}?[^\n]*\n(.*?)^\1\s*$", re.S | re.M)


def documents() -> list[Path]:
    """README.md and every hand-written page of the site (the generated build and copies excluded)."""
    docs = REPO / "docs"
    return [REPO / "README.md", *sorted(p for p in docs.rglob("*.md")
                                        if not p.relative_to(docs).parts[0].startswith("_"))]


def shell_commands(text: str) -> list[list[str]]:
    """The arguments after `gridnoise` of every command in the shell code blocks of `text`
    (comments, `VAR=value` prefixes and `&&`/`;`/`|` chains handled as a shell would)."""
    found = []
    for fence in FENCE.finditer(text):
        if fence[2] not in SHELL:
            continue
        for line in fence[3].replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            segment: list[str] = []
            for token in [*lexer, ";"]:
                if token in (";", "&&", "||", "|", "&"):
                    words = segment
                    while words and re.match(r"^\w+=", words[0]):  # VAR=value before the command
                        words = words[1:]
                    if words and Path(words[0]).name == "gridnoise":
                        found.append(words[1:])
                    segment = []
                else:
                    segment.append(token)
    return found


def inline_commands(text: str) -> list[str]:
    """Commands named in running text, as `gridnoise ...` code spans (placeholders allowed)."""
    prose = FENCE.sub("", text)
    return re.findall(r"`(gridnoise [^`]+)`", prose)


def parse(parser: argparse.ArgumentParser, args: list[str]) -> str:
    """'' if `parser` accepts `args`, else its one-line error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as e:
            return "" if e.code == 0 else err.getvalue().strip()  # --help and --version exit 0
    return ""


def subcommand(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)command parser `words` name and the words after it."""
    while words:
        choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or words[0] not in choices:
            break
        parser, words = choices[words[0]], words[1:]
    return parser, words


def unknown(parser: argparse.ArgumentParser, span: str) -> list[str]:
    """What `span` (a command in running text) names that the parser does not have."""
    words = span.split()[1:]
    if words and words[0] in ("--version", "--help"):
        return []
    command, rest = subcommand(parser, words)
    if command is parser:
        return [f"no command {words[:1]}"]
    flags = {re.sub(r"[\[\]\(\),.;]|=.*", "", w) for w in rest if w.lstrip("[(").startswith("--")}
    return sorted(f for f in flags if f not in command._option_string_actions)


@pytest.fixture(scope="module")
def documented() -> dict[str, tuple[list[list[str]], list[str]]]:
    return {str(p.relative_to(REPO)): (shell_commands(p.read_text()), inline_commands(p.read_text()))
            for p in documents()}


def test_every_documented_command_line_parses(documented):
    parser = build_parser()
    lines = [(doc, args) for doc, (commands, _) in documented.items() for args in commands]
    assert len(lines) > 40 and {"README.md", "docs/how-to/studies.md", "docs/how-to/slurm.md"} <= {d for d, _ in lines}
    errors = [(doc, " ".join(args), message) for doc, args in lines if (message := parse(parser, args))]
    assert not errors, errors


def test_every_command_named_in_the_text_exists_with_its_flags(documented):
    parser = build_parser()
    spans = [(doc, span) for doc, (_, inline) in documented.items() for span in inline]
    assert len(spans) > 20
    errors = [(doc, span, bad) for doc, span in spans if (bad := unknown(parser, span))]
    assert not errors, errors


def test_a_removed_flag_or_command_fails_the_check():
    """The checks above against a parser that lost a flag the documentation uses, and against
    commands that do not exist."""
    text = (REPO / "docs" / "concepts" / "diffusion.md").read_text()
    command = next(args for args in shell_commands(text) if "--sample-steps" in args)
    parser = build_parser()
    assert parse(parser, command) == ""
    sample, _ = subcommand(parser, ["sample"])
    sample._handle_conflict_resolve(None, [("--sample-steps", sample._option_string_actions["--sample-steps"])])
    assert "unrecognized arguments: --sample-steps" in parse(parser, command)
    assert unknown(parser, "gridnoise sample RUN --sample-steps N") == ["--sample-steps"]
    assert "invalid choice: 'frobnicate'" in parse(build_parser(), ["frobnicate", "runs/x"])
    assert unknown(build_parser(), "gridnoise frobnicate --out X") == ["no command ['frobnicate']"]


def test_install_lines_work_from_a_clone():
    """gridnoise is not on PyPI: every `pip install` of it installs the clone (`-e .`, `".[extra]"`)."""
    for doc in documents():
        for line in re.findall(r"pip install[^\n`]*", doc.read_text()):
            assert not re.search(r"(?<![\w./-])[\"']?gridnoise\b", line), (doc, line)
