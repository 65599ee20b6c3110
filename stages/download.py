"""Stage ``download@<source>``: fetch one source into ``data/raw/<source>``.

``demo`` generates the built-in synthetic data offline; ``kaggle``, ``zenodo`` and
``huggingface`` download the published datasets (credentials from the environment only);
``local`` links (or copies) a folder already on disk. A small JSON summary of what arrived is
written for review. Every failure is one line saying what to set or do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults(hub_offline=False)

from deepfake_detection.io import atomic_path, write_json, write_text  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log  # noqa: E402


@stage_main("download")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--summary", required=True, type=Path)
    ap.add_argument("--partial-dir", type=Path,
                    help="where archives and .part files wait (outside --out, which a runner may delete "
                         "before a rerun), so an interrupted download resumes")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.source not in params.sources:
        raise SystemExit(f"download: --source {args.source!r} is not defined under 'sources' in {args.params}")
    src = params.sources[args.source]
    if src.kind == "demo":
        from deepfake_detection.data.demo import generate_demo

        opts = params.source_options(args.source)
        with atomic_path(args.out, is_dir=True) as tmp:
            summary = generate_demo(tmp, opts)
    elif src.kind == "local":
        from deepfake_detection.data.sources import DownloadError, link_local

        # no request stamp: data/raw/<source> may be a link to the user's folder, never written into
        try:
            summary = link_local(args.source, params.source_options(args.source), args.out,
                                 [d.dir for d in src.datasets.values()], log=log)
        except DownloadError as exc:
            raise SystemExit(f"download: {exc}") from None
    else:
        from deepfake_detection.data.sources import CommonOptions, fetch_source

        # data/raw/<source> persists between runs (resume); files of an earlier, different
        # request (another dataset slug, record, version or file list) must not be ingested.
        stamp = args.out / ".request.json"
        transport = {f.name for f in dataclasses.fields(CommonOptions)}   # timeouts etc. change no data
        request = json.dumps({"kind": src.kind, "options": {k: v for k, v in src.options.items()
                                                             if k not in transport}}, sort_keys=True)
        if stamp.is_file() and stamp.read_text() != request:
            log(f"download: {args.source}: options changed since the last download; clearing {args.out}")
            shutil.rmtree(args.out)
        summary = fetch_source(args.source, src.kind, src.options, args.out, log=log,
                               archive_dir=args.partial_dir)
        if args.partial_dir and not params.source_options(args.source).keep_archives:
            shutil.rmtree(args.partial_dir, ignore_errors=True)   # done: nothing left to resume
        write_text(stamp, request)
    write_json(args.summary, {"source": args.source, "kind": src.kind, **summary})
    log(f"download: {args.source}: done -> {args.out}")


if __name__ == "__main__":
    main()
