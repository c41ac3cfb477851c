"""One place that knows where cached artefacts live: a local folder or any ``pyarrow.fs`` URI.

Workers on other nodes see the same cache when ``storage`` is ``s3://...`` or ``gs://...``.

    st = Storage(".cache/xmodal")            # or Storage("s3://bucket/xmodal")
    st.write_json("stages/ecg_ssl/ab12/meta.json", {...})
    st.exists("stages/ecg_ssl/ab12/meta.json")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

SECRET_OPTIONS = ("access_key", "secret_key", "session_token")  # pyarrow S3 URI options


def redact_uri(uri: str) -> str:
    """``uri`` without credentials (``key:secret@`` and ``access_key=``-style options), for reports."""
    if "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    rest, _, query = rest.partition("?")
    head, slash, path = rest.partition("/")
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0] not in SECRET_OPTIONS]
    return f"{scheme}://{head.rsplit('@', 1)[-1]}{slash}{path}" + (f"?{'&'.join(kept)}" if kept else "")


class Storage:
    """A root folder on a ``pyarrow.fs.FileSystem``; all paths below are ``/``-joined and relative."""

    def __init__(self, uri: str):
        self.uri = str(uri)
        if "://" in self.uri:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(self.uri).expanduser().resolve())
            self.uri = self.root  # absolute: Ray Train workers run in another working directory
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Storage({redact_uri(self.uri)!r})"

    def __reduce__(self):  # pickles by URI, so Ray workers rebuild their own filesystem client
        return (Storage, (self.uri,))

    def path(self, *parts: str) -> str:
        """Filesystem path (no scheme) of ``parts`` below the root."""
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts if p]])

    def uri_of(self, *parts: str) -> str:
        """Full URI (with scheme when remote) for libraries that take URIs, such as Ray Data."""
        if self.is_local:
            return self.path(*parts)
        scheme = self.uri.split("://", 1)[0]
        return f"{scheme}://{self.path(*parts)}"

    def child(self, *parts: str) -> "Storage":
        """The storage rooted at ``parts`` below this one, with the same URI options (``?endpoint_override=``...)."""
        if self.is_local:
            return Storage(self.path(*parts))
        head, _, query = self.uri.partition("?")
        uri = "/".join([head.rstrip("/"), *[p.strip("/") for p in parts if p]])
        return Storage(f"{uri}?{query}" if query else uri)

    @property
    def ray_filesystem(self) -> pafs.FileSystem | None:
        """What Ray's ``filesystem`` / ``storage_filesystem`` arguments take: None locally (Ray uses its
        own), this store's filesystem otherwise (so URI options and credentials reach Ray)."""
        return None if self.is_local else self.fs

    def for_ray(self, *parts: str) -> tuple[str, pafs.FileSystem | None]:
        """``(storage_path, storage_filesystem)`` for Ray Train/Tune's ``RunConfig``: given a filesystem,
        Ray wants a path on it (``bucket/key``), not a URI; locally, an absolute path and no filesystem."""
        return self.path(*parts), self.ray_filesystem

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write atomically on a local disk (temp file + rename); object stores are atomic per PUT."""
        target = self.path(*parts)
        parent = target.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if self.is_local:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        else:
            with self.fs.open_output_stream(target) as f:
                f.write(data)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), *parts)

    def listdir(self, *parts: str) -> list[str]:
        sel = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(sel))

    def delete_dir(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.delete_dir(self.path(*parts))

    def upload_dir(self, local_dir: str | Path, *parts: str) -> None:
        """Copy a local folder's contents to ``parts`` (replacing what is there)."""
        dest = self.path(*parts)
        if self.is_local:
            tmp = dest.rstrip("/") + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(local_dir, tmp)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        else:
            pafs.copy_files(str(local_dir), dest, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)

    def local_copy(self, *parts: str) -> Path:
        """A local path holding the folder ``parts`` (the folder itself when storage is local)."""
        if self.is_local:
            return Path(self.path(*parts))
        tmp = Path(tempfile.mkdtemp(prefix="xmodal-"))
        pafs.copy_files(self.path(*parts), str(tmp), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return tmp
