"""``make verify``: does a fresh run of the graph reproduce the committed metrics?

CI's "re-run the stages" step. After ``dvc repro`` on a clean checkout, every metrics file that
``dvc.yaml`` declares (each JSON file inside a declared metrics folder, such as
``metrics/eval/``, holding ``<variant>/<test_set>.json``) is compared with the version committed at ``--rev`` (default ``HEAD``):

* data stages (``verify.data_stages`` in params.yaml: download, faces, split, prepare) must match
  exactly, both their metrics and the hashes of their outputs recorded in ``dvc.lock`` (so their
  bytes, not just their counts, are checked);
* model stages may differ by the absolute tolerance of the first ``verify.tolerances`` glob that
  matches a metric's key (float drift across CPUs changes training); a key no glob matches, and
  every non-number, must match exactly.

A metrics file that is committed but not produced, or produced but not committed, is a
failure. Prints one table of every difference (``--all``: every compared value) and exits 1 when
one is outside its tolerance.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .params import ParamsError, load_params


@dataclass(frozen=True)
class Row:
    """One compared value."""

    file: str
    key: str
    committed: Any
    fresh: Any
    tolerance: float | None    # None: must be equal
    ok: bool

    @property
    def diff(self) -> float | None:
        if _is_number(self.committed) and _is_number(self.fresh):
            return float(self.fresh) - float(self.committed)
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; lists are leaves (compared whole)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def tolerance_for(key: str, tolerances: dict[str, float]) -> float | None:
    """The tolerance of the first glob (in params order) matching the key's last part or all of it."""
    leaf = key.rsplit(".", 1)[-1]
    for pattern, tol in tolerances.items():
        if fnmatch.fnmatchcase(leaf, pattern) or fnmatch.fnmatchcase(key, pattern):
            return float(tol)
    return None


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))
    return a == b


def compare_values(file: str, committed: dict, fresh: dict, tolerances: dict[str, float] | None) -> list[Row]:
    """Rows for every key of either flat dict; ``tolerances=None`` means exact (a data stage)."""
    rows = []
    for key in sorted(set(committed) | set(fresh)):
        a, b = committed.get(key, "<missing>"), fresh.get(key, "<missing>")
        tol = tolerance_for(key, tolerances) if tolerances is not None else None
        if _equal(a, b):
            ok = True
        elif tol is not None and _is_number(a) and _is_number(b):
            ok = abs(float(b) - float(a)) <= tol + 1e-12
        else:
            ok = False
        rows.append(Row(file, key, a, b, tol, ok))
    return rows


def stage_base(name: str) -> str:
    """``faces@demo`` -> ``faces``; ``train@v`` -> ``train``."""
    return name.split("@", 1)[0]


def _is_dir_out(entry: dict) -> bool:
    """A directory out: dvc.lock records its hash as ``<md5>.dir`` with ``nfiles``."""
    return str(entry.get("md5", "")).endswith(".dir") or "nfiles" in entry


def metric_files(lock: dict, list_dir: Callable[[str], list[str]] = lambda path: []) -> dict[str, str]:
    """Metrics JSON file -> the stage (base name) that writes it (dvc.lock holds the expanded stages).

    A directory out under ``metrics/`` (``evaluate`` writes ``metrics/eval/<variant>/<test_set>.json``)
    stands for the JSON files ``list_dir(path)`` finds in it (the committed tree or the workspace).
    """
    out = {}
    for name, stage in (lock.get("stages") or {}).items():
        for entry in stage.get("outs", []):
            path = entry["path"]
            if not path.startswith("metrics/"):
                continue
            if path.endswith(".json"):
                out[path] = stage_base(name)
            elif _is_dir_out(entry):
                out.update({f: stage_base(name) for f in list_dir(path) if f.endswith(".json")})
    return out


def git_files(rev: str, folder: str, cwd: Path) -> list[str]:
    """Repo-relative paths of the files committed under ``folder`` at ``rev``."""
    res = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "--", folder], cwd=cwd,
                         capture_output=True, text=True)
    return res.stdout.splitlines() if res.returncode == 0 else []


def workspace_files(root: Path, folder: str) -> list[str]:
    """Repo-relative POSIX paths of the files under ``root/folder`` now."""
    base = root / folder
    return sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()) if base.is_dir() else []


