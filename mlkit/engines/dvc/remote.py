"""DVC remotes: their configuration, push and pull, and reading single objects from them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from mlkit import constants as C
from mlkit.engines.dvc.cache import cache_for, complete
from mlkit.engines.dvc.links import no_reflink_unless, reflink_works, skip_unsupported_reflink
from mlkit.engines.dvc.progress import ProgressCallback, forward_progress
from mlkit.engines.dvc.repo import DEFAULT_LOCK_TIMEOUT_S, ENV_REMOTE_NAME, locked, open_repo, transfer_stats, translate
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.uris import is_secret_param, redact


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    default: bool
    endpoint_url: str | None = None


def push(
    root: Path,
    *,
    remote: str | None = None,
    jobs: int | None = None,
    progress: ProgressCallback | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
) -> int:
    """Upload the workspace's data sets to the remote; returns how many files were transferred."""
    from dvc.exceptions import UploadError

    with open_repo(root) as repo, locked(repo, lock_timeout):
        name, destination = _usable_remote(repo, remote)
        with no_reflink_unless(reflink_works(Path(repo.cache.local.path), destination)), forward_progress(progress):
            try:
                found = repo.cloud.get_remote(name)
                if found.worktree or found.fs.version_aware:
                    return int(repo.push(remote=name, jobs=jobs) or 0)
                # Repo.push first writes every entry into DVC's sqlite data index (one commit per
                # folder level: seconds for 10,000 files); the object transfer below is the same
                # upload without that bookkeeping, which only version-aware remotes need.
                used = {hash_info for ids in repo.used_objs(remote=name, jobs=jobs).values() for hash_info in ids}
                result = repo.cloud.push(used, jobs=jobs, remote=name)
                if result.failed:
                    raise UploadError(len(result.failed))
                return len(result.transferred)
            except UploadError as exc:
                raise OperationError(
                    f"{first_line(exc)} to the DVC remote {name!r}",
                    hint="check the remote's storage and run `mlkit data push` again",
                ) from exc
            except Exception as exc:
                raise translate(exc, f"pushing to the DVC remote {name!r}") from exc


