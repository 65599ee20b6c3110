"""A stage's code dependencies: the import closure of ``stages/<name>.py`` inside the package.

Both runners must rerun a stage when any module it executes changes, so its code deps are
computed, not hand-written: :func:`import_closure` reads the script with :mod:`ast` (no code is
run, nothing is imported), follows every ``import``/``from ... import`` of
``deepfake_detection.*`` at any depth (inside functions too: lazy imports run as well), and
returns the files, each package's ``__init__.py`` included (importing ``a.b.c`` executes
``a/__init__.py`` and ``a/b/__init__.py``). Third-party imports are the lock's business.

Deps are listed file by file, never as folders: a folder dep would rerun a stage for modules it
never imports (``deepfake_detection/faces`` holds the YOLO trainer the crop stage only needs in
one configuration), and Snakemake judges a folder input by the folder's own mtime anyway.

``dvc.yaml`` lists the closure literally (the runner of record is plain YAML); the Snakefile
calls :func:`code_deps` when it builds the graph; ``tests/test_runners.py`` checks both.
``python -m deepfake_detection.stagedeps [--check | --write] [stage ...]`` prints each stage's
list, exits 1 when ``dvc.yaml`` differs (``--check``), or rewrites the code entries of each
stage's ``deps`` in ``dvc.yaml`` in place, leaving data deps and comments alone (``--write``).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

PACKAGE = "deepfake_detection"
ROOT = Path(__file__).resolve().parent.parent


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file defining ``module`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``), if any."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path, root: Path) -> str:
    """Dotted package that relative imports in ``path`` resolve against."""
    return ".".join(path.relative_to(root).parent.parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names of every package module ``path`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root) if path.is_relative_to(root / PACKAGE) else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base_name = ".".join(p for p in base + [node.module or ""] if p)
            else:
                base_name = node.module or ""
            found.add(base_name)
            # ``from pkg import name``: name is a submodule or an attribute of pkg
            found.update(f"{base_name}.{alias.name}" for alias in node.names if alias.name != "*")
    return {m for m in found if (m == PACKAGE or m.startswith(PACKAGE + ".")) and module_file(m, root)}


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(script: str | Path, root: Path = ROOT) -> list[str]:
    """Repo-relative POSIX paths of ``script`` and every package file it transitively imports."""
    script = root / script
    seen_files = {script}
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop(), root):
            for name in _with_parents(module):
                path = module_file(name, root)
                if path not in seen_files:
                    seen_files.add(path)
                    todo.append(path)
    rest = sorted(p.relative_to(root).as_posix() for p in seen_files - {script})
    return [script.relative_to(root).as_posix(), *rest]


def code_deps(stage: str, root: Path = ROOT) -> list[str]:
    """The code deps of stage ``stage`` (its script ``stages/<stage>.py`` first)."""
    return import_closure(f"stages/{stage}.py", root)


def stage_names(root: Path = ROOT) -> list[str]:
    return sorted(p.stem for p in (root / "stages").glob("*.py") if p.stem != "__init__")


def is_code(path: str) -> bool:
    """Whether a dep path is code (a stage script or a package file) rather than data."""
    return path.startswith(("stages/", f"{PACKAGE}/")) or path in ("stages", PACKAGE)


# ------------------------------------------------------------------ dvc.yaml maintenance

_STAGE = re.compile(r"^  ([A-Za-z_][\w-]*):\s*$")
_CMD = re.compile(r"cmd:.*?python stages/(\w+)\.py", re.S)


def _stage_blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(template name, first line, end line) of every stage under ``stages:``."""
    starts = [(m.group(1), i) for i, line in enumerate(lines) if (m := _STAGE.match(line))]
    ends = [i for _, i in starts[1:]] + [len(lines)]
    return [(name, i, end) for (name, i), end in zip(starts, ends)]


def rewrite_dvc_yaml(text: str, root: Path = ROOT) -> str:
    """``text`` with each stage's code deps replaced by its import closure (data deps kept).

    A stage's deps are the block-style ``- path`` lines right after its ``deps:`` line; code
    entries (stages/, deepfake_detection/) are dropped and the closure is written first.
    """
    lines = text.splitlines(keepends=True)
    out = lines[:]
    for name, first, end in reversed(_stage_blocks(lines)):
        block = "".join(lines[first:end])
        script = _CMD.search(block)
        if not script:
            continue
        deps_at = next((i for i in range(first, end) if lines[i].strip() == "deps:"), None)
        if deps_at is None:
            raise ValueError(f"dvc.yaml: stage {name!r} runs stages/{script.group(1)}.py but has no "
                             f"deps list; add `deps:` with the script")
        indent = lines[deps_at + 1][: len(lines[deps_at + 1]) - len(lines[deps_at + 1].lstrip())]
        items_end = deps_at + 1
        while items_end < end and lines[items_end].startswith(indent + "- "):
            items_end += 1
        data = [l for l in lines[deps_at + 1:items_end] if not is_code(l.strip()[2:].strip())]
        code = [f"{indent}- {p}\n" for p in code_deps(script.group(1), root)]
        out[deps_at + 1:items_end] = code + data
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print, check or write each stage's code deps in dvc.yaml.")
    ap.add_argument("stages", nargs="*", help="stage names (default: every stages/*.py)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml lists other code deps")
    mode.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = ap.parse_args(argv)
    dvc_yaml = ROOT / "dvc.yaml"
    if args.check or args.write:
        text = dvc_yaml.read_text()
        new = rewrite_dvc_yaml(text)
        if args.write and new != text:
            from .io import write_text

            write_text(dvc_yaml, new)
        if args.check and new != text:
            print("dvc.yaml: code deps differ from the import closures; run "
                  "`python -m deepfake_detection.stagedeps --write`", file=sys.stderr)
            return 1
        return 0
    for stage in args.stages or stage_names():
        print(f"{stage}:")
        print("".join(f"  - {p}\n" for p in code_deps(stage)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
