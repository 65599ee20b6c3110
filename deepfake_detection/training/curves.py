"""Training curves for ``dvc plots`` / ``dvc exp show``, logged with dvclive, one step per epoch.

``<folder>/plots/metrics/<name>.tsv`` gets one row per epoch (``step`` = the epoch number) for
each of :data:`CURVES`; ``<folder>/metrics.json`` holds the latest values and ``step``. The
logger writes nothing outside its folder: no dvc.yaml of its own (the pipeline's dvc.yaml
declares the files), no experiment commit (``dvc exp run`` makes those), no report, no
timestamps, so the files are byte-deterministic and can be committed. Timings go elsewhere.

dvclive's own repository lookup is skipped (:class:`PipelineLive`): it costs ~5 s per process
(opening the DVC repo and its git history) and buys nothing here, since the stage's outputs are
declared in dvc.yaml and ``dvc exp run`` collects them itself; it would also ``dvc init`` a git
checkout that has no ``.dvc`` folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_roc_auc", "lr")
DIGITS = 6   # the rounding of every committed metric


def open_live(folder: Path):
    """A fresh :class:`PipelineLive` on ``folder`` (its earlier files are removed)."""
    from dvclive import Live

    class PipelineLive(Live):
        """``dvclive.Live`` that writes its folder only and never opens the DVC/git repository."""

        def _init_dvc(self) -> None:
            return None

    logging.getLogger("dvclive").setLevel(logging.WARNING)
    return PipelineLive(str(folder), resume=False, report=None, save_dvc_exp=False, dvcyaml=False)


def log_epoch(live, row: dict, curves: tuple[str, ...] = CURVES) -> None:
    """One history row (``engine.fit``'s or ``gan.train.fit_gan``'s ``on_epoch``) as dvclive step
    ``row["epoch"]``, the keys ``curves`` (default: the classifier curves).

    A value that does not exist (ROC-AUC of a one-class validation set, the gradient penalty of a
    BCE GAN) is left out of that step.
    """
    live.step = int(row["epoch"])
    for name in curves:
        value = row.get(name)
        if value is not None:
            live.log_metric(name, round(float(value), DIGITS))
    live.make_summary()
