"""Stage ``train_gan@<variant>``: train one GAN variant, draw its samples, and measure its FID.

The variant (``gan_variants.<name>`` in params.yaml) names a registered generator and
discriminator (``deepfake_detection.gan.nets``) and its loss and schedule; the loops are
``deepfake_detection.gan.train.fit_gan``. Its faces come from the prepared array of its
``prepared_size``:

- ``generative``: the training side of ``gan``'s group-aware 75/25 split of the real faces of
  ``gan.datasets`` (``gan.data.real_split``, drawn once by the fid_reference stage, whose output
  holds it);
- ``anomaly``: the real faces of the train split of its ``datasets``; the val split (both labels)
  scores the discriminator as a realness detector each epoch;
- ``hybrid``: the train split of its ``datasets``, real and fake, plus generated faces.

Writes ``--out`` (one folder, renamed into place): ``generator.pt`` and ``discriminator.pt`` (state
dicts and what rebuilds them), ``samples/epoch_<e>.png`` (the grid at fixed latents after each
epoch); for anomaly and hybrid variants also the classifier files the evaluate stage reads, as a
train stage writes them: ``model.pt`` (the selected discriminator under the classifier builder of
``gan_specs.CLASSIFIER_OF``), ``val_scores.csv`` and ``seeds/seeds.json``. ``--samples`` gets the last
grid as a small JPEG (committed, shown by ``dvc plots`` and the report); ``--live`` the per-epoch
curves (dvclive: D and G losses, the mean |gradient| of G's last layer, the penalty, validation);
``--metrics`` the summary with the FID of ``gan.fid.n_fake`` samples against the held-out real
faces' Inception features (``--fid-reference``, written by the fid_reference stage).

A checkpoint after each epoch (``--checkpoint``, not an output) lets an interrupted run resume
bit for bit under the same configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import time
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from deepfake_detection.data.batches import BatchReader  # noqa: E402
from deepfake_detection.data.prepared import load_prepared, select_rows  # noqa: E402
from deepfake_detection.evaluation.fid import activations, fid_from_activations, fid_network, inception_weights  # noqa: E402
from deepfake_detection.evaluation.metrics import roc_auc  # noqa: E402
from deepfake_detection.gan.nets import create_gan_net, gan_net_info  # noqa: E402
from deepfake_detection.gan.train import HISTORY_KEYS, fit_gan, fixed_latents, sample  # noqa: E402
from deepfake_detection.gan_specs import CLASSIFIER_OF  # noqa: E402
from deepfake_detection.io import atomic_path, save_torch, write_csv, write_image_rgb, write_json  # noqa: E402
from deepfake_detection.models.weights import WeightsUnavailable, pretrained_weights  # noqa: E402
from deepfake_detection.params import AugmentParams, load_params, paper_differences  # noqa: E402
from deepfake_detection.runtime import configure_compute, log, pick_device  # noqa: E402
from deepfake_detection.training.checkpoints import config_hash  # noqa: E402
from deepfake_detection.training.curves import log_epoch, open_live  # noqa: E402
from deepfake_detection.training.engine import Runtime  # noqa: E402

FID_SEED_OFFSET = 1   # the FID samples' latents: seed + 1, apart from the grid's (seed)
SAMPLES_JPEG_QUALITY = 90


def training_rows(params, name: str, index: pd.DataFrame, reference: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(train rows, val rows or None) of the variant's kind (module docstring); a generative
    variant's are the training side of the real split the fid_reference stage drew (``reference``)."""
    gv = params.gan_variants[name]
    if gv.kind == "generative":
        return reference["train_rows"], None
    train = select_rows(index, gv.datasets, "train")
    if gv.kind == "anomaly":
        train = train[index.set_index("row").loc[train, "label"].to_numpy() == 0]
    return np.sort(train), np.sort(select_rows(index, gv.datasets, "val"))


