"""The shell blocks of README.md and of every page under docs/, pasted as a reader pastes them,
against a stack started as `make dev` starts it; each block twice in a row, README first, then the
pages in path order, each in a fresh shell.

Which blocks run: every ```sh block of README.md and docs/**/*.md, unless the line just before its fence is
an HTML comment `<!-- not run: <why> -->` (invisible on the rendered page): `make dev` and
`make test` themselves, deploy and gcloud commands, usage summaries.

What a block must print: under a command, the comment lines that follow it directly (no blank
line between) are what that command prints, one output line each; comment lines after a blank
line or at the top of a block are the reader's narration and are not compared. In them:
- `…` is any value: inside a quoted string, any text without a quote; elsewhere, anything;
- a time or date shown literally (`2026-12-03T14:00:00.123456Z`, `2026-12-03`,
  `20261203T140000Z`) is any time or date of that shape;
- a comment line indented by two or more spaces after `#` continues the line above (the README
  wraps long answers);
- a remark after two or more spaces in parentheses, `...   (and "expiresAt": ...)`, is for the
  reader only;
- `# pasted again: "key":value, ...` says what the second run prints instead (the first
  `"key":...` of the lines above takes that value).
Every other character must match, and every line a block prints must be documented (or sent
to /dev/null by the block): the keys, the error codes, the literal values. Nothing may go to
stderr (a Python traceback, a curl error).

How a block runs: `bash --noprofile --norc -u`, without -e, as a paste into an interactive
shell goes on after a failing command (its output then differs); -u makes a variable that only
an earlier block set fail loudly. The working folder is a temporary "clone": symlinks to the
repository's files with a .local/ of its own, which is the stack's folder and holds its
dev.env, exactly where make dev keeps them, so `set -a; . .local/dev.env; set +a` and the
`make` targets work there and the repository's own .local/ is never touched. The blocks name
make dev's fixed ports (8080, and firebase.json's 9099, 8085, 9199); `on_free_ports` rewrites
them to the test stack's free ports, so the test runs beside a real `make dev`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.stack import ROOT, Stack, firebase_ports

README = ROOT / "README.md"
# README first: its block takes the first visitor number of the empty stack.
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")
MARKER = "@@readme-check {}@@"
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z|\d{8}T\d{6}Z|\d{4}-\d{2}-\d{2}")


@dataclass
class Expected:
    """What one command prints, as the README shows it under the command."""

    readme_line: int
    lines: list[str]
    again: dict[str, str] = field(default_factory=dict)

    def for_run(self, run: int) -> list[str]:
        if run == 1 or not self.again:
            return self.lines
        lines = list(self.lines)
        for key, value in self.again.items():
            for i, line in enumerate(lines):
                replaced, count = re.subn(re.escape(key) + r":\s*[^,}\]]*", lambda _: f"{key}:{value}", line, count=1)
                if count:
                    lines[i] = replaced
                    break
            else:
                raise AssertionError(f"README line {self.readme_line}: `pasted again: {key}` names no {key} above")
        return lines


@dataclass
class Block:
    page: str  # the page's path in the repository, e.g. docs/api.md
    heading: str
    readme_line: int  # of the opening fence
    lines: list[str]
    run: bool

    def segments(self) -> tuple[str, list[Expected]]:
        """The script with a marker printed after each command that has documented output,
        and that output, in order."""
        script: list[str] = []
        expected: list[Expected] = []
        previous_is_command = False
        group: Expected | None = None
        for offset, line in enumerate(self.lines):
            number = self.readme_line + 1 + offset
            stripped = line.strip()
            if stripped.startswith("#") and (previous_is_command or group is not None):
                if group is None:
                    group = Expected(number, [])
                    expected.append(group)
                    script.append("printf '%s\\n' " + shell_quote(MARKER.format(len(expected))))
                text = stripped[1:]
                again = re.match(r"\s*pasted again:\s*(.*)$", text)
                if again:
                    group.again.update(parse_again(again.group(1), number))
                elif re.match(r"\s{2,}\S", text) and group.lines:
                    group.lines[-1] += "\0" + without_remark(text.strip())  # \0: where the README wrapped
                else:
                    group.lines.append(without_remark(text.strip()))
            else:
                group = None
                previous_is_command = bool(stripped) and not stripped.startswith("#")
            script.append(line)
        return "\n".join(script) + "\n", expected


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def without_remark(text: str) -> str:
    return re.sub(r"\s{2,}\(.*\)$", "", text)


def parse_again(text: str, number: int) -> dict[str, str]:
    pairs = re.findall(r"""("[^"]+"|'[^']+'):\s*([^,]+)""", without_remark(text.strip()))
    if not pairs:
        raise AssertionError(f'README line {number}: `pasted again:` needs "key":value pairs')
    return {key: value.strip() for key, value in pairs}


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    blocks: list[Block] = []
    heading = "(top)"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if line.strip() == "```sh":
                not_run = i > 0 and bool(NOT_RUN.match(lines[i - 1].strip()))
                blocks.append(Block(page, heading, i + 1, lines[i + 1 : end], run=not not_run))
            i = end + 1
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.strip().startswith("<!-- not run") and not (i + 1 < len(lines) and lines[i + 1].startswith("```sh")):
            raise AssertionError(f"{page} line {i + 1}: a `not run` comment must be just before a ```sh fence")
        i += 1
    return blocks


