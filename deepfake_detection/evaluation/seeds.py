"""Spread of a metric over training seeds: flat ``<metric>_seed_{mean,std,min,max}`` keys.

Training a variant under several seeds (``train.seeds``) shows how much of a difference between
variants is the luck of one initialisation and shuffle order. The std is the sample standard
deviation (ddof 1): None with a single seed, where no spread can be measured.
"""

from __future__ import annotations

import math

import numpy as np

SPREAD_STATS = ("mean", "std", "min", "max")
DECIMALS = 6


def seed_spread(values, name: str) -> dict:
    """``{name_seed_mean, name_seed_std, name_seed_min, name_seed_max}`` over the defined values.

    ``values`` holds one number per seed; None or NaN (a metric undefined for that seed) is left
    out. All four are None when no value is defined; the std is None with fewer than two.
    """
    defined = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    keys = [f"{name}_seed_{stat}" for stat in SPREAD_STATS]
    if not defined:
        return dict.fromkeys(keys)
    v = np.array(defined, dtype=np.float64)
    stats = (math.fsum(defined) / v.size,
             float(np.std(v, ddof=1)) if v.size > 1 else None,
             float(v.min()), float(v.max()))
    return {k: None if s is None else round(s, DECIMALS) for k, s in zip(keys, stats)}


def seed_spreads(per_seed: list[dict], names) -> dict:
    """:func:`seed_spread` of each metric in ``names`` over a list of per-seed metric dicts."""
    out: dict = {"n_seeds": len(per_seed)}
    for name in names:
        out.update(seed_spread([m.get(name) for m in per_seed], name))
    return out
