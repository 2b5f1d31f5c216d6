"""Just enough of a Dockerfile parser for the tests: stages, their instructions, and the exec-form
commands (ENTRYPOINT, CMD, HEALTHCHECK) and ENV values of the image a stage builds."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Instruction", "Stage", "parse_dockerfile"]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    @property
    def env(self) -> dict[str, str]:
        """ENV values as written (`$PATH` stays literal)."""
        out: dict[str, str] = {}
        for instr in self.all("ENV"):
            for token in shlex.split(instr.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {instr.line}: ENV in the legacy `KEY VALUE` form"
                out[key] = value
        return out

    @property
    def command(self) -> list[str]:
        """What the container runs: ENTRYPOINT followed by CMD, both in exec (JSON) form."""
        argv: list[str] = []
        for keyword in ("ENTRYPOINT", "CMD"):
            instr = self.last(keyword)
            if instr is not None:
                argv += exec_form(instr)
        return argv

    @property
    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """(options such as `interval`, the command in exec form)."""
        instr = self.last("HEALTHCHECK")
        assert instr is not None, "no HEALTHCHECK"
        head, sep, tail = instr.args.partition("CMD ")
        assert sep, f"line {instr.line}: HEALTHCHECK without CMD"
        options = {}
        for token in shlex.split(head):
            key, _, value = token.removeprefix("--").partition("=")
            options[key] = value
        return options, exec_form(Instruction("CMD", tail.strip(), instr.line))

    @property
    def exposed(self) -> set[int]:
        return {int(p.split("/")[0]) for i in self.all("EXPOSE") for p in i.args.split()}


def exec_form(instr: Instruction) -> list[str]:
    try:
        argv = json.loads(instr.args)
    except json.JSONDecodeError:
        raise AssertionError(
            f"line {instr.line}: {instr.keyword} is not in exec (JSON) form"
        ) from None
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with their continuation lines joined; comment lines dropped (Docker drops
    them inside a continuation too)."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        out.append((start, " ".join(current)))
        current = []
    assert not current, "the file ends inside a continuation"
    return out


def parse_dockerfile(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    for number, line in _logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return stages
