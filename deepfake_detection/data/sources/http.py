"""Streaming HTTP download with resume, timeouts, retries and checksum verification.

A file is fetched into ``<file>.part`` and renamed into place only once complete and verified, so
a half-written file never looks complete. After a dropped connection (in this run or an earlier
one) the download continues from the bytes already in ``.part`` with an HTTP ``Range`` request;
a server that ignores the range is read again from the start. A checksum mismatch deletes the bad
file and raises :class:`DownloadError` naming the file and both checksums.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Callable

import requests
import urllib3

CHUNK = 1 << 20
CONNECT_TIMEOUT = 15.0
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 120.0


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says what to set or do, never a secret."""


def _md5_from_goog_hash(value: str | None) -> str | None:
    """``x-goog-hash: crc32c=...,md5=<base64>`` (Kaggle's storage) -> hex md5, else None."""
    for part in (value or "").split(","):
        name, _, digest = part.strip().partition("=")
        if name == "md5" and digest:
            try:
                return base64.b64decode(digest).hex()
            except ValueError:
                return None
    return None


def hash_file(path: Path, algorithms: tuple[str, ...] = ("md5",), prefix: bytes = b"") -> dict[str, str]:
    """Hex digests of ``path`` (``prefix`` is hashed first: git blob ids need ``blob <n>\\0``)."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    for h in hashes.values():
        h.update(prefix)
    with open(path, "rb") as f:
        while chunk := f.read(4 * CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def verify_file(path: Path, *, name: str, size: int | None = None, md5: str | None = None,
                sha256: str | None = None) -> dict:
    """Check size and published checksums of a complete file; delete it and raise on a mismatch.

    Returns ``{"bytes", "md5", "sha256", "verified"}`` where ``verified`` names the strongest
    check that passed (``sha256``, ``md5``, ``size`` or ``none``).
    """
    nbytes = path.stat().st_size
    if size is not None and nbytes != size:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{name}: size mismatch: expected {size} bytes, got {nbytes}; "
                            "deleted the bad file, run again to re-download")
    digests = hash_file(path, ("md5", "sha256") if sha256 else ("md5",))
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected and digests[algo] != expected.lower():
            path.unlink(missing_ok=True)
            raise DownloadError(f"{name}: {algo} mismatch: expected {expected.lower()}, got {digests[algo]}; "
                                "deleted the bad file, run again to re-download")
    verified = "sha256" if sha256 else "md5" if md5 else "size" if size is not None else "none"
    return {"bytes": nbytes, "md5": digests["md5"], "sha256": digests.get("sha256"), "verified": verified}


def _retry_after(response: requests.Response | None, attempt: int, backoff: float) -> float:
    value = response.headers.get("Retry-After", "") if response is not None else ""
    if value.strip().isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    return min(backoff * 2 ** attempt, 60.0)


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(2) == "*" else int(m.group(2)))


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    # disable=None: bars only on a terminal, so logs of unattended runs stay readable.
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, file=sys.stderr, disable=None, leave=False, mininterval=1.0)


def download(url: str, path: Path, *, session: requests.Session | None = None, auth=None,
             headers: dict[str, str] | None = None, size: int | None = None, md5: str | None = None,
             sha256: str | None = None, timeout: float = 60.0, retries: int = 5, backoff: float = 1.0,
             status_hints: dict[int, str] | None = None, log: Callable[[str], None] = print,
             name: str | None = None) -> dict:
    """Download ``url`` to ``path`` (resuming ``path.part``), verify it, and return its summary.

    ``timeout`` is the read timeout: seconds without a byte before the connection counts as
    dropped. ``retries`` is how many attempts in a row may fail without receiving any new bytes
    (a retry that makes progress resets the count). ``status_hints`` maps HTTP status codes to
    the advice appended to the error (e.g. 401 -> which credentials to set). An existing ``path``
    is verified and kept when it passes, so a re-run does not download again.
    """
    name = name or path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        try:
            return verify_file(path, name=name, size=size, md5=md5, sha256=sha256)
        except DownloadError:
            log(f"{name}: existing file failed verification; downloading again")
    part = path.with_name(path.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    goog_md5: str | None = None
    failures = 0
    try:
        while True:
            offset = part.stat().st_size if part.is_file() else 0
            if size is not None and offset > size:
                part.unlink()
                offset = 0
            if size is not None and offset == size and size > 0:
                break
            req_headers = dict(headers or {})
            req_headers["Accept-Encoding"] = "identity"   # byte offsets must mean file offsets
            if offset:
                req_headers["Range"] = f"bytes={offset}-"
            response = None
            received = 0
            try:
                response = session.get(url, headers=req_headers, auth=auth, stream=True,
                                       timeout=(CONNECT_TIMEOUT, timeout), allow_redirects=True)
                status = response.status_code
                if status == 416 and offset:
                    # Our .part is not a prefix the server recognises: start over.
                    part.unlink()
                    raise _Retry("server refused the resume range; starting over", None)
                if status in RETRY_STATUS:
                    raise _Retry(f"HTTP {status}", response)
                if status not in (200, 206):
                    hint = (status_hints or {}).get(status, "")
                    reason = f"HTTP {status} {response.reason or ''}".strip()
                    raise DownloadError(f"{name}: {reason} from {_redact(response.url)}"
                                        + (f": {hint}" if hint else ""))
                goog_md5 = goog_md5 or _md5_from_goog_hash(response.headers.get("x-goog-hash"))
                total = None
                if status == 206:
                    start, total = _content_range_start(response.headers.get("Content-Range"))
                    if start != offset:
                        part.unlink(missing_ok=True)
                        raise _Retry(f"server sent bytes from {start}, not {offset}; starting over", None)
                else:
                    if offset:
                        log(f"{name}: server ignored the range request; downloading from the start")
                    offset = 0
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                if size is not None and total is not None and total != size:
                    raise DownloadError(f"{name}: server reports {total} bytes but {size} were published")
                with open(part, "ab" if offset else "wb") as out, _progress(total or size, offset, name) as bar:
                    for chunk in _chunks(response):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                expected_total = total if total is not None else size
                if expected_total is not None and offset + received < expected_total:
                    raise _Retry(f"connection closed after {offset + received} of {expected_total} bytes", None)
                break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError, _Retry) as exc:
                failures = 0 if received else failures + 1
                if failures > retries:
                    raise DownloadError(f"{name}: giving up after {retries} retries without progress "
                                        f"({_describe(exc)}); run again to resume from "
                                        f"{part.stat().st_size if part.is_file() else 0} bytes") from None
                done = part.stat().st_size if part.is_file() else 0
                log(f"{name}: {_describe(exc)}; " + (f"resuming at byte {done}" if done else "retrying"))
                if not received:
                    time.sleep(_retry_after(getattr(exc, "response", None), failures - 1, backoff))
            finally:
                if response is not None:
                    response.close()
    finally:
        if own_session:
            session.close()
    if md5 is None and goog_md5:
        md5 = goog_md5
    part.replace(path)
    return verify_file(path, name=name, size=size, md5=md5, sha256=sha256)


def _chunks(response: requests.Response):
    """The body as it arrives. ``iter_content`` would fill whole chunks first and lose a partly
    filled one when the connection drops; ``read1`` hands over every byte received."""
    while data := response.raw.read1(CHUNK, decode_content=True):
        yield data


class _Retry(Exception):
    def __init__(self, message: str, response: requests.Response | None):
        super().__init__(message)
        self.response = response


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Retry):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "timed out"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)):
        return "connection dropped"
    return f"connection failed ({type(exc).__name__}; check the network and the endpoint)"


def _redact(url: str) -> str:
    """Drop the query string: signed storage URLs carry temporary credentials there."""
    return url.split("?", 1)[0]


def get_json(url: str, *, timeout: float = 60.0, retries: int = 5, backoff: float = 1.0,
             status_hints: dict[int, str] | None = None, session: requests.Session | None = None) -> dict:
    """GET a JSON document with the same retry rules as :func:`download`."""
    session = session or requests.Session()
    for attempt in range(retries + 1):
        response = None
        try:
            response = session.get(url, headers={"Accept": "application/json"},
                                   timeout=(CONNECT_TIMEOUT, timeout))
            if response.status_code in RETRY_STATUS:
                raise _Retry(f"HTTP {response.status_code}", response)
            if response.status_code != 200:
                hint = (status_hints or {}).get(response.status_code, "")
                raise DownloadError(f"HTTP {response.status_code} from {_redact(url)}" + (f": {hint}" if hint else ""))
            try:
                return response.json()
            except ValueError:
                raise DownloadError(f"{_redact(url)} did not return JSON") from None
        except (requests.ConnectionError, requests.Timeout, _Retry) as exc:
            if attempt == retries:
                raise DownloadError(f"{_redact(url)}: {_describe(exc)} after {retries} retries") from None
            time.sleep(_retry_after(getattr(exc, "response", None), attempt, backoff))
        finally:
            if response is not None:
                response.close()
    raise AssertionError("unreachable")
