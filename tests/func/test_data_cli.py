"""`mlkit data` against real git and DVC with a local remote in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlkit import data
from mlkit.project import load_project

SAMPLE = "data/breast_cancer.csv"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def _errors(result) -> list[str]:
    return result.stderr.strip().splitlines()


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    root = make_project()
    raw = root / "data" / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "customers.csv").write_text("id,spend\n" + "".join(f"{i},{i * 3}\n" for i in range(500)))
    for i in range(12):
        (raw / "images" / f"{i:02d}.bin").write_bytes(os.urandom(64 + i))
    return root


def test_add_push_lose_everything_pull_gives_identical_bytes(project: Path, cli) -> None:
    customers = project / "data" / "raw" / "customers.csv"
    images = project / "data" / "raw" / "images"
    originals = {p: p.read_bytes() for p in [customers, *sorted(images.iterdir())]}

    result = cli("data", "add", "data/raw/customers.csv", "data/raw/images", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    added = json.loads(result.stdout)
    assert [d["path"] for d in added["added"]] == ["data/raw/customers.csv", "data/raw/images"]
    assert added["added"][0]["md5"] == _md5(customers)
    assert added["added"][1]["nfiles"] == 12 and added["added"][1]["md5"].endswith(".dir")
    assert added["staged"] == ["data/raw/.gitignore", "data/raw/customers.csv.dvc", "data/raw/images.dvc"]
    assert _git(project, "diff", "--cached", "--name-only").split() == added["staged"]
    assert (project / "data/raw/.gitignore").read_text().split() == ["/customers.csv", "/images"]

    result = cli("data", "push", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["transferred"] == 15  # the sample data set, 1 + 12 files, 1 listing

    shutil.rmtree(project / ".dvc" / "cache")
    customers.unlink()
    shutil.rmtree(images)

    result = cli("data", "pull", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    pulled = json.loads(result.stdout)
    assert pulled["transferred"] == 14  # the same files; the folder's listing is not counted here
    assert pulled["added"] == ["data/raw/customers.csv", "data/raw/images"]
    assert {p: p.read_bytes() for p in originals} == originals
    assert data.input_md5s(project, ["data/raw/customers.csv", "data/raw/images"]) == {
        "data/raw/customers.csv": added["added"][0]["md5"],
        "data/raw/images": added["added"][1]["md5"],
    }


def test_add_with_commit_commits_only_the_dvc_files(project: Path, cli) -> None:
    (project / "notes.txt").write_text("not part of the commit\n")
    _git(project, "add", "notes.txt")
    result = cli("data", "add", "data/raw/customers.csv", "--commit", "-m", "Add customers", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert _git(project, "log", "-1", "--format=%s").strip() == "Add customers"
    assert _git(project, "show", "--name-only", "--format=", "HEAD").split() == [
        "data/raw/.gitignore",
        "data/raw/customers.csv.dvc",
    ]
    assert _git(project, "diff", "--cached", "--name-only").split() == ["notes.txt"]
    head = _git(project, "rev-parse", "HEAD").strip()
    assert result.stderr == f"committed {head[:12]}: data/raw/.gitignore data/raw/customers.csv.dvc\n"


def test_re_add_of_unchanged_data_keeps_the_record(project: Path, cli) -> None:
    assert cli("data", "add", "data/raw/images", cwd=project).exit_code == 0
    before = (project / "data/raw/images.dvc").read_text()
    result = cli("data", "add", "data/raw/images", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert (project / "data/raw/images.dvc").read_text() == before


def test_status_reports_modified_and_missing(project: Path, cli) -> None:
    assert cli("data", "add", "data/raw/customers.csv", "data/raw/images", cwd=project).exit_code == 0
    customers = project / "data/raw/customers.csv"
    content = customers.read_bytes()
    customers.unlink()  # replace, not write through the link into the cache
    customers.write_bytes(content + b"999,1\n")
    shutil.rmtree(project / "data/raw/images")

    result = cli("data", "status", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"path": SAMPLE, "state": "unchanged"},
        {"path": "data/raw/customers.csv", "state": "modified"},
        {"path": "data/raw/images", "state": "missing"},
    ]
    table = cli("data", "status", cwd=project).stdout
    assert "data/raw/customers.csv │ modified" in table


def test_ls_shows_remote_presence_after_push(project: Path, cli) -> None:
    assert cli("data", "add", "data/raw/images", cwd=project).exit_code == 0
    before = {d["path"]: d for d in json.loads(cli("data", "ls", "--json", cwd=project).stdout)}
    assert before["data/raw/images"]["in_remote"] is False
    assert before["data/raw/images"]["in_cache"] is True
    assert before["data/raw/images"]["nfiles"] == 12
    assert before["data/raw/images"]["size"] == sum(64 + i for i in range(12))

    assert cli("data", "push", cwd=project).exit_code == 0
    after = {d["path"]: d for d in json.loads(cli("data", "ls", "--json", cwd=project).stdout)}
    assert after["data/raw/images"]["in_remote"] is True
    assert after[SAMPLE]["in_remote"] is True
    table = cli("data", "ls", cwd=project).stdout
    assert "data/raw/images" in table and before["data/raw/images"]["md5"] in table

    # one file of the folder gone from the remote: the data set is no longer complete there
    remote = Path(data.remotes(load_project(project))[0]["url"])
    victim = next(
        p for p in remote.rglob("*") if p.is_file() and not p.name.endswith(".dir") and p.stat().st_size < 100
    )
    victim.unlink()
    again = {d["path"]: d for d in json.loads(cli("data", "ls", "--json", cwd=project).stdout)}
    assert again["data/raw/images"]["in_remote"] is False


def test_checkout_restores_the_recorded_version(project: Path, cli) -> None:
    customers = project / "data/raw/customers.csv"
    assert cli("data", "add", "data/raw/customers.csv", cwd=project).exit_code == 0
    first = customers.read_bytes()
    customers.unlink()
    customers.write_bytes(first + b"1,2\n")
    # uncommitted change: checkout refuses unless forced
    result = cli("data", "checkout", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: {customers} has changes DVC has not recorded; checkout would overwrite them",
        "hint: keep them with `mlkit data add PATH`, or discard them with --force",
    ]
    assert customers.read_bytes() == first + b"1,2\n"
    result = cli("data", "checkout", "--force", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["modified"] == ["data/raw/customers.csv"]
    assert customers.read_bytes() == first


def test_remote_add_and_list(project: Path, cli, tmp_path: Path) -> None:
    target = tmp_path / "second-remote"
    target.mkdir()
    result = cli("data", "remote", "add", "second", str(target), "--default", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "second",
        "url": str(target),
        "default": True,
        "endpoint_url": None,
        "config": ".dvc/config",
        "credentials": None,
    }
    assert ".dvc/config" in _git(project, "diff", "--cached", "--name-only").split()
    result = cli(
        "data", "remote", "add", "minio", "s3://bucket/churn", "--endpoint-url", "http://127.0.0.1:9000", cwd=project
    )
    assert result.exit_code == 0, result.stderr
    listed = json.loads(cli("data", "remote", "list", "--json", cwd=project).stdout)
    assert [(r["name"], r["default"]) for r in listed] == [("second", True), ("local", False), ("minio", False)]
    assert listed[2]["endpoint_url"] == "http://127.0.0.1:9000"
    config = (project / ".dvc" / "config").read_text()
    assert "endpointurl = http://127.0.0.1:9000" in config
    assert "remote = second" in config
    # pushes go to the new default
    assert cli("data", "push", cwd=project).exit_code == 0
    assert any(target.rglob("*"))


@pytest.mark.parametrize(
    ("url", "clean", "local"),
    [
        (
            "s3://AKIAEXAMPLE:wJalrXUtnSECRET@bucket/path",
            "s3://bucket/path",
            {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnSECRET"},
        ),
        (
            "s3://bucket/path?access_key=AKIAEXAMPLE&secret_key=wJalrXUtnSECRET&region=eu-west-1",
            "s3://bucket/path?region=eu-west-1",
            {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnSECRET"},
        ),
        (
            "https://alice:wJalrXUtnSECRET@dvc.example.com/store",
            "https://dvc.example.com/store",
            {"auth": "basic", "user": "alice", "password": "wJalrXUtnSECRET"},
        ),
        (
            "https://alice:p%40ss%3AwJalrXUtnSECRET@dvc.example.com/store",
            "https://dvc.example.com/store",
            {"auth": "basic", "user": "alice", "password": "p@ss:wJalrXUtnSECRET"},
        ),
    ],
)
def test_remote_credentials_go_to_config_local_never_to_git(project: Path, cli, url, clean, local) -> None:
    result = cli("data", "remote", "add", "team", url, "--json", cwd=project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "name": "team",
        "url": clean,
        "default": False,
        "endpoint_url": None,
        "config": ".dvc/config",
        "credentials": ".dvc/config.local",
    }
    secret = local.get("secret_access_key") or local["password"]
    shared = (project / ".dvc" / "config").read_text()
    assert secret not in shared and "AKIAEXAMPLE" not in shared and f"url = {clean}" in shared
    assert secret not in _git(project, "diff", "--cached") and secret not in result.output
    assert _git(project, "check-ignore", ".dvc/config.local").strip() == ".dvc/config.local"
    from configobj import ConfigObj  # DVC's own config reader

    assert dict(ConfigObj(str(project / ".dvc" / "config.local"))['remote "team"']) == local
    listed = cli("data", "remote", "list", "--json", cwd=project)
    assert secret not in listed.stdout and clean in listed.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ghp_wJalrXUtnSECRET@dvc.example.com/store", "https://***@dvc.example.com/store"),
        ("azure://acct:wJalrXUtnSECRET@container/path", "azure://acct:***@container/path"),
        ("https://dvc.example.com/store?token=wJalrXUtnSECRET", "https://dvc.example.com/store?token=***"),
        ("s3://AKIA:wJalrXUtnSECRET@bucket:port/path", "s3://AKIA:***@bucket:port/path"),
        ("s3://bucket/path#access_token=wJalrXUtnSECRET", "s3://bucket/path#access_token=***"),
    ],
)
def test_remote_credentials_mlkit_cannot_place_are_refused(project: Path, cli, url, shown) -> None:
    before = (project / ".dvc" / "config").read_text()
    result = cli("data", "remote", "add", "team", url, cwd=project)
    assert result.exit_code == 2, result.output
    assert _errors(result) == [
        f"error: the URL of remote 'team' carries credentials ({shown}), which .dvc/config would share "
        "through git; nothing was written",
        "hint: add the URL without them, then keep them out of git: `dvc remote modify --local team OPTION "
        "VALUE` (.dvc/config.local), or the storage's environment variables",
    ]
    assert (project / ".dvc" / "config").read_text() == before
    assert not (project / ".dvc" / "config.local").exists()
    assert "wJalrXUtnSECRET" not in result.output


def test_remote_endpoint_with_credentials_is_refused_and_listed_redacted(project: Path, cli) -> None:
    result = cli(
        "data",
        "remote",
        "add",
        "minio",
        "s3://bucket/p",
        "--endpoint-url",
        "http://admin:wJalrXUtnSECRET@127.0.0.1:9000",
        cwd=project,
    )
    assert result.exit_code == 2, result.output
    assert _errors(result)[0] == (
        "error: the endpoint URL of remote 'minio' carries credentials (http://admin:***@127.0.0.1:9000), "
        "which .dvc/config would share through git; nothing was written"
    )
    # one written by hand (or by DVC) is listed redacted
    subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "remote", "add", "hand", "s3://b/p"],
        cwd=project,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(Path(sys.executable).with_name("dvc")),
            "remote",
            "modify",
            "hand",
            "endpointurl",
            "http://admin:wJalrXUtnSECRET@127.0.0.1:9000",
        ],
        cwd=project,
        check=True,
        capture_output=True,
    )
    listed = cli("data", "remote", "list", "--json", cwd=project)
    assert "wJalrXUtnSECRET" not in listed.stdout
    assert "http://admin:***@127.0.0.1:9000" in listed.stdout


def test_remote_add_bad_input(project: Path, cli) -> None:
    result = cli("data", "remote", "add", "local", "/tmp/elsewhere", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: a DVC remote named 'local' already exists",
        "hint: pass --force to replace it, or list them with `mlkit data remote list`",
    ]
    result = cli("data", "remote", "add", "x", "/srv/dvc", "--endpoint-url", "http://h:9000", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: --endpoint-url applies only to S3-compatible remotes (s3://bucket/path)",
        "hint: drop --endpoint-url, or use an s3:// URL for 'x'",
    ]
    result = cli("data", "remote", "add", "bad name", "/srv/dvc", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: remote name 'bad name' must start with a letter or digit and contain only letters, digits, "
        "'.', '-' and '_'",
        "hint: for example `mlkit data remote add storage URL`",
    ]


def test_gc_needs_yes_and_dry_run_lists_what_would_go(project: Path, cli) -> None:
    customers = project / "data/raw/customers.csv"
    assert cli("data", "add", "data/raw/customers.csv", cwd=project).exit_code == 0
    old_md5 = _md5(customers)
    customers.unlink()
    customers.write_text("id,spend\n1,2\n")
    assert cli("data", "add", "data/raw/customers.csv", cwd=project).exit_code == 0

    result = cli("data", "gc", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: gc deletes cached data and never asks; pass --yes to go ahead",
        "hint: see what would go first: `mlkit data gc --dry-run`",
    ]
    cache = project / ".dvc/cache/files/md5"
    objects = sorted(p.parent.name + p.name for p in cache.glob("*/*"))
    result = cli("data", "gc", "--dry-run", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    dry = json.loads(result.stdout)
    # the old version, and metrics.json that the pipeline keeps out of the cache (cache: false)
    assert old_md5 in dry["objects"]
    assert _md5(project / "data/raw/customers.csv") not in dry["objects"]
    assert sorted(p.parent.name + p.name for p in cache.glob("*/*")) == objects

    result = cli("data", "gc", "--yes", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**dry, "dry_run": False}
    assert dry["bytes"] >= len("id,spend\n") + sum(len(f"{i},{i * 3}\n") for i in range(500))
    left = sorted(p.parent.name + p.name for p in cache.glob("*/*"))
    assert left == sorted(set(objects) - set(dry["objects"]))
    assert json.loads(cli("data", "gc", "--dry-run", "--json", cwd=project).stdout)["objects"] == []
    assert data.input_md5s(project, ["data/raw/customers.csv", SAMPLE]) == {
        "data/raw/customers.csv": _md5(customers),
        SAMPLE: _md5(project / SAMPLE),
    }


# --- bad input: one line, a hint, the documented exit code, nothing half-written -----------------


def _untouched(project: Path) -> tuple[str, list[str]]:
    return _git(project, "status", "--porcelain", "--untracked-files=all"), sorted(
        p.relative_to(project).as_posix() for p in project.rglob("*.dvc")
    )


def test_add_missing_path(project: Path, cli) -> None:
    before = _untouched(project)
    result = cli("data", "add", "data/raw/customers.csv", "data/raw/nope.csv", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: data/raw/nope.csv does not exist",
        "hint: check the path; `mlkit data ls` lists tracked data",
    ]
    assert _untouched(project) == before


def test_add_path_outside_project(project: Path, cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n")
    before = _untouched(project)
    result = cli("data", "add", str(outside), cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: {outside} is outside the project ({project})",
        "hint: copy the data into the project, e.g. under data/, then add it",
    ]
    assert _untouched(project) == before


def _cache_objects(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in (project / ".dvc" / "cache").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("make", "argument", "link"),
    [
        (lambda d, o: (d / "victim.csv").symlink_to(o / "victim.csv"), "data/victim.csv", "data/victim.csv"),
        (lambda d, o: (d / "linked").symlink_to(o), "data/linked", "data/linked"),
        (lambda d, o: (d / "linked").symlink_to(o), "data/linked/victim.csv", "data/linked"),
        (
            lambda d, o: (
                (d / "mixed").mkdir(),
                (d / "mixed" / "ok.csv").write_text("a\n1\n"),
                (d / "mixed" / "victim.csv").symlink_to(o / "victim.csv"),
            ),
            "data/mixed",
            "data/mixed/victim.csv",
        ),
    ],
)
def test_add_refuses_a_symbolic_link_out_of_the_project(
    project: Path, cli, tmp_path: Path, make, argument, link
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.csv"
    victim.write_text("secret,1\n")
    victim.chmod(0o640)
    make(project / "data", outside)
    destination = victim if link.endswith("victim.csv") else outside
    before, cache = _untouched(project), _cache_objects(project)
    result = cli("data", "add", argument, cwd=project)
    assert result.exit_code == 2, result.output
    assert _errors(result) == [
        f"error: {link} is a symbolic link to {destination}, outside the project; nothing was added",
        "hint: copy the data into the project instead of linking to it, then run `mlkit data add` again",
    ]
    assert _untouched(project) == before and _cache_objects(project) == cache
    assert victim.read_text() == "secret,1\n" and (victim.stat().st_mode & 0o777) == 0o640
    assert victim.stat().st_nlink == 1


def test_add_accepts_a_symbolic_link_inside_the_project(project: Path, cli) -> None:
    (project / "data/raw/current.csv").symlink_to(project / "data/raw/customers.csv")
    result = cli("data", "add", "data/raw/current.csv", cwd=project)
    assert result.exit_code == 0, result.output


def test_add_path_tracked_by_git(project: Path, cli) -> None:
    _git(project, "add", "data/raw/customers.csv")
    before = _untouched(project)
    result = cli("data", "add", "data/raw/customers.csv", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: data/raw/customers.csv is already tracked by git; DVC cannot track what git tracks",
        "hint: run `git rm -r --cached data/raw/customers.csv` first, then `mlkit data add data/raw/customers.csv`",
    ]
    assert _untouched(project) == before


def test_failed_add_rolls_back_every_path(project: Path, cli) -> None:
    # the second path fails inside DVC (a .dvcignore inside a folder DVC collects); the first is undone
    (project / "data/raw/images/.dvcignore").write_text("*.tmp\n")
    before = _untouched(project)
    gitignore_before = (project / "data/.gitignore").read_text()
    result = cli("data", "add", "data/raw/customers.csv", "data/raw/images", cwd=project)
    assert result.exit_code == 1
    assert _errors(result) == [
        "error: adding data to DVC failed: IgnoreInCollectedDirError: .dvcignore file should not be in "
        f"collected dir path: '{project / 'data' / 'raw' / 'images'}'",
        "hint: run again with --debug for the traceback",
    ]
    assert _untouched(project) == before
    assert not (project / "data/raw/.gitignore").exists()
    assert (project / "data/.gitignore").read_text() == gitignore_before


@pytest.mark.slow  # starts a process
def test_push_without_remote(project: Path, cli) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "remote", "remove", "local"],
        cwd=project,
        check=True,
        capture_output=True,
    )
    for args in (("data", "push"), ("data", "pull")):
        result = cli(*args, cwd=project)
        assert result.exit_code == 2
        assert _errors(result) == [
            "error: no DVC remote configured",
            "hint: run `mlkit data remote add NAME URL --default`",
        ]
    listed = json.loads(cli("data", "ls", "--json", cwd=project).stdout)
    assert [d["in_remote"] for d in listed] == [None]


def test_push_to_missing_remote_directory(project: Path, cli, tmp_path: Path) -> None:
    remote = Path(data.remotes(load_project(project))[0]["url"])
    shutil.rmtree(remote)
    result = cli("data", "push", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: the DVC remote 'local' points to {remote}, which does not exist",
        f"hint: create it (`mkdir -p {remote}`) or `mlkit data remote add local URL --default --force`",
    ]
    assert not remote.exists()


def test_push_to_a_remote_that_is_a_file(project: Path, cli, tmp_path: Path) -> None:
    remote = Path(data.remotes(load_project(project))[0]["url"])
    shutil.rmtree(remote)
    remote.write_text("not a folder")
    for args in (("data", "push"), ("data", "pull")):
        result = cli(*args, cwd=project)
        assert result.exit_code == 2
        assert _errors(result) == [
            f"error: the DVC remote 'local' points to {remote}, which is a file, not a folder",
            "hint: point the remote at a folder: `mlkit data remote add local URL --default --force`",
        ]
    assert remote.read_text() == "not a folder"


def test_data_commands_without_dvc_set_up(project: Path, cli) -> None:
    shutil.rmtree(project / ".dvc")
    for args in (("data", "status"), ("data", "ls"), ("data", "push"), ("data", "add", "data/raw/customers.csv")):
        result = cli(*args, cwd=project)
        assert result.exit_code == 2, args
        assert _errors(result) == [
            f"error: DVC is not set up in {project} (no .dvc folder)",
            "hint: run `dvc init` there, then `mlkit data remote add NAME URL --default`",
        ]


def test_dvc_loggers_stay_silent(project: Path, cli) -> None:
    import logging

    assert cli("data", "status", cwd=project).exit_code == 0
    # importing dvc gives these loggers handlers that print raw `ERROR: ...` lines to stderr
    for name in ("dvc", "dvc_data", "dvc_objects"):
        assert not logging.getLogger(name).isEnabledFor(logging.ERROR), name


def test_the_remote_in_mlkit_data_remote_is_the_default(
    project: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = Path(data.remotes(load_project(project))[0]["url"])
    from_secret = tmp_path / "from-secret"
    from_secret.mkdir()
    monkeypatch.setenv("MLKIT_DATA_REMOTE", os.path.relpath(from_secret, project))  # relative to the shell

    result = cli("data", "push", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    pushed = json.loads(result.stdout)
    assert (pushed["remote"], pushed["transferred"]) == ("mlkit_data_remote", 1)
    md5 = _md5(project / SAMPLE)
    assert (from_secret / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert list(configured.rglob("*")) == []
    listed = json.loads(cli("data", "remote", "list", "--json", cwd=project).stdout)
    assert [(r["name"], r["url"], r["default"]) for r in listed] == [
        ("mlkit_data_remote", str(from_secret), True),
        ("local", str(configured), False),
    ]
    assert _git(project, "status", "--porcelain", "--", ".dvc") == ""  # DVC's config files are left alone
    assert not (project / ".dvc" / "config.local").exists()

    shutil.rmtree(project / ".dvc" / "cache")
    (project / SAMPLE).unlink()
    result = cli("data", "pull", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert _md5(project / SAMPLE) == md5

    assert cli("data", "push", "--remote", "local", cwd=project).exit_code == 0  # a named remote still wins
    assert (configured / "files" / "md5" / md5[:2] / md5[2:]).is_file()

    monkeypatch.setenv("MLKIT_DATA_REMOTE", str(tmp_path / "nowhere"))
    result = cli("data", "push", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: the DVC remote 'mlkit_data_remote' points to {tmp_path / 'nowhere'}, which does not exist",
        f"hint: create it (`mkdir -p {tmp_path / 'nowhere'}`) or set MLKIT_DATA_REMOTE to another one",
    ]


def test_push_to_unwritable_remote(project: Path, cli) -> None:
    # /proc/sys refuses new files even for root, where a chmod would not
    result = cli("data", "remote", "add", "ro", "/proc/sys", "--default", cwd=project)
    assert result.exit_code == 0, result.stderr
    result = cli("data", "push", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: the DVC remote 'ro' at /proc/sys is not writable",
        "hint: fix its permissions or choose another remote with `mlkit data remote add`",
    ]


def test_not_inside_a_project(tmp_path: Path, cli) -> None:
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    for args in (("data", "add", "x.csv"), ("data", "ls"), ("data", "push"), ("data", "remote", "list")):
        result = cli(*args, cwd=elsewhere)
        assert result.exit_code == 2
        assert _errors(result) == [
            f"error: not inside an mlkit project (no mlkit.yaml in {elsewhere.resolve()} or any parent)",
            "hint: run `mlkit init NAME` to create one, or cd into a project",
        ]


def test_lock_held_by_another_process(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import zc.lockfile

    monkeypatch.setenv("MLKIT_DATA_LOCK_TIMEOUT", "0")
    before = _untouched(project)
    holder = zc.lockfile.LockFile(str(project / ".dvc" / "tmp" / "lock"))
    try:
        result = cli("data", "add", "data/raw/customers.csv", cwd=project)
    finally:
        holder.close()
    assert result.exit_code == 1
    assert _errors(result) == [
        "error: another process holds DVC's lock on this project (waited 0s)",
        "hint: let the other `mlkit data` or `dvc` command finish, then run this again; if none is running, "
        "delete .dvc/tmp/lock",
    ]
    assert _untouched(project) == before
    assert cli("data", "add", "data/raw/customers.csv", cwd=project).exit_code == 0


def test_bad_lock_timeout_setting(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKIT_DATA_LOCK_TIMEOUT", "soon")
    result = cli("data", "push", cwd=project)
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: MLKIT_DATA_LOCK_TIMEOUT='soon' must be a number of seconds >= 0",
        "hint: unset it or set e.g. MLKIT_DATA_LOCK_TIMEOUT=60",
    ]


def test_github_actions_summary_and_outputs(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert cli("data", "ls", cwd=project).exit_code == 0
    md5 = yaml.safe_load((project / f"{SAMPLE}.dvc").read_text())["outs"][0]["md5"]
    assert f"| {SAMPLE} | 121.0 KiB |  | {md5} | yes | no |" in summary.read_text()
    assert outputs.read_text().splitlines() == ["data_sets=1", f"data_not_pushed={SAMPLE}"]


def test_pull_of_data_that_was_never_pushed(project: Path, cli) -> None:
    assert cli("data", "add", "data/raw/customers.csv", cwd=project).exit_code == 0
    shutil.rmtree(project / ".dvc" / "cache")
    (project / "data/raw/customers.csv").unlink()
    result = cli("data", "pull", cwd=project / "src")
    assert result.exit_code == 1
    assert _errors(result) == [
        "error: pulling from the DVC remote 'local' failed: data/raw/customers.csv is in neither the cache "
        "nor the remote",
        "hint: push it from a machine that has it (`mlkit data push`), then pull again",
    ]
    result = cli("data", "checkout", cwd=project)
    assert result.exit_code == 1
    assert _errors(result) == [
        "error: checking data out of the DVC cache failed: data/raw/customers.csv is not in the cache",
        "hint: run `mlkit data pull` to fetch it from the remote",
    ]


def test_add_a_file_inside_a_tracked_folder(project: Path, cli) -> None:
    assert cli("data", "add", "data/raw/images", cwd=project).exit_code == 0
    before = _untouched(project)
    result = cli("data", "add", "images/03.bin", cwd=project / "data" / "raw")
    assert result.exit_code == 2
    assert _errors(result) == [
        "error: data/raw/images/03.bin is inside the data set data/raw/images",
        "hint: add the whole folder again: `mlkit data add data/raw/images`",
    ]
    assert _untouched(project) == before
