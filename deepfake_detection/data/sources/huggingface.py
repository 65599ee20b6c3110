"""Hugging Face Hub files (``OpenRL/DeepFakeFace``: wiki/inpainting/insight/text2img zips).

``huggingface_hub.hf_hub_download`` does the transfer: it follows the Hub's redirect to its CDN
without forwarding the token, uses Xet storage when ``hf_xet`` is installed, and retries a dropped
connection with a ``Range`` request within the call. It does not hash what it downloaded (it only
compares the size), so after it returns we check the file against the ``X-Linked-Etag`` sha256
(LFS files) or git blob id (small files) that the Hub published, and delete it on a mismatch.
The revision is resolved to a commit by the first file's metadata request and every download is
pinned to that commit, so all files of one run come from one commit; it is part of the summary.

The token comes from ``HF_TOKEN`` only. Offline mode (``HF_HUB_OFFLINE``) makes the library
return cached files or fail vaguely; here it is a clear error instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from ...params import check
from .archive import archive_stem
from .common import CommonOptions, env_flag, install, summary
from .http import DownloadError, hash_file, verify_file

DEEPFAKEFACE_FILES = ["wiki.zip", "inpainting.zip", "insight.zip", "text2img.zip"]


@dataclass(kw_only=True)
class HuggingFaceOptions(CommonOptions):
    repo_id: str = "OpenRL/DeepFakeFace"
    repo_type: Literal["dataset", "model", "space"] = "dataset"
    files: list[str] = field(default_factory=lambda: list(DEEPFAKEFACE_FILES))
    revision: str = "main"
    endpoint: str | None = None         # None: $HF_ENDPOINT or the public Hub

    def validate(self, where: str) -> None:
        super().validate(where)
        check(re.fullmatch(r"[\w.-]+/[\w.-]+", self.repo_id) is not None, f"{where}.repo_id",
              f"must look like 'owner/name', got {self.repo_id!r}")
        check(len(self.files) > 0, f"{where}.files", "list at least one file")
        check(self.endpoint is None or self.endpoint.startswith(("http://", "https://")),
              f"{where}.endpoint", f"must be an http(s) URL, got {self.endpoint!r}")


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode() or env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def _explain(exc: Exception, what: str) -> DownloadError:
    from huggingface_hub import errors

    if isinstance(exc, (errors.GatedRepoError,)):
        hint = "the repository is gated: accept its conditions on its page and set HF_TOKEN"
    elif isinstance(exc, errors.RepositoryNotFoundError):
        hint = "repository not found or private: check repo_id/repo_type, or set HF_TOKEN if it is private"
    elif isinstance(exc, errors.RevisionNotFoundError):
        hint = "no such revision: check the revision option"
    elif isinstance(exc, errors.EntryNotFoundError):
        hint = "no such file in the repository: check the files option"
    elif isinstance(exc, errors.OfflineModeIsEnabled):
        hint = "offline mode is on: unset HF_HUB_OFFLINE to download"
    else:
        hint = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return DownloadError(f"huggingface: {what}: {hint}")


def fetch(source: str, opts: HuggingFaceOptions, dest: Path, archive_dir: Path,
          log: Callable[[str], None]) -> dict:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    if _offline():
        raise DownloadError(f"huggingface: offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), "
                            f"so {opts.repo_id} cannot be downloaded; unset it and run again")
    token: str | bool = os.environ.get("HF_TOKEN") or False   # never the token file or other sources
    entries, revision = [], opts.revision
    for filename in opts.files:
        what = f"{opts.repo_id}/{filename}@{revision}"
        try:
            meta = get_hf_file_metadata(
                hf_hub_url(opts.repo_id, filename, repo_type=opts.repo_type, revision=revision,
                           endpoint=opts.endpoint),
                token=token, timeout=opts.timeout, endpoint=opts.endpoint, retry_on_errors=True)
        except Exception as exc:  # the library raises many types; all become one clear error
            raise _explain(exc, what) from None
        if not meta.commit_hash or not meta.etag:
            raise DownloadError(f"huggingface: {what}: the server sent no X-Repo-Commit/ETag; is "
                                f"endpoint {opts.endpoint or '$HF_ENDPOINT'} a Hugging Face Hub?")
        revision = meta.commit_hash     # pin: every later file comes from the same commit
        etag = meta.etag.lower()
        published = f"sha256:{etag}" if re.fullmatch(r"[0-9a-f]{64}", etag) else f"etag:{etag}"

        def get(path: Path, filename=filename, meta=meta, etag=etag) -> dict:
            try:
                got = Path(hf_hub_download(opts.repo_id, filename, repo_type=opts.repo_type,
                                           revision=meta.commit_hash, local_dir=archive_dir,
                                           endpoint=opts.endpoint, token=token,
                                           etag_timeout=opts.timeout))
            except Exception as exc:
                raise _explain(exc, what) from None
            if got.resolve() != path.resolve():
                got.replace(path)
            return _verify(path, filename, meta.size, etag)

        entries.append(install(filename, dest=dest, archive_dir=archive_dir, fetch=get,
                               published=published, want=archive_stem(Path(filename).name), options=opts,
                               log=log))
    return summary(source, "huggingface", entries, repo_id=opts.repo_id, repo_type=opts.repo_type,
                   revision=opts.revision, commit=revision)


def _verify(path: Path, name: str, size: int | None, etag: str) -> dict:
    """sha256 for LFS files (the etag), git blob sha1 for small files, else size only."""
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        return verify_file(path, name=name, size=size, sha256=etag)
    info = verify_file(path, name=name, size=size)
    if re.fullmatch(r"[0-9a-f]{40}", etag):
        nbytes = path.stat().st_size
        blob = hash_file(path, ("sha1",), prefix=f"blob {nbytes}\0".encode())["sha1"]
        if blob != etag:
            path.unlink(missing_ok=True)
            raise DownloadError(f"{name}: git blob sha1 mismatch: expected {etag}, got {blob}; "
                                "deleted the bad file, run again to re-download")
        info["verified"] = "git-sha1"
    return info