def line_pattern(expected: str) -> re.Pattern:
    """`…` and literal times as wildcards, the rest literally (see the module docstring)."""
    quote = '"' if '"' in expected else "'"
    parts: list[str] = []
    for index, piece in enumerate(expected.split("\0")):
        if index:
            parts.append(r"\s*")
        position = 0
        for match in re.finditer(r"…|" + TIME.pattern, piece):
            parts.append(re.escape(piece[position : match.start()]))
            if match.group() == "…":
                inside_string = piece[: match.start()].count(quote) % 2 == 1
                parts.append(f"[^{quote}]*" if inside_string else ".*?")
            else:
                parts.append(f"(?:{TIME.pattern})")
            position = match.end()
        parts.append(re.escape(piece[position:]))
    return re.compile("".join(parts))


def on_free_ports(script: str, stack: Stack) -> str:
    """make dev's fixed ports in a block (PORT's default 8080 and firebase.json's emulator
    ports) rewritten to the test stack's ports."""
    fixed = firebase_ports()
    mapping = {8080: stack.ports["functions"]}
    mapping.update({fixed[name]: stack.ports[name] for name in ("auth", "firestore", "storage")})
    for dev_port, port in mapping.items():
        script = re.sub(rf"(?<=(127\.0\.0\.1|localhost):){dev_port}\b", str(port), script)
    return script


def compare(block: Block, run: int, stdout: str, stderr: str, expected: list[Expected]) -> list[str]:
    """The differences between what a run printed and what the README shows."""
    problems: list[str] = []
    if stderr.strip():
        problems.append(f"printed on stderr:\n{stderr.rstrip()}")
    segments: list[list[str]] = [[]]
    for line in stdout.splitlines():
        marker = re.search(r"@@readme-check \d+@@$", line)
        if marker:
            if marker.start() > 0:
                segments[-1].append(line[: marker.start()])
                problems.append(
                    f"the output above README line {expected[len(segments) - 1].readme_line} "
                    f"does not end with a newline: {line[: marker.start()]!r}"
                )
            segments.append([])
        else:
            segments[-1].append(line)
    if len(segments) != len(expected) + 1:
        problems.append(f"the block stopped early: {len(segments) - 1} of {len(expected)} documented outputs reached")
    for group, actual in zip(expected, segments):
        want = group.for_run(run)
        if len(actual) != len(want) or not all(line_pattern(w).fullmatch(a) for w, a in zip(want, actual)):
            problems.append(
                f"under line {group.readme_line}:\n  page:   "
                + "\n          ".join(w.replace("\0", "") for w in want)
                + "\n  got:    "
                + "\n          ".join(actual or ["(nothing)"])
            )
    if len(segments) == len(expected) + 1 and segments[-1]:
        problems.append(
            "printed after its last documented output (document it, or send it to /dev/null):\n  "
            + "\n  ".join(segments[-1])
        )
    return problems


BLOCKS = [block for page in PAGES for block in readme_blocks(page.read_text(), str(page.relative_to(ROOT)))]
RUNNABLE = [block for block in BLOCKS if block.run]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A folder that looks like the repository to a block (symlinks to its files) with a .local/
    of its own. .venv is a folder of symlinks with a fresh .installed, so `make` finds the
    environment installed, as on a clone after its first `make dev`."""
    folder = tmp_path_factory.mktemp("clone")
    for entry in ROOT.iterdir():
        if entry.name in (".local", ".git", ".venv", "test-results", ".pytest_cache"):
            continue
        (folder / entry.name).symlink_to(entry)
    venv = folder / ".venv"
    venv.mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    return folder


@pytest.fixture(scope="module")
def dev_stack(clone):
    """The stack make dev starts (devtools/dev.py), on free ports, in the clone's .local/,
    with .local/dev.env written as make dev writes it."""
    local = clone / ".local"
    stack = Stack.with_free_ports(local, storage_events=True, keep_state=True, workers=2, prolific=True)
    port = stack.ports["functions"]
    stack.allowed_origins = f"http://127.0.0.1:{port},http://localhost:{port}"
    stack.start()
    try:
        (local / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(stack.env().items())))
        yield stack
    finally:
        stack.stop()
        if stack.postgres:
            stack.postgres.destroy()


def shell_env() -> dict[str, str]:
    """A fresh terminal's environment: none of the stack's settings, no make of ours around it."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "USER")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update({name: value for name, value in os.environ.items() if name.startswith("PYENV")})
    env.setdefault("LANG", "C.UTF-8")
    return env


def test_the_readme_has_blocks_to_run():
    assert len(RUNNABLE) >= 10, [block.heading for block in BLOCKS]
    for block in RUNNABLE:
        assert block.segments()[1], (
            f"{block.page} block under “{block.heading}” (line {block.readme_line}) documents no output"
        )


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"{b.page}:{b.heading}@{b.readme_line}" for b in RUNNABLE])
def test_a_readme_block_pasted_twice_prints_what_the_readme_says(block, clone, dev_stack):
    script, expected = block.segments()
    script = on_free_ports(script, dev_stack)
    failures = []
    for run in (1, 2):
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-u"],
            input=script,
            capture_output=True,
            text=True,
            cwd=clone,
            env=shell_env(),
            timeout=120,
        )
        problems = compare(block, run, done.stdout, done.stderr, expected)
        if problems:
            failures.append(f"run {run} (exit status {done.returncode}):\n" + "\n".join(problems))
    assert not failures, f"{block.page} block under “{block.heading}” (line {block.readme_line}):\n" + "\n".join(
        failures
    )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_the_docs_link_only_to_files_of_the_repository(page):
    """Links are relative to the page's folder and must reach a file of the repository."""
    text = page.read_text()
    name = page.relative_to(ROOT)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"https?://|#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{name} links outside the repository: {target}"
        assert path.exists(), f"{name} links to a file that is not in the repository: {target}"


def test_the_docs_cite_nothing_a_reader_cannot_open():
    """No SPEC sections or issue numbers: a reader of the repository has neither."""
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"SPEC §|\bissue \d+", text), f"{page.relative_to(ROOT)} cites the SPEC or an issue"