def grid_image(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 3, S, S) samples (n square) -> one (H, W, 3) grid image, 2 px black gaps."""
    from torchvision.utils import make_grid

    nrow = int(round(len(images) ** 0.5))
    return make_grid(torch.from_numpy(images), nrow=nrow, padding=2, pad_value=0).permute(1, 2, 0).numpy()


def net_file(net, builder: str, kwargs: dict, variant: str, epoch: int, **extra) -> dict:
    """What generator.pt / discriminator.pt hold: tensors and plain data only (weights_only loads)."""
    return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "builder": builder,
            "kwargs": dict(kwargs), "pixels": gan_net_info(builder).pixels, "variant": variant, "epoch": epoch,
            **extra}


def classifier_file(gv, name: str, state: dict, epoch: int, record: dict) -> dict:
    """The selected discriminator in the classifiers' model-file format (registry.load_trained_model)."""
    builder, size_kw = CLASSIFIER_OF[gv.discriminator.builder]
    kwargs = {k: v for k, v in gv.discriminator.kwargs.items() if k != size_kw}
    if builder == "dcgan_realness":
        state = {f"net.{k}": v for k, v in state.items()}   # the NegatedLogit wrapper's keys
    normalize = gan_net_info(gv.discriminator.builder).pixels    # "half" | "unit": the classifiers' names too
    return {"state_dict": state, "builder": builder, "kwargs": kwargs, "normalize": normalize, "head": "logit",
            "input_size": gv.prepared_size, "augment": dataclasses.asdict(AugmentParams()), "variant": name,
            "epoch": epoch, "seed": gv.seed, **record}


def measure_fid(g, fid_cfg, real: np.ndarray, pixels: str, seed: int, device) -> dict:
    """FID of ``fid_cfg.n_fake`` samples against the held-out real faces' activations ``real``."""
    z = fixed_latents(fid_cfg.n_fake, g.z_dim, seed + FID_SEED_OFFSET)
    weights, origin = inception_weights()
    fake = activations(sample(g, z, pixels, device).numpy(), fid_network(device, weights), fid_cfg.batch_size, device)
    out = fid_from_activations(real, fake, fid_cfg.method)
    return {**out, "fid": round(out["fid"], 4), "fid_inception": origin}


def write_outputs(args, gv, name: str, g, d, result, record: dict, val_ids) -> None:
    """The --out folder (renamed into place) and the last sample grid."""
    epoch = result.history[-1]["epoch"]
    with atomic_path(args.out, is_dir=True) as tmp:
        save_torch(tmp / "generator.pt", net_file(g, gv.generator.builder, gv.generator.kwargs, name, epoch))
        save_torch(tmp / "discriminator.pt", net_file(d, gv.discriminator.builder, gv.discriminator.kwargs, name,
                                                      epoch, **record))
        for row, grid in zip(result.history, result.grids):
            write_image_rgb(tmp / "samples" / f"epoch_{row['epoch']:03d}.png", grid_image(grid))
        if gv.kind != "generative":
            save_torch(tmp / "model.pt", classifier_file(gv, name, result.best_d_state, result.best_epoch, record))
            write_csv(tmp / "val_scores.csv", pd.DataFrame({"face_id": val_ids, "label": result.val_labels,
                                                            "score": result.val_scores.round(6)}))
            write_json(tmp / "seeds" / "seeds.json", {"seeds": []})
    write_image_rgb(args.samples, grid_image(result.grids[-1]), jpeg_quality=SAMPLES_JPEG_QUALITY)


def summary(gv, name: str, result, n_train: int, n_val: int, fid: dict, record: dict) -> dict:
    last = result.history[-1]
    out = {"variant": name, "kind": gv.kind, "generator": gv.generator.builder,
           "discriminator": gv.discriminator.builder, "loss": gv.loss, "epochs": gv.epochs,
           "batch_size": gv.batch_size, "scale": "demo" if gv.paper else "paper",
           "differs_from_paper": paper_differences(dataclasses.asdict(gv), gv.paper), "n_train": n_train,
           **{k: None if last[k] is None else round(float(last[k]), 6) for k in HISTORY_KEYS[1:]},
           **fid}
    if gv.kind != "generative":
        out.update({"n_val": n_val, "best_epoch": result.best_epoch, "select": gv.select, **record})
    return out