def pull(
    root: Path,
    targets: Sequence[Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
) -> dict[str, Any]:
    """Download data sets from the remote into the cache and link them into the workspace."""
    with open_repo(root) as repo, locked(repo, lock_timeout):
        skip_unsupported_reflink(repo)
        name, source = _usable_remote(repo, remote, write=False)
        with no_reflink_unless(reflink_works(source, Path(repo.cache.local.path))), forward_progress(progress):
            try:
                found = repo.cloud.get_remote(name)
                if found.worktree or found.fs.version_aware:
                    stats = repo.pull(targets=[str(t) for t in targets] or None, remote=name, jobs=jobs, force=force)
                    return transfer_stats(root, stats)
                # as in push: the objects straight from the remote, without Repo.fetch's sqlite
                # data-index bookkeeping; listings of folders are fetched before their files
                used = {
                    hash_info
                    for ids in repo.used_objs(
                        targets=[str(t) for t in targets] or None, remote=name, jobs=jobs
                    ).values()
                    for hash_info in ids
                }
                fetched = repo.cloud.pull(used, jobs=jobs, remote=name)
                stats = repo.checkout(targets=[str(t) for t in targets] or None, force=force)
            except Exception as exc:
                raise translate(exc, f"pulling from the DVC remote {name!r}", root) from exc
    stats["stats"] = {**stats.get("stats", {}), "fetched": len(fetched.transferred)}
    return transfer_stats(root, stats)


def remote_holds(repo: Any, items: Sequence[tuple[str, str]], remote: str | None) -> dict[str, bool] | None:
    """md5 -> whether ``remote`` holds it (directories: all files); None when no remote is configured."""
    from dvc.config import NoRemoteError

    try:
        odbs = {name: repo.cloud.get_remote_odb(remote, "status", hash_name=name) for name in {n for _, n in items}}
    except NoRemoteError:
        return None
    except Exception as exc:
        raise translate(exc, "reading the DVC remote") from exc
    try:
        return {md5: complete(repo, odbs[name], cache_for(repo, name), md5, name) for md5, name in items}
    except Exception as exc:
        raise translate(exc, "reading the DVC remote") from exc


def remotes(root: Path) -> list[RemoteInfo]:
    """The remotes DVC's merged configuration knows, the default first."""
    with open_repo(root) as repo:
        default = repo.config["core"].get("remote")
        found = [
            RemoteInfo(
                name=name, url=str(conf.get("url", "")), default=name == default, endpoint_url=conf.get("endpointurl")
            )
            for name, conf in repo.config["remote"].items()
        ]
    return sorted(found, key=lambda r: (not r.default, r.name))


# Credentials a remote URL may carry, as the options of DVC's remotes that hold them in config.local.
_USERINFO_OPTIONS = {
    "s3": ("access_key_id", "secret_access_key"),
    "http": ("user", "password"),
    "https": ("user", "password"),
    "webdav": ("user", "password"),
    "webdavs": ("user", "password"),
    "ssh": ("user", "password"),
}
_QUERY_OPTIONS = {
    "s3": {
        "access_key": "access_key_id",
        "access_key_id": "access_key_id",
        "aws_access_key_id": "access_key_id",
        "secret_key": "secret_access_key",
        "secret_access_key": "secret_access_key",
        "aws_secret_access_key": "secret_access_key",
        "session_token": "session_token",
        "aws_session_token": "session_token",
    }
}


def split_credentials(name: str, url: str) -> tuple[str, dict[str, str]]:
    """(the URL without credentials, DVC options holding them) for a remote's URL.

    The options go to `.dvc/config.local`, which DVC keeps out of git. Credentials DVC has no option for
    here (a token as the user name, a secret query parameter of another storage) are refused.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        # nothing can be taken out of it safely: refused if it shows credentials, else DVC judges it
        if redact(url) != url:
            raise _credentials_refused(name, url) from None
        return url, {}
    scheme = parts.scheme.lower()
    options: dict[str, str] = {}
    netloc = parts.netloc
    unplaced = False
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        names = _USERINFO_OPTIONS.get(scheme)
        if names and colon and user:
            options[names[0]], options[names[1]] = unquote(user), unquote(password)
            if scheme in ("http", "https"):
                options["auth"] = "basic"
        elif not colon and scheme not in ("http", "https"):
            netloc = parts.netloc  # ssh://user@host: an account name, not a credential
        else:
            unplaced = True  # https://TOKEN@host, or a password DVC has no option for here
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        option = _QUERY_OPTIONS.get(scheme, {}).get(key.lower())
        if option:
            options[option] = value
        elif is_secret_param(key):
            unplaced = True
        else:
            kept.append((key, value))
    if not options and netloc == parts.netloc:
        clean = url
    else:
        query = urlencode(kept) if len(kept) != len(parse_qsl(parts.query, keep_blank_values=True)) else parts.query
        clean = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if unplaced or redact(clean) != clean:  # whatever redaction would hide must not reach .dvc/config
        raise _credentials_refused(name, url)
    return clean, options


def _credentials_refused(name: str, url: str) -> UsageError:
    return UsageError(
        f"the URL of remote {name!r} carries credentials ({redact(url)}), which .dvc/config "
        "would share through git; nothing was written",
        hint=f"add the URL without them, then keep them out of git: `dvc remote modify --local "
        f"{name} OPTION VALUE` (.dvc/config.local), or the storage's environment variables",
    )


def add_remote(
    root: Path,
    name: str,
    url: str,
    *,
    default: bool = False,
    endpoint_url: str | None = None,
    force: bool = False,
    credentials: dict[str, str] | None = None,
) -> tuple[Path, Path | None]:
    """Write a remote to the project's `.dvc/config` (the file git shares) and its ``credentials`` (DVC
    option -> value, see :func:`split_credentials`) to `.dvc/config.local` (git-ignored by DVC).

    Returns the two files; the second is None when there were no credentials.
    """
    from dvc.config import ConfigError as DvcConfigError

    with open_repo(root) as repo:
        if name in repo.config["remote"] and not force:
            raise UsageError(
                f"a DVC remote named {name!r} already exists",
                hint="pass --force to replace it, or list them with `mlkit data remote list`",
            )
        shared = Path(repo.config.files["repo"])
        before = shared.read_bytes() if shared.exists() else None
        try:
            with repo.config.edit("repo") as conf:
                entry: dict[str, Any] = {"url": url}
                if endpoint_url:
                    entry["endpointurl"] = endpoint_url
                conf["remote"][name] = entry
                if default:
                    conf["core"]["remote"] = name
            if credentials:
                # validated against the merged settings, so after the URL is in .dvc/config
                with repo.config.edit("local") as conf:
                    conf["remote"][name] = dict(credentials)
        except DvcConfigError as exc:
            if before is not None and credentials:
                shared.write_bytes(before)
            raise UsageError(
                f"DVC rejected remote {name!r}: {first_line(exc)}",
                hint="check the URL, e.g. /mnt/storage/dvc or s3://bucket/path",
            ) from exc
        return shared, Path(repo.config.files["local"]) if credentials else None


def _usable_remote(repo: Any, remote: str | None, *, write: bool = True) -> tuple[str, Path | None]:
    """The remote's name and, for a local directory remote, its checked path."""
    from dvc.config import NoRemoteError

    try:
        found = repo.cloud.get_remote(remote)
    except NoRemoteError:
        if remote:
            raise UsageError(
                f"no DVC remote named {remote!r}", hint="list them with `mlkit data remote list`"
            ) from None
        raise UsageError("no DVC remote configured", hint="run `mlkit data remote add NAME URL --default`") from None
    except Exception as exc:
        raise translate(exc, "opening the DVC remote") from exc
    if found.fs.protocol not in ("local", "file"):
        return found.name, None
    path = Path(found.path)
    other = (
        f"or set {C.ENV_DATA_REMOTE} to another one"
        if found.name == ENV_REMOTE_NAME
        else f"or `mlkit data remote add {found.name} URL --default --force`"
    )
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"the DVC remote {found.name!r} points to {path}, which is a file, not a folder",
            hint="point the remote at a folder: "
            + (
                f"set {C.ENV_DATA_REMOTE} to another one"
                if found.name == ENV_REMOTE_NAME
                else f"`mlkit data remote add {found.name} URL --default --force`"
            ),
        )
    if not path.is_dir():
        raise UsageError(
            f"the DVC remote {found.name!r} points to {path}, which does not exist",
            hint=f"create it (`mkdir -p {path}`) {other}",
        )
    if write and not _writable(path):
        raise UsageError(
            f"the DVC remote {found.name!r} at {path} is not writable",
            hint="fix its permissions or choose another remote with "
            + (f"{C.ENV_DATA_REMOTE}" if found.name == ENV_REMOTE_NAME else "`mlkit data remote add`"),
        )
    return found.name, path


