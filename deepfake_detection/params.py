"""The one reader of ``params.yaml``: typed, validated dataclasses.

Every stage calls :func:`load_params` and reads only its own section. Unknown keys, wrong types
and out-of-range values raise :class:`ParamsError` naming the dotted key and what to write
instead. :func:`from_dict` is the generic converter; modules with their own config sections
(sources, detectors, demo data) declare a dataclass and reuse it.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .gan_specs import CLASSIFIER_OF, check_gan_net, gan_net_specs
from .model_specs import builder_specs, check_builder


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to type ``tp`` (a dataclass, builtin, Literal, list/dict/Optional of those)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ParamsError as exc:
                errors.append(str(exc))
        if len(errors) == 1:
            raise ParamsError(errors[0])
        choices = [("true, false" if a is bool else ", ".join(map(repr, typing.get_args(a)))
                    if typing.get_origin(a) is Literal else _type_name(a)) for a in args if a is not type(None)]
        raise ParamsError(f"{where}: {value!r} is not allowed; use one of: {', '.join(choices)}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{where}: {value!r} is not allowed; use one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ParamsError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = args or (Any, Any)
        return {_convert(k, key_tp, where): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"params: unsupported type {_type_name(tp)} at {where}")


def from_dict(cls: type, data: Any, where: str):
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ParamsError.

    Missing keys take the dataclass defaults. After construction the dataclass's
    ``validate()`` method, if any, runs with ``where`` so range checks name the key too.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{key}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_deltas(raw: dict, deltas: dict, where: str = "") -> dict:
    """``raw`` with each dotted key of ``deltas`` set to its value; neither input is modified.

    ``{"train.augment.crop": 224}`` sets ``raw["train"]["augment"]["crop"]``, creating missing
    (or empty) intermediate mappings; the value replaces the old one whole, a mapping included
    (unlike :func:`deep_merge`), so a delta says exactly what the key becomes. ``where`` prefixes
    the key in errors (``variants.<v>.paper``).
    """
    out = copy.deepcopy(raw)
    for dotted, value in (deltas or {}).items():
        key = f"{where}.{dotted}" if where else str(dotted)
        parts = dotted.split(".") if isinstance(dotted, str) else []
        check(bool(parts) and all(parts), key, "write a dotted key of names, e.g. train.epochs")
        node = out
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            check(isinstance(node[part], dict), key,
                  f"{'.'.join(parts[:depth + 1])} is {node[part]!r}, not a mapping, so it has no key {parts[depth + 1]!r}")
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    return out


def check(cond: bool, where: str, message: str) -> None:
    """Raise ParamsError(``where: message``) unless ``cond``."""
    if not cond:
        raise ParamsError(f"{where}: {message}")


# --------------------------------------------------------------------------- sections


@dataclass
class SourceParams:
    """One download unit: ``download@<name>`` writes ``data/raw/<name>``.

    ``kind`` picks the fetcher (demo, kaggle, zenodo, huggingface, local); ``options`` is that
    fetcher's own config, validated by it. ``datasets`` maps each manifest dataset id this
    download provides to the sub-folder and layout adapter that ingests it.
    """

    kind: Literal["demo", "kaggle", "zenodo", "huggingface", "local"]
    datasets: dict[str, "DatasetLayout"]
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        check(bool(self.datasets), f"{where}.datasets", "list at least one dataset")


@dataclass
class DatasetLayout:
    """Where a dataset lies inside its download folder and how to read it."""

    layout: Literal["coco", "real_fake_folders", "video_frames", "deepfakeface"]
    dir: str = "."
    # boxes: COCO boxes (layout coco only); whole: the files are already face crops (resize
    # only); detector: find faces first.
    crop: Literal["boxes", "whole", "detector"] = "whole"

    def validate(self, where: str) -> None:
        check((self.layout == "coco") == (self.crop == "boxes"), f"{where}.crop",
              f"layout {self.layout!r} needs crop {'boxes' if self.layout == 'coco' else 'whole or detector'}, "
              f"got {self.crop!r}")


@dataclass
class FacesParams:
    """How faces are cut out (stage ``faces``)."""

    size: int = 64                 # output crop side in pixels (square crops)
    margin: float = 1.3            # box side multiplier around the face box
    square: bool = True            # expand boxes to squares before the margin
    min_size: int = 8              # faces whose box is smaller (either side, px) are rejected
    jpeg_quality: int = 95
    detector: dict[str, Any] = field(default_factory=dict)   # faces.detectors.DetectorConfig

    def detector_config(self, where: str = "faces.detector"):
        from .faces.detectors import detector_config

        return detector_config(self.detector, where)

    def validate(self, where: str) -> None:
        self.detector_config(f"{where}.detector")
        check(self.size >= 8, f"{where}.size", f"must be >= 8, got {self.size}")
        check(self.margin >= 1.0, f"{where}.margin", f"must be >= 1.0, got {self.margin}")
        check(self.min_size >= 1, f"{where}.min_size", f"must be >= 1, got {self.min_size}")
        check(1 <= self.jpeg_quality <= 100, f"{where}.jpeg_quality", "must be in 1..100")


@dataclass
class SplitParams:
    """Stratified, group-aware split for datasets without official splits (stage ``split``)."""

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    seed: int = 42
    keep_official: bool = True     # use a dataset's own splits where it has them
    # Leakage guard (deepfake_detection/data/dedup.py): candidate pairs differ in at most this
    # many pHash bits (-1 turns the guard off); a link needs an NCC of at least dedup_min_ncc
    # per mille between the aligned 32x32 grey images. Linked faces share a group.
    dedup_max_distance: int = 4
    dedup_min_ncc: int = 930

    def validate(self, where: str) -> None:
        check(-1 <= self.dedup_max_distance <= 16, f"{where}.dedup_max_distance",
              f"must be in -1..16 (-1 = off), got {self.dedup_max_distance}")
        check(0 <= self.dedup_min_ncc <= 1000, f"{where}.dedup_min_ncc",
              f"must be in 0..1000 (per mille), got {self.dedup_min_ncc}")
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, f"{where}.{name}", f"must be in [0, 1], got {value}")
        total = self.train + self.val + self.test
        check(abs(total - 1.0) < 1e-6, where, f"train + val + test must be 1.0, got {total}")


@dataclass
class PrepareParams:
    """Decode every face once into one uint8 array per size (stage ``prepare@<size>``).

    ``sizes`` is the list dvc.yaml's foreach runs over; DVC cannot derive it from the variants,
    so :meth:`Params.validate` checks it equals the set of their ``prepared_size``.
    """

    sizes: list[int] = field(default_factory=lambda: [64])

    def validate(self, where: str) -> None:
        check(bool(self.sizes), f"{where}.sizes", "list at least one size (the variants' prepared_size)")
        for size in self.sizes:
            check(size >= 8, f"{where}.sizes", f"every size must be >= 8, got {size}")
        check(len(set(self.sizes)) == len(self.sizes), f"{where}.sizes", f"lists a size twice: {self.sizes}")


@dataclass
class OptimizerParams:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 3e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)     # Adam/AdamW (torch's and Keras' defaults)

    def validate(self, where: str) -> None:
        check(self.lr > 0, f"{where}.lr", f"must be > 0, got {self.lr}")
        check(all(0 <= b < 1 for b in self.betas), f"{where}.betas", f"both must be in [0, 1), got {list(self.betas)}")
        check(self.weight_decay >= 0, f"{where}.weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(0 <= self.momentum < 1, f"{where}.momentum", f"must be in [0, 1), got {self.momentum}")


@dataclass
class SchedulerParams:
    """Learning-rate schedule, stepped once per epoch.

    step: ``lr * gamma ** (epoch // step_size)`` (StepLR); cosine: CosineAnnealingLR over
    ``t_max`` epochs; exponential: ``lr * gamma ** epoch`` (Keras ``ExponentialDecay`` with
    ``decay_steps`` = one epoch and ``staircase=True``; seed 002's "learning-rate decay").
    """

    name: Literal["none", "step", "cosine", "exponential"] = "none"
    step_size: int = 7
    gamma: float = 0.1             # step and exponential: the factor per step_size / per epoch
    t_max: int = 0                 # cosine period in epochs; 0 means the number of epochs

    def validate(self, where: str) -> None:
        check(self.step_size >= 1, f"{where}.step_size", f"must be >= 1 (epochs), got {self.step_size}")
        check(0 < self.gamma <= 1, f"{where}.gamma", f"must be in (0, 1], got {self.gamma}")
        check(self.t_max >= 0, f"{where}.t_max", f"must be >= 0 (0 = the number of epochs), got {self.t_max}")


@dataclass
class AugmentParams:
    """Train-time augmentation on prepared uint8 tensors; eval always resizes + centre-crops."""

    resize: int = 0                # 0: keep the prepared size
    crop: int = 0                  # random crop (train) / centre crop (eval) side; 0: no crop
    # Side eval resizes to before its centre crop; 0: ``resize``. Seed 000 trains on Resize 256 +
    # RandomCrop 224 but evaluates on Resize 224 + CenterCrop 224 (eval_resize: 224).
    eval_resize: int = 0
    hflip: float = 0.0
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    random_resized_crop_scale: tuple[float, float] = (1.0, 1.0)
    autoaugment: bool = False
    rotation: float = 0.0          # max degrees, angle ~ U(-rotation, rotation) per image (Keras rotation_range)
    zoom: float = 0.0              # scale ~ U(1 - zoom, 1 + zoom) per image (Keras zoom_range); 0: off

    def validate(self, where: str) -> None:
        check(self.resize >= 0, f"{where}.resize", f"must be >= 0 (0 = keep the prepared size), got {self.resize}")
        check(self.crop >= 0, f"{where}.crop", f"must be >= 0 (0 = no crop), got {self.crop}")
        check(self.eval_resize >= 0, f"{where}.eval_resize",
              f"must be >= 0 (0 = the same as resize), got {self.eval_resize}")
        # Without a crop the eval resize would set the model's input side, unlike training's.
        check(self.eval_resize == 0 or self.crop > 0, f"{where}.eval_resize",
              f"needs crop > 0 (the centre crop gives eval the training input size), got crop {self.crop}")
        check(self.eval_resize == 0 or self.eval_resize >= self.crop, f"{where}.eval_resize",
              f"must be >= crop {self.crop} (the centre crop is cut from it), got {self.eval_resize}")
        check(all(v >= 0 for v in self.color_jitter), f"{where}.color_jitter",
              f"brightness, contrast, saturation, hue must be >= 0, got {list(self.color_jitter)}")
        check(self.color_jitter[3] <= 0.5, f"{where}.color_jitter", f"hue must be <= 0.5, got {self.color_jitter[3]}")
        check(0.0 <= self.hflip <= 1.0, f"{where}.hflip", f"must be a probability, got {self.hflip}")
        lo, hi = self.random_resized_crop_scale
        check(0.0 < lo <= hi <= 1.0, f"{where}.random_resized_crop_scale", f"need 0 < min <= max <= 1, got {(lo, hi)}")
        check((lo, hi) == (1.0, 1.0) or self.crop or self.resize, f"{where}.random_resized_crop_scale",
              "needs crop (or resize) to give the output size")
        check(0.0 <= self.rotation <= 180.0, f"{where}.rotation", f"must be degrees in [0, 180], got {self.rotation}")
        check(0.0 <= self.zoom < 1.0, f"{where}.zoom", f"must be in [0, 1) (scale range 1 +/- zoom), got {self.zoom}")


@dataclass
class MixParams:
    name: Literal["none", "cutmix", "mixup"] = "none"
    alpha: float = 1.0             # Beta(alpha, alpha) mixing weights

    def validate(self, where: str) -> None:
        check(self.alpha > 0, f"{where}.alpha", f"must be > 0, got {self.alpha}")


@dataclass
class TrainParams:
    """Training settings; ``train`` in params.yaml holds defaults, each variant may override."""

    datasets: list[str] = field(default_factory=list)   # manifest datasets to train/validate on
    epochs: int = 3
    batch_size: int = 32
    optimizer: OptimizerParams = field(default_factory=OptimizerParams)
    scheduler: SchedulerParams = field(default_factory=SchedulerParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    mix: MixParams = field(default_factory=MixParams)
    select: Literal["last", "best_val_auc", "best_val_loss"] = "best_val_auc"
    threshold_rule: Literal["youden", "f1", "eer", "fixed_0.5"] = "youden"
    # One training run per seed; the first is the primary model (model.pt). Evaluation reports
    # the mean and spread over all of them beside the primary model's numbers.
    seeds: list[int] = field(default_factory=lambda: [42])
    max_batches_per_epoch: int = 0     # 0: the whole epoch (only tiny test runs set this)
    # Keras kernel_regularizer l2 (seed 002 M5: 0.01 on every layer): the loss gains l2 * the sum
    # of squared weights of every trainable Conv and Linear weight (not biases, not BatchNorm).
    l2: float = 0.0

    def validate(self, where: str) -> None:
        check(bool(self.datasets), f"{where}.datasets", "name at least one dataset to train on")
        check(self.epochs >= 1, f"{where}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"{where}.batch_size", f"must be >= 1, got {self.batch_size}")
        check(bool(self.seeds), f"{where}.seeds", "list at least one seed, e.g. [42]")
        check(all(s >= 0 for s in self.seeds), f"{where}.seeds", f"seeds must be >= 0, got {self.seeds}")
        check(len(set(self.seeds)) == len(self.seeds), f"{where}.seeds",
              f"seeds must be distinct, got {self.seeds}")
        check(self.max_batches_per_epoch >= 0, f"{where}.max_batches_per_epoch",
              f"must be >= 0 (0 = whole epochs), got {self.max_batches_per_epoch}")
        check(self.l2 >= 0, f"{where}.l2", f"must be >= 0 (0 = no penalty), got {self.l2}")

    @property
    def seed(self) -> int:
        """The primary run's seed (the first of ``seeds``)."""
        return self.seeds[0]


@dataclass
class ModelParams:
    """A registered builder, where its weights start from, and its keyword arguments.

    ``normalize`` None takes the builder's declared default (:attr:`effective_normalize`).
    ``pretrained``: false trains from scratch; true starts from the builder's ImageNet weights
    and fails when they cannot be found; ``fallback_scratch`` trains from scratch then (the train
    metrics record which happened). ``weights_file`` names a local copy of those weights.
    """

    builder: str
    normalize: Literal["half", "imagenet", "unit"] | None = None
    pretrained: bool | Literal["fallback_scratch"] = False
    weights_file: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        error = check_builder(self.builder, self.kwargs, where)
        if error:
            raise ParamsError(error)
        weights = builder_specs()[self.builder].weights
        check(weights is not None or (self.pretrained is False and not self.weights_file), f"{where}.pretrained",
              f"builder {self.builder} has no pretrained weights; set pretrained: false and no weights_file "
              f"(got pretrained {self.pretrained!r}, weights_file {self.weights_file!r})")
        check(not self.weights_file or self.pretrained is not False, f"{where}.weights_file",
              f"{self.weights_file!r} is set but pretrained is false; set pretrained: true (or fallback_scratch) "
              f"or remove weights_file")

    @property
    def effective_normalize(self) -> str:
        """``normalize``, or the builder's declared default when it is None."""
        return self.normalize or builder_specs()[self.builder].normalize


@dataclass
class PublishedResult:
    """A report's own number, shown beside ours in the leaderboard (never used in training)."""

    report: str
    dataset: str
    test_set: str = "test"
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class VariantParams:
    """A classifier variant: data, not code (``model.builder`` names registered code)."""

    model: ModelParams
    prepared_size: int             # side of the prepared array it trains, validates and is evaluated on
    train: dict[str, Any] = field(default_factory=dict)   # overrides merged over ``train``
    published: list[PublishedResult] = field(default_factory=list)
    description: str = ""
    # Dotted keys of this variant (prepared_size, train.epochs, model.pretrained, ...) -> the
    # report's value wherever the demo scale differs; presets apply them (deepfake_detection.presets).
    paper: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- GANs (stage train_gan)


@dataclass
class FidParams:
    """FID (pytorch-fid's Inception pool3 features) of each GAN variant against held-out real faces."""

    n_real: int = 128        # held-out real faces used (a seeded subset when there are more)
    n_fake: int = 64         # samples generated per variant
    n_reference: int = 64    # faces per fake source for the reference rows (fid_reference stage)
    batch_size: int = 50
    # auto: the Gram-matrix route below 2048 samples, pytorch-fid's sqrtm from there (same value;
    # evaluation.fid.frechet_distance_gram); or force one of them
    method: Literal["auto", "pytorch_fid", "gram"] = "auto"

    def validate(self, where: str) -> None:
        for key in ("n_real", "n_fake", "n_reference"):
            check(getattr(self, key) >= 2, f"{where}.{key}", f"must be >= 2 (a covariance needs two samples), "
                                                             f"got {getattr(self, key)}")
        check(self.batch_size >= 1, f"{where}.batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class GanParams:
    """What every generative GAN variant shares: its real faces, their 75/25 split and the FID setup.

    The real faces (label 0) of ``datasets`` are split by group (faces of one group stay on one
    side; ``gan.data.real_split``): 1 - ``holdout`` train the generative variants, ``holdout`` is
    the FID reference. One split for all variants, so their FIDs compare.
    """

    datasets: list[str]
    prepared_size: int = 64
    holdout: float = 0.25
    seed: int = 42
    fid: FidParams = field(default_factory=FidParams)
    # a report's FID of a fake source of the data (``<dataset>/<generator>`` as the reference rows
    # name it) against real faces, shown beside ours: {report, dataset: source, metrics: {fid}}
    published_reference: list[PublishedResult] = field(default_factory=list)

    def validate(self, where: str) -> None:
        check(bool(self.datasets), f"{where}.datasets", "name at least one dataset whose real faces train the GANs")
        check(0 < self.holdout < 1, f"{where}.holdout", f"must be in (0, 1), got {self.holdout}")
        check(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}")


@dataclass
class GanNetParams:
    """A registered GAN builder (``gan.nets``) and its keyword arguments."""

    builder: str
    kwargs: dict[str, Any] = field(default_factory=dict)


GAN_KINDS = ("generative", "anomaly", "hybrid")


@dataclass
class GanVariantParams:
    """A GAN variant (stage ``train_gan@<name>``): networks, loss and schedule, as data.

    ``kind``: ``generative`` (seed 002: trained on ``gan.datasets``' real training faces, judged
    by FID), ``anomaly`` (seed 000: trained on the real faces of ``datasets``' train split; the
    discriminator's realness scores the test sets), ``hybrid`` (seed 004: the discriminator is a
    real/fake classifier trained on ``datasets``' labelled faces plus generated ones, weighted
    BCE). Anomaly and hybrid variants are evaluated by the evaluate stage like the classifiers.
    """

    kind: Literal["generative", "anomaly", "hybrid"]
    generator: GanNetParams
    discriminator: GanNetParams
    prepared_size: int             # side of the prepared faces it trains on (and is scored on)
    loss: Literal["bce", "wgan_gp"] = "bce"
    real_label: float = 1.0        # < 1: one-sided label smoothing of the discriminator's real targets
    n_critic: int = 1              # discriminator steps per generator step (WGAN-GP: 5 in Gulrajani et al.)
    gp_weight: float = 10.0        # lambda of the gradient penalty (wgan_gp)
    epochs: int = 2
    batch_size: int = 64
    g_optimizer: OptimizerParams = field(default_factory=OptimizerParams)
    d_optimizer: OptimizerParams = field(default_factory=OptimizerParams)
    seed: int = 42
    sample_grid: int = 16          # fixed latents drawn into each epoch's sample grid (a square number)
    max_batches_per_epoch: int = 0   # 0: whole epochs (tiny test runs set it)
    # anomaly / hybrid only: the labelled datasets (train split trains, val selects and sets the threshold)
    datasets: list[str] = field(default_factory=list)
    select: Literal["last", "best_val_auc"] = "last"
    threshold_rule: Literal["youden", "f1", "eer", "fixed_0.5"] = "youden"
    # hybrid only: the discriminator's ImageNet start (as model.pretrained of the classifiers)
    pretrained: bool | Literal["fallback_scratch"] = False
    weights_file: str = ""
    pos_weight: float = 0.0        # hybrid weighted BCE: weight of fake terms; 0: n_real / n_fake of a batch
    description: str = ""
    paper: dict[str, Any] = field(default_factory=dict)
    published: list[PublishedResult] = field(default_factory=list)

    def validate(self, where: str) -> None:
        for role, net in (("generator", self.generator), ("discriminator", self.discriminator)):
            error = check_gan_net(net.builder, net.kwargs, role, f"{where}.{role}")
            if error:
                raise ParamsError(error)
        check(0 < self.real_label <= 1, f"{where}.real_label", f"must be in (0, 1], got {self.real_label}")
        check(self.n_critic >= 1, f"{where}.n_critic", f"must be >= 1, got {self.n_critic}")
        check(self.gp_weight >= 0, f"{where}.gp_weight", f"must be >= 0, got {self.gp_weight}")
        check(self.epochs >= 1, f"{where}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 2, f"{where}.batch_size", f"must be >= 2, got {self.batch_size}")
        side = int(round(self.sample_grid ** 0.5))
        check(self.sample_grid >= 1 and side * side == self.sample_grid, f"{where}.sample_grid",
              f"must be a square number (16, 64), got {self.sample_grid}")
        check(self.max_batches_per_epoch >= 0, f"{where}.max_batches_per_epoch", "must be >= 0")
        check(self.prepared_size >= 8, f"{where}.prepared_size", f"must be >= 8, got {self.prepared_size}")
        specs = gan_net_specs()
        pixels = {specs[self.generator.builder].pixels, specs[self.discriminator.builder].pixels}
        check(len(pixels) == 1, f"{where}.discriminator.builder",
              f"{self.discriminator.builder} expects pixels {specs[self.discriminator.builder].pixels} but "
              f"{self.generator.builder} makes {specs[self.generator.builder].pixels}; pair nets of one pixel range")
        check(self.loss == "bce" or self.kind == "generative", f"{where}.loss",
              f"{self.kind} variants train with bce (their discriminator is a classifier), got {self.loss}")
        check(self.real_label == 1 or self.loss == "bce", f"{where}.real_label",
              "label smoothing applies to the bce loss only; set real_label: 1.0 for wgan_gp")
        if self.kind == "generative":
            check(not self.datasets, f"{where}.datasets",
                  "generative variants train on gan.datasets (one real split for comparable FIDs); remove it")
        else:
            check(bool(self.datasets), f"{where}.datasets", f"{self.kind} variants need labelled datasets "
                                                            f"(train split trains, val selects)")
            check(self.discriminator.builder in CLASSIFIER_OF, f"{where}.discriminator.builder",
                  f"{self.kind} variants are scored by evaluate as classifiers; use one of {sorted(CLASSIFIER_OF)}")
            size_kw = CLASSIFIER_OF.get(self.discriminator.builder, (None, None))[1]
            check(size_kw is None or self.discriminator.kwargs.get(size_kw, self.prepared_size) == self.prepared_size,
                  f"{where}.discriminator.kwargs.{size_kw}",
                  f"must equal prepared_size {self.prepared_size} (or be left out): evaluate scores the prepared faces")
        check(self.select == "last" or self.kind != "generative", f"{where}.select",
              "generative variants have no validation faces; use select: last")
        weights = specs[self.discriminator.builder].weights
        check(weights is not None or (self.pretrained is False and not self.weights_file), f"{where}.pretrained",
              f"{self.discriminator.builder} has no pretrained weights; set pretrained: false and no weights_file")
        check(self.pos_weight >= 0, f"{where}.pos_weight", f"must be >= 0 (0 = balance each batch), got {self.pos_weight}")


@dataclass
class TestSetParams:
    dataset: str
    split: str

    def validate(self, where: str) -> None:
        check(bool(self.split), f"{where}.split", "name a manifest split (e.g. test)")


@dataclass
class BootstrapParams:
    """Group bootstrap of the test metrics (deepfake_detection.evaluation.bootstrap)."""

    resamples: int = 1000
    seed: int = 0

    def validate(self, where: str) -> None:
        check(self.resamples >= 1, f"{where}.resamples", f"must be >= 1, got {self.resamples}")
        check(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}")


@dataclass
class EvaluateParams:
    test_sets: dict[str, TestSetParams]
    batch_size: int = 128
    bootstrap: BootstrapParams = field(default_factory=BootstrapParams)

    def validate(self, where: str) -> None:
        check(bool(self.test_sets), f"{where}.test_sets", "define at least one test set")
        check(self.batch_size >= 1, f"{where}.batch_size", f"must be >= 1, got {self.batch_size}")


TRAINED_DETECTOR = "yolo"   # face_detectors key of the detector the faces_yolo stages use


@dataclass
class FaceStagesParams:
    """Which faces stage crops each enabled source (each in exactly one list).

    DVC cannot filter a ``foreach``, so the sources whose crops wait for the trained detector
    are spelled out; :meth:`Params.validate` checks both lists against the rule.
    """

    faces: list[str] = field(default_factory=list)        # faces@<source>
    faces_yolo: list[str] = field(default_factory=list)   # faces_yolo@<source>, after train_face_detector@yolo


@dataclass
class ComputeParams:
    """How model stages compute (runtime.configure_compute): pinned for bit-reproducible runs."""

    threads: int = 2                   # intra-op threads; the result depends on it, so it is fixed
    cpu_isa: Literal["avx2", "native"] = "avx2"   # avx2: same bits on any AVX2 CPU; native: fastest
    deterministic: bool = True         # deterministic algorithms, cuDNN deterministic, no autotune

    def validate(self, where: str) -> None:
        check(self.threads >= 0, f"{where}.threads", f"must be >= 0 (0 = torch's default), got {self.threads}")


@dataclass
class VerifyParams:
    """``make verify``: fresh metrics against the committed ones (deepfake_detection.verify).

    Metrics of ``data_stages`` (and their outputs' hashes in dvc.lock) must match exactly; a
    model-stage metric may differ by the absolute ``tolerances`` of the first glob that matches
    its key, and must match exactly when none does.
    """

    data_stages: list[str] = field(default_factory=lambda: ["download", "faces", "split", "prepare"])
    tolerances: dict[str, float] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for key, value in self.tolerances.items():
            check(value >= 0, f"{where}.tolerances.{key}", f"must be >= 0, got {value}")


@dataclass
class Params:
    sources: dict[str, SourceParams]
    enabled_sources: list[str]
    faces: FacesParams
    split: SplitParams
    prepare: PrepareParams
    train: TrainParams
    variants: dict[str, VariantParams]
    evaluate: EvaluateParams
    # faces stage of each enabled source: faces@<s> (no trained model) or faces_yolo@<s>
    face_stages: FaceStagesParams = field(default_factory=FaceStagesParams)
    # YOLO face detectors this pipeline trains (train_face_detector@<name>): {} or {yolo: {...}}
    face_detectors: dict[str, dict[str, Any]] = field(default_factory=dict)   # faces.yolo.FaceDetectorTrainParams
    compute: ComputeParams = field(default_factory=ComputeParams)
    verify: VerifyParams = field(default_factory=VerifyParams)
    # GANs (stage train_gan@<name>); gan holds what the generative variants share
    gan: GanParams | None = None
    gan_variants: dict[str, GanVariantParams] = field(default_factory=dict)

    def face_detector_params(self, name: str = TRAINED_DETECTOR):
        """The training config of ``face_detectors.<name>`` (stage ``train_face_detector@<name>``)."""
        from .faces.yolo import FaceDetectorTrainParams

        if name not in self.face_detectors:
            raise ParamsError(f"face_detectors: no detector {name!r} to train; defined: {sorted(self.face_detectors)}")
        return from_dict(FaceDetectorTrainParams, self.face_detectors[name], f"face_detectors.{name}")

    def needs_trained_yolo(self, source: str) -> bool:
        """Whether faces@``source`` crops with the YOLO detector this pipeline trains.

        True when ``faces.detector.backend`` is yolo, ``faces.detector.yolo.weights`` names no
        detector trained elsewhere, and one of the source's datasets has ``crop: detector`` (the
        per-source form of ``faces.detectors.needs_trained_yolo``).
        """
        from .faces.detectors import uses_trained_yolo

        return uses_trained_yolo(self.faces.detector_config(),
                                 [d.crop for d in self.sources[source].datasets.values()])

    def _validate_face_stages(self) -> None:
        """face_stages partitions enabled_sources by the rule; face_detectors trains what it needs."""
        stages = self.face_stages
        for name in stages.faces + stages.faces_yolo:
            check(name in self.enabled_sources, "face_stages",
                  f"{name!r} is not in enabled_sources {self.enabled_sources}; remove it from face_stages")
        for name in self.enabled_sources:
            uses = self.needs_trained_yolo(name)
            rule = ("faces.detector.backend is yolo, faces.detector.yolo.weights is empty and it has a dataset "
                    "with crop: detector")
            if uses:
                check(name in stages.faces_yolo and name not in stages.faces, "face_stages.faces_yolo",
                      f"add {name!r} (and remove it from face_stages.faces): it crops with the YOLO trained "
                      f"here ({rule})")
            else:
                check(name in stages.faces and name not in stages.faces_yolo, "face_stages.faces",
                      f"add {name!r} (and remove it from face_stages.faces_yolo): it needs no trained YOLO "
                      f"(that takes: {rule})")
        unknown = sorted(set(self.face_detectors) - {TRAINED_DETECTOR})
        check(not unknown, "face_detectors", f"unknown detector(s) {unknown}; the faces_yolo stages use "
              f"{TRAINED_DETECTOR!r} (data/models/face_detector.pt)")
        if stages.faces_yolo:
            check(TRAINED_DETECTOR in self.face_detectors, f"face_detectors.{TRAINED_DETECTOR}",
                  f"missing: face_stages.faces_yolo {stages.faces_yolo} crops with it; define its training "
                  f"config (source, coco_subdir, epochs, ...; see faces.yolo.FaceDetectorTrainParams)")
            spelled = {"source", "coco_subdir", "train_split", "eval_split"}   # dvc.yaml interpolates them
            missing = sorted(spelled - set(self.face_detectors[TRAINED_DETECTOR]))
            check(not missing, f"face_detectors.{TRAINED_DETECTOR}",
                  f"set {missing} explicitly: dvc.yaml builds the stage's paths from them")
            fd = self.face_detector_params()
            check(fd.source in self.enabled_sources, f"face_detectors.{TRAINED_DETECTOR}.source",
                  f"{fd.source!r} is not in enabled_sources {self.enabled_sources}; name an enabled source "
                  f"with COCO boxes (train_face_detector reads data/raw/<source>)")
        else:
            check(not self.face_detectors, "face_detectors",
                  f"remove {sorted(self.face_detectors)} (set face_detectors: {{}}): face_stages.faces_yolo is "
                  f"empty, so no faces stage would use the trained detector")

    def _validate_prepared_sizes(self) -> None:
        """prepare.sizes is exactly the set of the variants' prepared_size (dvc.yaml's foreach)."""
        by_size: dict[int, list[str]] = {}
        for name, variant in self.variants.items():
            check(variant.prepared_size >= 8, f"variants.{name}.prepared_size",
                  f"must be >= 8, got {variant.prepared_size}")
            by_size.setdefault(variant.prepared_size, []).append(name)
        for name, gv in self.gan_variants.items():
            by_size.setdefault(gv.prepared_size, []).append(f"gan_variants.{name}")
        if self.gan is not None:     # the fid_reference stage reads data/prepared/<gan.prepared_size>
            by_size.setdefault(self.gan.prepared_size, []).append("gan")
        for size, names in sorted(by_size.items()):
            check(size in self.prepare.sizes, "prepare.sizes",
                  f"add {size}: variant(s) {sorted(names)} set prepared_size {size} (sizes: {self.prepare.sizes})")
        unused = [size for size in self.prepare.sizes if size not in by_size]
        check(not unused, "prepare.sizes",
              f"remove {unused}: no variant sets that prepared_size (used: {sorted(by_size)})")

    def _validate_paper_deltas(self) -> None:
        """Each ``variants.<v>.paper`` key names a real key of the variant, and with all the
        deltas applied the variant and its merged train config still validate. (Deltas are
        checked together: one alone may clash with a demo value, e.g. crop 224 > eval_resize 48.)"""
        defaults = dataclasses.asdict(self.train)
        for name, variant in self.variants.items():
            raw = dataclasses.asdict(variant)
            del raw["paper"]
            where = f"variants.{name}.paper"
            applied = apply_deltas(raw, variant.paper, where)   # checks the keys' syntax
            _check_paper_keys(VariantParams, variant.paper, where)
            _check_variant(applied, defaults, f"variants.{name}", variant.paper)

    def validate(self, where: str) -> None:
        for name in self.enabled_sources:
            check(name in self.sources, "enabled_sources",
                  f"{name!r} is not defined under 'sources' (defined: {sorted(self.sources)})")
        datasets = self.dataset_ids()
        for name in self.train.datasets:
            check(name in datasets, "train.datasets",
                  f"{name!r} is not provided by any enabled source (available: {sorted(datasets)})")
        for tname, ts in self.evaluate.test_sets.items():
            check(ts.dataset in datasets, f"evaluate.test_sets.{tname}.dataset",
                  f"{ts.dataset!r} is not provided by any enabled source (available: {sorted(datasets)})")
        for name in self.enabled_sources:
            self.source_options(name)   # each download kind validates its own options
        self._validate_face_stages()
        check(bool(self.variants) or any(gv.kind != "generative" for gv in self.gan_variants.values()), "variants",
              "define at least one variant (or an anomaly / hybrid GAN variant) for evaluate to score")
        self._validate_prepared_sizes()
        for vname in self.variants:
            for ds in self.variant_train(vname).datasets:   # validates the merged training config
                check(ds in datasets, f"variants.{vname}.train.datasets",
                      f"{ds!r} is not provided by any enabled source (available: {sorted(datasets)})")
        self._validate_paper_deltas()
        self._validate_gans(datasets)

    def _validate_gans(self, datasets: dict[str, str]) -> None:
        """Datasets exist, generative variants have ``gan``, names do not clash with classifiers,
        and every GAN variant's paper deltas name its keys and still validate."""
        clash = sorted(set(self.gan_variants) & set(self.variants))
        check(not clash, "gan_variants", f"{clash} also name classifier variants; rename one (both would write "
                                         f"data/models/<name>, and evaluate and the leaderboard key models by name)")
        check(not self.gan_variants or self.gan is not None, "gan",
              f"missing: GAN variants {sorted(self.gan_variants)} need its datasets, holdout and fid settings "
              f"(the FID of every variant is taken against gan's held-out real faces)")
        if self.gan is not None:
            for ds in self.gan.datasets:
                check(ds in datasets, "gan.datasets",
                      f"{ds!r} is not provided by any enabled source (available: {sorted(datasets)})")
        for name, gv in self.gan_variants.items():
            for ds in gv.datasets:
                check(ds in datasets, f"gan_variants.{name}.datasets",
                      f"{ds!r} is not provided by any enabled source (available: {sorted(datasets)})")
            raw = dataclasses.asdict(gv)
            del raw["paper"]
            where = f"gan_variants.{name}.paper"
            applied = apply_deltas(raw, gv.paper, where)
            _check_paper_keys(GanVariantParams, gv.paper, where)
            try:
                from_dict(GanVariantParams, applied, f"gan_variants.{name}")
            except ParamsError as exc:
                raise ParamsError(f"{where}: with the paper deltas, {exc}") from None

    def scored_variants(self) -> dict[str, tuple[int, str]]:
        """Every model the evaluate stage scores: name -> (prepared_size, threshold_rule).

        The classifier variants and the anomaly / hybrid GAN variants (their discriminators).
        """
        out = {name: (v.prepared_size, self.variant_train(name).threshold_rule) for name, v in self.variants.items()}
        out.update({name: (gv.prepared_size, gv.threshold_rule) for name, gv in self.gan_variants.items()
                    if gv.kind != "generative"})
        return out

    def source_options(self, name: str):
        """The typed ``options`` of source ``name`` (validated by its download kind)."""
        src = self.sources[name]
        if src.kind == "demo":
            from .data.demo import DemoOptions

            return from_dict(DemoOptions, src.options, f"sources.{name}.options")
        from .data.sources import parse_options

        return parse_options(name, src.kind, src.options)

    def dataset_ids(self) -> dict[str, str]:
        """Dataset id -> the enabled source that provides it."""
        return {ds: src for src in self.enabled_sources for ds in self.sources[src].datasets}

    def variant_train(self, name: str) -> TrainParams:
        """The training config of variant ``name``: ``train`` defaults + its overrides."""
        if name not in self.variants:
            raise ParamsError(f"variants: no variant {name!r}; defined: {sorted(self.variants)}")
        merged = deep_merge(dataclasses.asdict(self.train), self.variants[name].train)
        return from_dict(TrainParams, merged, f"variants.{name}.train")


def _check_key_names(tp: Any, parts: list[str], where: str) -> None:
    """ParamsError naming ``where`` unless the dotted ``parts`` name a key below dataclass ``tp``.

    A variant's ``train`` (raw overrides) is checked against :class:`TrainParams`; keys below a
    mapping of free keys (``model.kwargs``) are left to the value check (the builder's arguments).
    """
    for depth, part in enumerate(parts):
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            check(part in hints, where, f"{'.'.join(parts[:depth]) or 'a variant'} has no key {part!r}; "
                                        f"its keys are {sorted(hints)}")
            tp = TrainParams if (tp is VariantParams and part == "train") else hints[part]
        elif typing.get_origin(tp) is dict or tp is Any:
            return
        else:
            raise ParamsError(f"{where}: {'.'.join(parts[:depth])} is a value, not a mapping with key {part!r}")


def _check_paper_keys(tp: Any, deltas: dict, where: str) -> None:
    """ParamsError naming ``<where>.<key>`` unless every dotted key of ``deltas`` names a key of the
    variant dataclass ``tp`` other than ``paper`` itself."""
    for key in deltas:
        check(key.split(".")[0] != "paper", f"{where}.{key}", "a paper delta sets the variant's own keys, not paper itself")
        _check_key_names(tp, key.split("."), f"{where}.{key}")


def paper_differences(view: dict, deltas: dict) -> str:
    """``key ours (paper theirs); ...`` for each ``paper`` delta, ``ours`` read from ``view`` (the
    variant as a dict) at the dotted key: where a run is not the report's setup (demo scale). Empty
    at paper scale (a preset clears the deltas)."""
    parts = []
    for key, theirs in deltas.items():
        ours = view
        for part in key.split("."):
            ours = ours[part]
        parts.append(f"{key} {list(ours) if isinstance(ours, tuple) else ours} (paper {theirs})")
    return "; ".join(parts)


def _check_variant(raw: dict, train_defaults: dict, variant_key: str, deltas: dict) -> None:
    """Unless ``raw`` is a valid variant with a valid merged train config, a ParamsError naming
    the paper delta the error is about (``<variant_key>.paper.<key>``; just ``.paper`` when the
    error lies at a key no delta sets) and the error itself."""
    try:
        variant = from_dict(VariantParams, raw, variant_key)
        from_dict(TrainParams, deep_merge(train_defaults, variant.train), f"{variant_key}.train")
    except ParamsError as exc:
        at = str(exc).split(":")[0].removeprefix(f"{variant_key}.")
        key = next((k for k in deltas if k == at or k.startswith(f"{at}.") or at.startswith(f"{k}.")), None)
        raise ParamsError(f"{variant_key}.paper{'.' + key if key else ''}: with the paper deltas, {exc}") from None


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (what params.yaml holds); ParamsError names the dotted key."""
    try:
        return from_dict(Params, raw, "")
    except ParamsError as exc:
        raise ParamsError(str(exc).lstrip(".").removeprefix(": ")) from None   # "" is the top level


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; raise ParamsError naming the key on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root or pass --params)")
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
