# Helpers shared by the rule files.

import glob
import os


def code(*paths):
    """A stage's script and library modules as inputs. Folders expand to their .py files:
    Snakemake judges a folder input by the folder's own mtime, not by the files in it."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(glob.glob(f"{path}/**/*.py", recursive=True))
        else:
            files.append(path)
    return files
