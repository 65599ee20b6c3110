"""Kaggle datasets through the documented REST endpoint, with our own resumable download.

``GET {endpoint}/api/v1/datasets/download/{owner}/{slug}`` with HTTP basic auth answers with a
redirect to a signed storage URL that serves the dataset as one zip. ``kagglehub`` is not used:
its host comes from a fixed table chosen by ``KAGGLE_API_ENVIRONMENT`` (no configurable base URL, so
no loopback tests), it speaks the kagglesdk RPC protocol rather than this documented endpoint,
and it writes into its own cache outside the pipeline's outputs. ``requests`` drops the
Authorization header when the redirect leaves the API host, so credentials never reach storage.

Credentials come only from ``KAGGLE_USERNAME``/``KAGGLE_KEY`` or ``kaggle.json`` in
``$KAGGLE_CONFIG_DIR`` (default ``~/.kaggle``); they are never logged or written anywhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from requests.auth import HTTPBasicAuth

from ...params import check
from .common import CommonOptions, install, summary
from .http import DownloadError, download

DEFAULT_ENDPOINT = "https://www.kaggle.com"


@dataclass(kw_only=True)
class KaggleOptions(CommonOptions):
    dataset: str                        # "<owner>/<slug>" as in the dataset's address
    version: int | None = None          # dataset version number; None: the latest
    endpoint: str = DEFAULT_ENDPOINT    # API base (tests point it at 127.0.0.1)

    def validate(self, where: str) -> None:
        super().validate(where)
        check(re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", self.dataset) is not None,
              f"{where}.dataset", f"must look like 'owner/slug', got {self.dataset!r}")
        check(self.version is None or self.version >= 1, f"{where}.version", "must be >= 1")
        check(self.endpoint.startswith(("http://", "https://")), f"{where}.endpoint",
              f"must be an http(s) URL, got {self.endpoint!r}")


def _config_dir() -> tuple[Path, str]:
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return Path(env).expanduser(), str(Path(env) / "kaggle.json")
    return Path.home() / ".kaggle", "~/.kaggle/kaggle.json"


def credentials(log: Callable[[str], None] = print) -> HTTPBasicAuth:
    """Basic auth from the environment or kaggle.json; a DownloadError says what to set."""
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if user and key:
        return HTTPBasicAuth(user, key)
    folder, shown = _config_dir()
    path = folder / "kaggle.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            raise DownloadError(f"kaggle: {shown} is not valid JSON; it must hold "
                                '{"username": "...", "key": "..."}') from None
        missing = [k for k in ("username", "key") if not isinstance(data, dict) or not data.get(k)]
        if missing:
            raise DownloadError(f"kaggle: {shown} lacks {' and '.join(repr(k) for k in missing)}")
        if os.name == "posix" and path.stat().st_mode & 0o077:
            log(f"kaggle: warning: {shown} is readable by other users; run chmod 600 on it")
        return HTTPBasicAuth(data["username"], data["key"])
    if user or key:
        missing = "KAGGLE_KEY" if user else "KAGGLE_USERNAME"
        raise DownloadError(f"kaggle: incomplete credentials: {missing} is not set (set both "
                            f"KAGGLE_USERNAME and KAGGLE_KEY, or create {shown})")
    raise DownloadError(f"kaggle: no credentials: set KAGGLE_USERNAME and KAGGLE_KEY or create {shown} "
                        "(its folder can be moved with KAGGLE_CONFIG_DIR)")


def fetch(source: str, opts: KaggleOptions, dest: Path, archive_dir: Path,
          log: Callable[[str], None]) -> dict:
    owner, slug = opts.dataset.split("/")
    url = f"{opts.endpoint.rstrip('/')}/api/v1/datasets/download/{owner}/{slug}"
    if opts.version is not None:
        url += f"?datasetVersionNumber={opts.version}"
    name = f"{owner}__{slug}" + (f"__v{opts.version}" if opts.version else "") + ".zip"
    hints = {
        401: "the credentials were refused: check KAGGLE_USERNAME/KAGGLE_KEY or kaggle.json",
        403: f"access denied: open the dataset page of {opts.dataset} on Kaggle and accept its terms",
        404: f"no dataset {opts.dataset!r} (version {opts.version or 'latest'}): check "
             f"sources.{source}.options.dataset",
    }

    def get(path: Path) -> dict:
        # Credentials are read only when something must be downloaded.
        return download(url, path, auth=credentials(log), timeout=opts.timeout, retries=opts.retries,
                        status_hints=hints, log=log, name=name)

    entry = install(name, dest=dest, archive_dir=archive_dir, fetch=get, published=None, want="",
                    options=opts, log=log)
    return summary(source, "kaggle", [entry], dataset=opts.dataset, version=opts.version)
