"""Print the serving part of requirements.lock: the packages that `shopserve serve` needs, with the
lock's own pins and hashes, so that an image installs with `--require-hashes --no-deps` and
without torch, the export stack or the dev tools.

    python deploy/serving_lock.py requirements.lock pyproject.toml > serve.lock

The roots are pyproject's `[project].dependencies` and `[build-system].requires` (the image builds
the project with `--no-build-isolation`); a locked package is kept when pip-compile's `# via`
comment names a kept package as one of its parents. That follows every edge the resolver used, so
the subset can hold a package more than the serving closure needs (one pulled in by an extra of a
kept package), never one less. Standard library only: it runs in the image's builder stage.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

__all__ = ["lock_blocks", "serving_names", "serving_lock"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_ROOT = "shopserve (pyproject.toml)"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_blocks(text: str) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (the block's text, its `# via` parents)} for every pin in the lock."""
    blocks: dict[str, tuple[str, list[str]]] = {}
    name: str | None = None
    lines: list[str] = []
    parents: list[str] = []

    def close() -> None:
        if name is not None:
            blocks[name] = ("\n".join(lines).rstrip() + "\n", parents)

    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            close()
            name, lines, parents = canonical(m.group(1)), [line], []
            continue
        if name is None:
            continue  # the header
        lines.append(line)
        comment = line.strip()
        if comment.startswith("# via"):
            rest = comment[len("# via") :].strip()
            if rest:
                parents.append(rest)
        elif comment.startswith("#   "):
            parents.append(comment[1:].strip())
    close()
    return blocks


def _root_names(pyproject: dict) -> set[str]:
    reqs = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    out = set()
    for req in reqs:
        m = _NAME.match(req)
        if m:
            out.add(canonical(m.group(1)))
    return out


def serving_names(lock_text: str, pyproject: dict) -> set[str]:
    blocks = lock_blocks(lock_text)
    children: dict[str, set[str]] = {}
    for name, (_, parents) in blocks.items():
        for parent in parents:
            children.setdefault(_ROOT if parent == _ROOT else canonical(parent), set()).add(name)
    roots = _root_names(pyproject)
    missing = roots - blocks.keys()
    if missing:
        raise SystemExit(f"serving_lock: not pinned in the lock: {', '.join(sorted(missing))}")
    keep, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in keep:
                keep.add(child)
                todo.append(child)
    return keep


def serving_lock(lock_text: str, pyproject: dict) -> str:
    blocks = lock_blocks(lock_text)
    names = serving_names(lock_text, pyproject)
    head = (
        "# The serving subset of requirements.lock, written by deploy/serving_lock.py:\n"
        "# pins and hashes are the lock's own. Install with --require-hashes --no-deps.\n\n"
    )
    return head + "".join(blocks[n][0] for n in sorted(names))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lock, pyproject = Path(argv[0]).read_text(), tomllib.loads(Path(argv[1]).read_text())
    sys.stdout.write(serving_lock(lock, pyproject))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