def _writable(directory: Path) -> bool:
    # os.access is not enough: it says yes to root on read-only mounts
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".mlkit-probe-"):
            return True
    except OSError:
        return False


def fetch_raw(root: Path, md5: str, destination: Path, remote: str | None = None) -> bool:
    """Copy the object ``md5`` from the remote to ``destination`` as stored, without DVC's hash check.

    DVC deletes an object that fails its check; mlkit inspects it instead, so a corrupted copy in the
    remote is reported as such. Returns False when the remote does not hold the object.
    """
    with open_repo(root) as repo:
        odb = _remote_odb(repo, remote)
        path = odb.oid_to_path(md5)
        if not odb.fs.exists(path):
            return False
        odb.fs.get_file(path, str(destination))
    return True


def fetch(root: Path, paths: Sequence[Path], remote: str | None = None) -> None:
    """Bring the objects of the given tracked paths from the remote into the cache (checked by DVC)."""
    with open_repo(root) as repo:
        try:
            repo.fetch(targets=[str(Path(p).resolve()) for p in paths], remote=remote)
        except Exception as exc:
            raise OperationError(
                f"fetching data from the DVC remote failed: {first_line(exc)}",
                hint="check the remote with `mlkit data remote list`",
            ) from exc


def _remote_odb(repo: Any, remote: str | None) -> Any:
    try:
        return repo.cloud.get_remote_odb(remote)
    except Exception as exc:
        raise OperationError(
            f"no usable DVC remote: {first_line(exc)}", hint="add one with `mlkit data remote add NAME URL --default`"
        ) from exc


@dataclass(frozen=True)
class ObjectLocation:
    """Where a tracked file's content can be read by another process: a URL and the options of its
    filesystem. ``storage_options`` may hold credentials: never log them; ``where`` is safe to show."""

    url: str
    storage_options: dict[str, Any]
    where: str


def remote_object(root: Path, md5: str, remote: str | None = None) -> ObjectLocation | None:
    """The object ``md5`` in the (default) remote, with the options DVC's configuration (config.local
    included) gives its filesystem; None when there is no remote or it does not hold the object."""
    with open_repo(root) as repo:
        try:
            odb = repo.cloud.get_remote_odb(remote)
            path = odb.oid_to_path(md5)
            if not odb.fs.exists(path):
                return None
        except Exception:
            return None
        url = str(odb.fs.unstrip_protocol(path))
        options = {k: v for k, v in dict(getattr(odb.fs, "fs_args", {})).items() if v is not None}
        name = remote or repo.config["core"].get("remote") or "default"
    return ObjectLocation(url, options, f"DVC remote {name!r} ({redact(url)})")


def cache_object(root: Path, md5: str) -> Path:
    """The path of ``md5`` in the project's DVC cache (it may not exist)."""
    with open_repo(root) as repo:
        return Path(repo.cache.local.oid_to_path(md5))