def lock_hashes(lock: dict, stages: set[str]) -> dict[str, str]:
    """``stage:path`` -> md5 of every output of the given (base-name) stages in a dvc.lock."""
    out = {}
    for name, stage in (lock.get("stages") or {}).items():
        if stage_base(name) in stages:
            for entry in stage.get("outs", []):
                out[f"{name}:{entry['path']}"] = entry.get("md5") or entry.get("hash", "")
    return out


def current_stages(root: Path) -> set[str]:
    """Names of the stages dvc.yaml defines now (dvc.lock keeps entries of removed stages)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.addressing for stage in repo.index.stages}


def only_stages(lock: dict, stages: set[str] | None) -> dict:
    """``lock`` restricted to ``stages`` (all of them when None)."""
    if stages is None:
        return lock
    return {**lock, "stages": {k: v for k, v in (lock.get("stages") or {}).items() if k in stages}}


def git_show(rev: str, path: str, cwd: Path) -> str | None:
    """The committed text of ``path`` at ``rev``, or None when it is not in that commit."""
    res = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=cwd, capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else None


def verify(root: Path, rev: str, params_path: Path, stages: set[str] | None = None) -> list[Row]:
    """Compare the workspace's metrics and data-stage hashes with those committed at ``rev``.

    ``stages``: the stage names to compare (those dvc.yaml defines now); None compares every
    stage either dvc.lock lists.
    """
    vp = load_params(params_path).verify
    data = set(vp.data_stages)
    lock_text = git_show(rev, "dvc.lock", root)
    if lock_text is None:
        raise SystemExit(f"verify: no dvc.lock committed at {rev}; run `dvc repro` and commit dvc.lock first")
    fresh_lock_path = root / "dvc.lock"
    if not fresh_lock_path.is_file():
        raise SystemExit("verify: no dvc.lock in the workspace; run `dvc repro` first")
    old_lock = only_stages(yaml.safe_load(lock_text), stages)
    new_lock = only_stages(yaml.safe_load(fresh_lock_path.read_text()), stages)
    rows = compare_values("dvc.lock", lock_hashes(old_lock, data), lock_hashes(new_lock, data), None)
    old_files = metric_files(old_lock, lambda folder: git_files(rev, folder, root))
    new_files = metric_files(new_lock, lambda folder: workspace_files(root, folder))
    for path in sorted(set(old_files) | set(new_files)):
        stage = new_files.get(path) or old_files[path]
        old_text = git_show(rev, path, root)
        new_file = root / path
        if old_text is None or not new_file.is_file():
            rows.append(Row(path, "<file>", "committed" if old_text is not None else "<missing>",
                            "produced" if new_file.is_file() else "<missing>", None, False))
            continue
        rows += compare_values(path, flatten(json.loads(old_text)), flatten(json.loads(new_file.read_text())),
                               None if stage in data else vp.tolerances)
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def render(rows: list[Row], show_all: bool = False) -> str:
    """A markdown table of the differing rows (all rows with ``show_all``) and a summary line."""
    shown = [r for r in rows if show_all or not _equal(r.committed, r.fresh)]
    lines = ["| file | key | committed | fresh | diff | tolerance | ok |", "|---|---|---|---|---|---|---|"]
    for r in shown:
        diff = "" if r.diff is None else f"{r.diff:+.6g}"
        tol = "exact" if r.tolerance is None else f"{r.tolerance:g}"
        lines.append(f"| {r.file} | {r.key} | {_fmt(r.committed)} | {_fmt(r.fresh)} | {diff} | {tol} | "
                     f"{'yes' if r.ok else 'NO'} |")
    bad = sum(not r.ok for r in rows)
    differing = sum(not _equal(r.committed, r.fresh) for r in rows)
    files = len({r.file for r in rows})
    lines.append("")
    lines.append(f"verify: {len(rows)} values in {files} files compared; {differing} differ, "
                 f"{bad} outside tolerance")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="verify", description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="git revision holding the committed metrics")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--all", action="store_true", help="list every compared value, not only differences")
    args = ap.parse_args(argv)
    try:
        rows = verify(Path.cwd(), args.rev, args.params, current_stages(Path.cwd()))
    except ParamsError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    print(render(rows, args.all))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
