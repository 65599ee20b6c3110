"""The import-closure tool that generates each stage's code deps, on a hand-built package."""

import textwrap

from deepfake_detection.stagedeps import code_deps, import_closure, imported_modules, rewrite_dvc_yaml


def _tree(root, files: dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


PKG = {
    "stages/__init__.py": "",
    "stages/a.py": """
        import os
        import numpy as np
        from deepfake_detection.x import helper
        from deepfake_detection import y

        def main():
            import deepfake_detection.sub.lazy   # imports inside functions count
        """,
    "stages/b.py": "from deepfake_detection.sub import mod\n",
    "deepfake_detection/__init__.py": "",
    "deepfake_detection/x.py": "from .sub.mod import thing\ndef helper(): pass\n",
    "deepfake_detection/y.py": "import yaml\n",
    "deepfake_detection/unused.py": "",
    "deepfake_detection/sub/__init__.py": "",
    "deepfake_detection/sub/mod.py": "from .. import y\nthing = 1\n",
    "deepfake_detection/sub/lazy.py": "from ..x import helper\n",
    "deepfake_detection/sub/other.py": "",
}


def test_imported_modules_resolves_relative_and_submodule_imports(tmp_path):
    root = _tree(tmp_path, PKG)
    assert imported_modules(root / "deepfake_detection/sub/mod.py", root) == {"deepfake_detection",
                                                                               "deepfake_detection.y"}
    assert imported_modules(root / "deepfake_detection/x.py", root) == {"deepfake_detection.sub.mod"}
    assert imported_modules(root / "stages/a.py", root) == {
        "deepfake_detection", "deepfake_detection.x", "deepfake_detection.y", "deepfake_detection.sub.lazy"}


def test_closure_is_exact_with_package_inits(tmp_path):
    root = _tree(tmp_path, PKG)
    assert import_closure("stages/a.py", root) == [
        "stages/a.py",
        "deepfake_detection/__init__.py",
        "deepfake_detection/sub/__init__.py",
        "deepfake_detection/sub/lazy.py",
        "deepfake_detection/sub/mod.py",
        "deepfake_detection/x.py",
        "deepfake_detection/y.py",
    ]
    assert code_deps("b", root) == [
        "stages/b.py",
        "deepfake_detection/__init__.py",
        "deepfake_detection/sub/__init__.py",
        "deepfake_detection/sub/mod.py",
        "deepfake_detection/y.py",
    ]


def test_rewrite_replaces_code_deps_and_keeps_data_deps(tmp_path):
    root = _tree(tmp_path, PKG)
    text = textwrap.dedent("""\
        stages:
          b:
            foreach: ${things}
            do:
              cmd: >-
                python stages/b.py --in data/${item}
              deps:
                - stages/b.py
                - deepfake_detection/sub        # a whole folder: replaced by its files
                - data/raw/${item}
              params:
                - things
          plain:
            cmd: echo no script
            deps:
              - data/x
        """)
    assert rewrite_dvc_yaml(text, root) == text.replace(
        "        - stages/b.py\n        - deepfake_detection/sub        # a whole folder: replaced by its files\n",
        "".join(f"        - {p}\n" for p in code_deps("b", root)))