@stage_main("train_gan")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--prepared", required=True, type=Path, help="the prepare stage's folder of this variant's size")
    ap.add_argument("--fid-reference", required=True, type=Path, help="held-out real activations (fid_reference)")
    ap.add_argument("--out", required=True, type=Path, help="output folder (nets, per-epoch sample grids, ...)")
    ap.add_argument("--samples", required=True, type=Path, help="output: the last sample grid (JPEG)")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--live", required=True, type=Path, help="output folder of the dvclive curves")
    ap.add_argument("--timings", type=Path, help="seconds and images/s per epoch (JSON; not a metric)")
    ap.add_argument("--checkpoint", type=Path, help="resumable per-epoch checkpoint (scratch, not an output)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.variant not in params.gan_variants:
        raise SystemExit(f"train_gan: no GAN variant {args.variant!r} in gan_variants; "
                         f"defined: {sorted(params.gan_variants)}")
    gv = params.gan_variants[args.variant]
    log(f"train_gan: compute {configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)}")
    device = pick_device(args.device)
    rt = Runtime.for_device(device)
    images, index = load_prepared(args.prepared)
    with np.load(args.fid_reference) as ref:     # the real split and the held-out faces' activations
        reference = {key: ref[key] for key in ("train_rows", "activations")}
    train_rows, val_rows = training_rows(params, args.variant, index, reference)
    if len(train_rows) == 0 or (val_rows is not None and len(val_rows) == 0):
        what = "real train" if gv.kind == "anomaly" else "train"
        raise SystemExit(f"train_gan: {args.variant}: {len(train_rows)} {what} and "
                         f"{'-' if val_rows is None else len(val_rows)} val faces in {args.prepared}; both must be > 0 "
                         f"(check gan_variants.{args.variant}.datasets, or gan.datasets for generative variants)")
    labels = index["label"].to_numpy()
    batches = BatchReader(images, labels, train_rows, gv.batch_size, shuffle=True, seed=gv.seed,
                          drop_last=len(train_rows) > gv.batch_size, device=device)
    val = None if val_rows is None else BatchReader(images, labels, val_rows, gv.batch_size * 2, shuffle=False,
                                                    device=device)
    val_ids = None if val_rows is None else index.set_index("row").loc[val_rows, "face_id"].to_numpy()
    weights_path, record = None, {}
    if gv.kind == "hybrid":
        try:
            weights_path, record = pretrained_weights(args.variant, CLASSIFIER_OF[gv.discriminator.builder][0],
                                                      gv.pretrained, gv.weights_file,
                                                      where=f"gan_variants.{args.variant}")
        except WeightsUnavailable as exc:
            raise SystemExit(f"train_gan: {exc}") from None
    elif gv.kind == "anomaly":
        record = {"weights": "scratch", "weights_sha256": "", "weights_origin": ""}
    torch.manual_seed(gv.seed)   # the nets' initial weights
    g = create_gan_net(gv.generator.builder, **gv.generator.kwargs)
    d = create_gan_net(gv.discriminator.builder, weights_file=weights_path, **gv.discriminator.kwargs)
    pixels = gan_net_info(gv.generator.builder).pixels
    log(f"train_gan: {args.variant} ({gv.kind}, {gv.loss}): G {gv.generator.builder} "
        f"{sum(p.numel() for p in g.parameters()) / 1e6:.2f} M, D {gv.discriminator.builder} "
        f"{sum(p.numel() for p in d.parameters()) / 1e6:.2f} M params on {device}; {len(train_rows)} train"
        + ("" if val_rows is None else f" / {len(val_rows)} val") + f" faces at {images.shape[1]} px")
    data_hash = hashlib.sha256((args.prepared / "index.csv").read_bytes()).hexdigest()
    spec = {"variant": dataclasses.asdict(gv), "gan": dataclasses.asdict(params.gan),
            "prepared_size": int(images.shape[1]), "data": data_hash, "weights_sha256": record.get("weights_sha256")}
    live = open_live(args.live)
    start = time.perf_counter()
    result = fit_gan(g, d, batches, gv, gv.kind, pixels, rt, args.checkpoint, config_hash(spec),
                     fixed_z=fixed_latents(gv.sample_grid, g.z_dim, gv.seed), val=val,
                     auc_fn=roc_auc if val is not None else None, log=log,
                     on_epoch=lambda row: log_epoch(live, row, HISTORY_KEYS[1:]))
    live.end()
    log(f"train_gan: {args.variant}: {time.perf_counter() - start:.1f} s of training")
    fid = measure_fid(g, params.gan.fid, reference["activations"], pixels, gv.seed, device)
    log(f"train_gan: {args.variant}: FID {fid['fid']} ({fid['fid_n_fake']} samples vs {fid['fid_n_real']} "
        f"held-out real faces, {fid['fid_method']})" + (f"; {fid['fid_warning']}" if fid["fid_warning"] else ""))
    write_outputs(args, gv, args.variant, g, d, result, record, val_ids)
    if args.timings:
        write_json(args.timings, {"variant": args.variant, "device": str(device), "epochs": result.timings})
    write_json(args.metrics, summary(gv, args.variant, result, len(train_rows),
                                     0 if val_rows is None else len(val_rows), fid, record))
    if args.checkpoint:
        args.checkpoint.unlink(missing_ok=True)   # the run finished: nothing to resume


if __name__ == "__main__":
    main()
