"""Run folders on shared storage: a URI (`s3://`, `gs://`, `file://`, any file system fsspec opens).

On a cluster the driver and the actors live on different machines, and an object store has no
rename, no append and no way to see another host's processes. So a URI run folder is written
differently from a local one (which keeps its atomic renames and fsync'd appends, untouched):

- the driver works in a local *mirror* of the folder and uploads each file whole right after
  writing it, `state.json` last, so the remote folder always holds whole phases;
- the actor that saves a checkpoint writes it to a local temporary folder and uploads it itself,
  and an actor that loads one downloads it first (one writer per file);
- readers (`pvg metrics`, `pvg eval`, ...) download what they need into a mirror of their own,
  checkpoints only when a command loads one.

Every storage failure becomes a `PvgError` naming the URI, so the CLI shows one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from pvg.errors import PvgError

MANIFEST = ".pvg-mirror.json"  # in a mirror's root: its remote, and what each downloaded file was
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What to install for the schemes people use; fsspec's own message is the fallback for the rest.
INSTALL = {"s3": "pip install 'pvg[s3]' (s3fs)", "s3a": "pip install 'pvg[s3]' (s3fs)",
           "gs": "pip install 'pvg[gcs]' (gcsfs)", "gcs": "pip install 'pvg[gcs]' (gcsfs)",
           "az": "pip install adlfs", "abfs": "pip install adlfs", "abfss": "pip install adlfs"}


def is_uri(location) -> bool:
    return bool(_URI.match(str(location)))


def scheme(uri: str) -> str:
    return str(uri).split("://", 1)[0].lower()


def join(uri: str, *parts: str) -> str:
    return "/".join([str(uri).rstrip("/"), *(p.strip("/") for p in parts)])


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def filesystem(uri: str):
    """(fsspec file system, path inside it). A scheme with no installed implementation fails here,
    before anything runs, naming the package to install."""
    try:
        import fsspec
    except ImportError:
        raise PvgError(f"{uri}: URI run folders need fsspec: pip install fsspec") from None
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as e:
        hint = INSTALL.get(scheme(uri), "install the fsspec implementation it names")
        raise PvgError(f"{uri}: no file system for {scheme(uri)}:// is installed ({e}); {hint}") from None
    except ValueError as e:
        raise PvgError(f"{uri}: fsspec cannot open this URI ({e})") from None


@contextlib.contextmanager
def _errors(what: str, uri: str) -> Iterator[None]:
    try:
        yield
    except PvgError:
        raise
    except Exception as e:  # botocore, gcsfs, aiohttp and OS errors alike: one line naming the URI
        raise PvgError(f"{what} {uri} failed: {e.__class__.__name__}: {e}") from e


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in ("file", "local") for p in protocols)


def _mkparent(fs, rpath: str) -> None:
    """A local (file://) target needs its folders; an object store has none, and `makedirs` there
    could create a bucket, which a run must never do by itself."""
    if _is_local(fs):
        fs.makedirs(rpath.rsplit("/", 1)[0], exist_ok=True)


def _put(fs, local: Path, rpath: str) -> None:
    _mkparent(fs, rpath)
    fs.put_file(str(local), rpath)


# ------------------------------------------------------------------------ whole objects and trees
def read_text(uri: str) -> str | None:
    """The object's text, or None when there is none."""
    fs, path = filesystem(uri)
    with _errors("reading", uri):
        try:
            return fs.cat_file(path).decode()
        except FileNotFoundError:
            return None


def write_text(uri: str, text: str) -> None:
    fs, path = filesystem(uri)
    with _errors("writing", uri):
        _mkparent(fs, path)
        fs.pipe_file(path, text.encode())


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    with _errors("deleting", uri):
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass


def list_files(uri: str) -> dict[str, dict]:
    """Every file under `uri`, by path relative to it, with fsspec's info (size, ETag or mtime, ...)."""
    fs, path = filesystem(uri)
    base = path.rstrip("/")
    with _errors("listing", uri):
        fs.invalidate_cache(base)  # a listing cached by this process would hide another host's writes
        try:
            found = fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
    files = {}
    for name, info in found.items():
        name = name.rstrip("/")
        if info.get("type", "file") == "file" and name.startswith(base + "/"):
            files[name[len(base) + 1:]] = info
    return files


def probe(uri: str) -> None:
    """Write and delete a small object under `uri`: a missing bucket, bad credentials or no network
    fail now, before the warm start, not at the first checkpoint an hour later."""
    import uuid

    fs, path = filesystem(uri)
    target = f"{path.rstrip('/')}/.pvg-probe-{uuid.uuid4().hex[:12]}"
    try:
        _mkparent(fs, target)
        fs.pipe_file(target, b"pvg write probe")
        fs.rm_file(target)
    except Exception as e:
        raise PvgError(f"cannot write to {uri}: {e.__class__.__name__}: {e}; check that the bucket exists and that "
                       "the credentials (AWS_* or GOOGLE_APPLICATION_CREDENTIALS variables, a profile, the node's "
                       "IAM role) may write there") from e


def upload_tree(local_dir: Path, uri: str) -> None:
    """Replace the folder at `uri` by `local_dir`'s files. What was there goes first: a phase re-run
    after a kill must not leave a file of the killed attempt's upload beside the new ones."""
    fs, path = filesystem(uri)
    base = path.rstrip("/")
    with _errors("uploading to", uri):
        if list_files(uri):
            fs.rm(base, recursive=True)
        for f in sorted(Path(local_dir).rglob("*")):
            if f.is_file():
                _put(fs, f, f"{base}/{f.relative_to(local_dir).as_posix()}")


def download_tree(uri: str, local_dir: Path) -> None:
    fs, path = filesystem(uri)
    files = list_files(uri)
    if not files:
        raise PvgError(f"{uri} is missing or empty")
    base = path.rstrip("/")
    with _errors("downloading", uri):
        for rel in files:
            dest = Path(local_dir) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{base}/{rel}", str(dest))


@contextlib.contextmanager
def local_folder(location: str) -> Iterator[Path]:
    """A folder to read as a local path: a local one as it is, a URI downloaded to a temporary
    folder that is removed afterwards (what an actor on any node does to load a checkpoint)."""
    if not is_uri(location):
        yield Path(location)
        return
    tmp = Path(tempfile.mkdtemp(prefix="pvg-download-"))
    try:
        download_tree(location, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------- mirrors
def mirror_base() -> Path:
    """Where mirrors live: $PVG_MIRROR_DIR, else .cache/pvg/mirrors (next to the default run.cache_dir)."""
    return Path(os.environ.get("PVG_MIRROR_DIR") or Path(".cache") / "pvg" / "mirrors")


def _signature(info: dict) -> str:
    """What tells a changed object from an unchanged one, whatever the store reports."""
    for key in ("ETag", "etag", "md5Hash", "crc32c", "mtime", "LastModified", "updated", "last_modified"):
        if info.get(key) is not None:
            return f"{info.get('size')}:{info[key]}"
    return f"{info.get('size')}:?"


class Mirror:
    """A local copy of a URI run folder: where the driver writes before uploading, and where
    readers download to. `purpose` keeps the driver's copy ("run") apart from readers' ("read"):
    a reader's download must never overwrite what a live driver on the same machine is writing."""

    def __init__(self, remote: str, purpose: str, base: Path | None = None):
        self.remote = str(remote).rstrip("/")
        self.fs, path = filesystem(self.remote)
        self.rpath = path.rstrip("/")
        digest = hashlib.sha256(self.remote.encode()).hexdigest()[:12]
        # the last part is the run's name, so that code which shows `path.name` shows the run's
        self.root = (base or mirror_base()).absolute() / f"{purpose}-{digest}" / basename(self.remote)
        self._pushed: dict[str, tuple[int, int]] = {}

    def url(self, rel: str) -> str:
        return join(self.remote, rel)

    # ---- the driver: start clean, upload each file whole
    def reset(self) -> None:
        """An empty mirror: a driver's copy starts from the remote folder, never from a leftover."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self._save_manifest({})

    def push(self, local: Path) -> None:
        rel = Path(local).absolute().relative_to(self.root).as_posix()
        with _errors("uploading", self.url(rel)):
            _put(self.fs, Path(local), f"{self.rpath}/{rel}")

    def push_tree(self, rel_dir: str) -> None:
        """Upload the files under `rel_dir` that changed since this process last uploaded them (the
        TensorBoard event files grow; each upload is of a whole file)."""
        folder = self.root / rel_dir
        if not folder.is_dir():
            return
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                st = f.stat()
                key = (st.st_size, st.st_mtime_ns)
                rel = f.relative_to(self.root).as_posix()
                if self._pushed.get(rel) != key:
                    self.push(f)
                    self._pushed[rel] = key

    # ---- readers (and a resuming driver): download what changed
    def pull(self, prefix: str = "", exclude: tuple[str, ...] = ()) -> dict[str, dict]:
        """Bring the files under `prefix` (all by default) up to date with the remote folder, skipping
        `exclude` (path prefixes); returns the remote listing. A file is downloaded again only when
        the store says it changed; a file gone from the remote goes from the mirror."""
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self._manifest()
        listing = list_files(self.url(prefix) if prefix else self.remote)
        wanted = {}
        for rel, info in listing.items():
            rel = f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel
            if not _skip(rel, exclude):
                wanted[rel] = _signature(info)
        for rel, sig in sorted(wanted.items()):
            dest = self.root / rel
            if manifest.get(rel) == sig and dest.is_file():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
            with _errors("downloading", self.url(rel)):
                self.fs.get_file(f"{self.rpath}/{rel}", str(tmp))
            tmp.replace(dest)
            manifest[rel] = sig
        scope = prefix.strip("/")
        for rel in list(manifest):
            inside = not scope or rel == scope or rel.startswith(scope + "/")
            if inside and not _skip(rel, exclude) and rel not in wanted:
                (self.root / rel).unlink(missing_ok=True)
                del manifest[rel]
        self._save_manifest(manifest)
        return listing

    def _manifest(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return data.get("files", {}) if data.get("remote") == self.remote else {}

    def _save_manifest(self, files: dict[str, str]) -> None:
        tmp = self.root / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"remote": self.remote, "files": files}, indent=1))
        tmp.replace(self.root / MANIFEST)


def _skip(rel: str, exclude: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if rel == MANIFEST or name.startswith(".pvg-probe-") or name.endswith(".part"):
        return True
    return any(rel == e.rstrip("/") or rel.startswith(e if e.endswith("/") else e + "/") for e in exclude)
