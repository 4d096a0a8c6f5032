"""`mlkit init` against real git and DVC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml

from mlkit import __version__
from mlkit.config import load_config

DVC = str(Path(sys.executable).with_name("dvc"))
CUSTOM_TEMPLATE = Path(__file__).parents[1] / "data" / "custom-template"


def dvc(root: Path, *args: str) -> str:
    return subprocess.run([DVC, *args], cwd=root, capture_output=True, text=True, check=True).stdout


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_clean(root: Path) -> None:
    assert git.Repo(root).git.status("--porcelain") == ""
    assert dvc(root, "status").strip() == "Data and pipelines are up to date."
    assert dvc(root, "data", "status").strip() == "No changes."


@pytest.mark.parametrize(
    ("template", "data_file", "target", "estimator", "rows"),
    [
        ("classification", "data/breast_cancer.csv", "diagnosis", "xgboost.XGBClassifier", 569),
        ("regression", "data/diabetes.csv", "progression", "sklearn.ensemble.RandomForestRegressor", 442),
    ],
)
def test_init_creates_a_committed_versioned_project(cli, tmp_path, template, data_file, target, estimator, rows):
    result = cli("init", "churn-model", "--template", template, "--data-remote", str(tmp_path / "remote"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "churn-model"
    assert f"Created churn-model in {root}" in result.stdout

    for name in (
        "README.md",
        "mlkit.yaml",
        "params.yaml",
        "dvc.yaml",
        "dvc.lock",
        ".gitignore",
        ".dvcignore",
        "requirements.txt",
        "src/churn_model/features.py",
        "tests/test_features.py",
        f"{data_file}.dvc",
    ):
        assert (root / name).is_file(), name
    assert "\nmlkit-ops==" + __version__ + "\n" in (root / "requirements.txt").read_text()

    config, _ = load_config(root)
    assert (config.model.task, config.model.estimator, config.data.target) == (template, estimator, target)
    assert config.data.hook == "churn_model.features:build_features"

    lines = (root / data_file).read_text().splitlines()
    assert len(lines) == rows + 1 and lines[0].split(",")[-1] == target
    if template == "classification":
        assert {line.split(",")[-1] for line in lines[1:]} == {"malignant", "benign"}

    repo = git.Repo(root)
    assert repo.active_branch.name == "main"
    assert len(list(repo.iter_commits())) == 1
    tracked = set(repo.git.ls_files().splitlines())
    assert data_file not in tracked and f"{data_file}.dvc" in tracked and "dvc.lock" in tracked
    assert_clean(root)

    dvc_config = (root / ".dvc" / "config").read_text()
    assert f"url = {tmp_path / 'remote'}" in dvc_config
    assert 'type = "reflink,hardlink,copy"' in dvc_config

    record = json.loads((root / ".mlkit" / "template.json").read_text())
    assert record["template"] == template and record["mlkit_version"] == __version__
    assert record["answers"]["package_name"] == "churn_model"
    assert not list(tmp_path.glob(".mlkit-init-*"))


def test_data_push_works_against_the_default_remote(make_project, tmp_path):
    root = make_project("churn")
    dvc(root, "push")
    assert any((tmp_path / "remote-churn").rglob("*")), "nothing was pushed to the remote"
    assert "Cache and remote 'local' are in sync" in dvc(root, "status", "--cloud")


def test_default_remote_is_outside_the_project_in_the_user_cache(cli, tmp_path, isolated_env):
    result = cli("init", "churn", "--json", cwd=tmp_path)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    remote = Path(data["data_remote"])
    assert remote.is_dir()
    assert remote.is_relative_to(isolated_env / ".cache" / "mlkit" / "remotes")
    assert not remote.is_relative_to(tmp_path / "churn")


def test_answers_from_set_and_user_cookiecutterrc_is_ignored(cli, tmp_path, isolated_env):
    (isolated_env / ".cookiecutterrc").write_text("default_context:\n  python_version: '3.9'\n")
    result = cli(
        "init",
        "fraud",
        "--set",
        "python_version=3.12",
        "--set",
        "model_name=fraud-detector",
        "--data-remote",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    settings = yaml.safe_load((tmp_path / "fraud" / "mlkit.yaml").read_text())
    assert settings["ci"]["python"] == "3.12"
    assert settings["model"]["name"] == "fraud-detector"


def test_dir_option_places_the_project(cli, tmp_path):
    target = tmp_path / "deep" / "place"
    result = cli("init", "churn", "--dir", str(target), "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (target / "mlkit.yaml").is_file()
    assert not (tmp_path / "churn").exists()


def test_no_git_and_no_dvc(cli, tmp_path):
    result = cli("init", "plain", "--no-git", "--no-dvc", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "plain"
    assert not (root / ".git").exists() and not (root / ".dvc").exists()
    assert not (root / "dvc.yaml").exists()
    assert (root / "data" / "breast_cancer.csv").is_file()


def test_non_empty_target_is_refused_and_untouched(cli, tmp_path):
    target = tmp_path / "churn"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = cli("init", "churn", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {target} is not empty; nothing was changed"
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob(".mlkit-init-*"))


def test_force_writes_into_a_non_empty_folder(cli, tmp_path):
    target = tmp_path / "churn"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "README.md").write_text("old readme")
    result = cli("init", "churn", "--force", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "README.md").read_text() != "old readme"
    assert (target / ".git").is_dir()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


USER_FILES = {
    "src/mycode/main.py": b"print('mine')\n",
    "data/my_raw_data.csv": b"a,b\n1,2\n",
    "tests/test_mine.py": b"def test_mine():\n    assert True\n",
    "notes.txt": b"mine",
    "README.md": b"old readme",
}


def _write_user_files(target: Path) -> None:
    for relative, content in USER_FILES.items():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(content)


def test_force_keeps_every_user_file_and_names_the_overwritten_ones(cli, tmp_path):
    target = tmp_path / "churn"
    _write_user_files(target)
    result = cli("init", "churn", "--force", "--data-remote", str(tmp_path / "r"), "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    after = _files(target)
    for relative, content in USER_FILES.items():
        if relative != "README.md":
            assert after[relative] == content, relative
    assert after["README.md"] != USER_FILES["README.md"]
    assert json.loads(result.stdout)["overwritten"] == ["README.md"]
    assert (target / "src/churn/features.py").is_file() and (target / "tests/test_features.py").is_file()
    assert (target / "data/breast_cancer.csv.dvc").is_file()


def test_force_warns_about_overwritten_files(cli, tmp_path):
    target = tmp_path / "churn"
    _write_user_files(target)
    result = cli("init", "churn", "--force", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: --force replaced 1 file of yours with the template's: README.md" in result.stderr


def test_interrupted_force_init_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    from mlkit import scaffold

    target = tmp_path / "churn"
    _write_user_files(target)
    before = _files(target)
    real_move = scaffold._move
    calls = []

    def move(source, destination):
        calls.append(destination)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_move(source, destination)

    monkeypatch.setattr(scaffold, "_move", move, raising=False)
    with pytest.raises(KeyboardInterrupt):
        scaffold.init_project("churn", directory=target, force=True, data_remote=tmp_path / "r")
    assert len(calls) == 4
    assert _files(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda t: (t / "src").write_text("a file"),
            "{t}/src is a file of yours where the template has a folder; nothing was changed",
        ),
        (
            lambda t: ((t / "elsewhere").mkdir(), (t / "data").symlink_to(t / "elsewhere")),
            "{t}/data is a symbolic link where the template has a folder; nothing was changed",
        ),
        (
            lambda t: (t / "README.md").mkdir(),
            "{t}/README.md is a folder of yours where the template has a file; nothing was changed",
        ),
    ],
)
def test_force_refuses_to_replace_a_folder_or_write_through_a_link(cli, tmp_path, make, message):
    target = tmp_path / "churn"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    make(target)
    before = _files(target)
    result = cli("init", "churn", "--force", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert error_line(result.stderr) == "error: " + message.format(t=target)
    assert _files(target) == before
    assert not (target / ".git").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn"]


def test_force_refuses_an_existing_git_repository(cli, tmp_path):
    target = tmp_path / "churn"
    git.Repo.init(target)
    (target / "x").write_text("x")
    result = cli("init", "churn", "--force", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: {target} is already a git repository; mlkit init creates a new one"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["init", "a/b"], "error: project name 'a/b' must not contain path separators or '..'"),
        (["init", ".."], "error: project name '..' must not contain path separators or '..'"),
        (["init", "class"], "error: project name 'class' cannot become a Python package ('class' is a keyword)"),
        (
            ["init", "churn", "--template", "clustering"],
            "error: unknown template 'clustering'; bundled templates: classification, regression",
        ),
        (
            ["init", "churn", "--set", "colour=red"],
            "error: --set colour: not a question of this template; allowed: data_file, dataset, default_branch, "
            "estimator, mlkit_version, model_name, package_name, project_name, project_slug, python_version, "
            "sample_data, target, task, use_dvc",
        ),
        (
            ["init", "churn", "--set", "task=regression"],
            "error: --set task: is decided by mlkit (use the NAME argument, --template or --data)",
        ),
        (["init", "churn", "--set", "novalue"], "error: --set 'novalue': must look like KEY=VALUE"),
        (
            ["init", "churn", "--set", "estimator=os.path.Foo"],
            "error: --set estimator: 'os' is not an allowed package; allowed: churn (the project's package), "
            "sklearn, xgboost, lightgbm, catboost (add a package you trust to model.allow_modules)",
        ),
        (["init"], "error: missing project NAME"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(cli, tmp_path, args, message):
    result = cli(*args, cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
    assert list(tmp_path.iterdir()) == []


def test_foreign_template_needs_trust(cli, tmp_path):
    result = cli("init", "custom", "--template", str(CUSTOM_TEMPLATE), cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: template '{CUSTOM_TEMPLATE}' is not bundled with mlkit; templates can run arbitrary code"
    )
    assert list(tmp_path.iterdir()) == []


def test_trusted_foreign_template_warns_and_is_wired(cli, tmp_path):
    result = cli(
        "init",
        "custom",
        "--template",
        str(CUSTOM_TEMPLATE),
        "--trust-template",
        "--set",
        "greeting=hi",
        "--data-remote",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert "warning: using template" in result.stderr
    root = tmp_path / "custom"
    assert (root / "GREETING").read_text().strip() == "hi"
    assert (root / "data" / "points.csv.dvc").is_file()
    assert git.Repo(root).git.status("--porcelain") == ""


def test_template_error_midway_leaves_nothing(cli, tmp_path):
    broken = tmp_path / "broken-template"
    shutil.copytree(CUSTOM_TEMPLATE, broken)
    (broken / "{{cookiecutter.project_name}}" / "BROKEN").write_text("{{ cookiecutter.nope }")
    work = tmp_path / "work"
    work.mkdir()
    result = cli(
        "init", "custom", "--template", str(broken), "--trust-template", "--data-remote", str(tmp_path / "r"), cwd=work
    )
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith(
        "error: mlkit init failed, nothing was created: template rendering failed: "
    )
    assert result.stderr.splitlines()[-1] == "hint: check the template and the --set answers"
    assert list(work.iterdir()) == []
    assert not (tmp_path / "r").exists()


def test_missing_git_midway_leaves_nothing(tmp_path):
    """A real subprocess with no git on PATH: init fails cleanly and removes what it started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dvc",):
        (bin_dir / tool).symlink_to(Path(sys.executable).with_name(tool))
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "NO_COLOR": "1", "CI": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "mlkit", "init", "churn", "--data-remote", str(tmp_path / "r")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == "error: mlkit init failed, nothing was created: git is not installed"
    assert result.stderr.splitlines()[-1] == "hint: install git, or pass --no-git"
    assert list(work.iterdir()) == []
    assert not (tmp_path / "r").exists()


def test_trusted_template_from_a_git_url_is_cloned_then_rendered(cli, tmp_path):
    origin = tmp_path / "template-repo"
    shutil.copytree(CUSTOM_TEMPLATE, origin)
    repo = git.Repo.init(origin)
    repo.git.add(A=True)
    repo.git.commit("-m", "template")
    url = f"git+file://{origin}"
    work = tmp_path / "work"
    work.mkdir()
    refused = cli("init", "custom", "--template", url, cwd=work)
    assert refused.exit_code == 2
    assert error_line(refused.stderr) == (
        f"error: template '{url}' is not bundled with mlkit; templates can run arbitrary code"
    )
    result = cli(
        "init", "custom", "--template", url, "--trust-template", "--data-remote", str(tmp_path / "r"), cwd=work
    )
    assert result.exit_code == 0, result.output
    assert (work / "custom" / "GREETING").read_text().strip() == "hello"
    assert sorted(p.name for p in work.iterdir()) == ["custom"]


def test_template_url_that_cannot_be_cloned_leaves_nothing(cli, tmp_path):
    url = f"file://{tmp_path / 'no-such-repo'}"
    result = cli("init", "custom", "--template", url, "--trust-template", cwd=tmp_path)
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith(
        f"error: mlkit init failed, nothing was created: could not clone template {url}: "
    )
    assert result.stderr.splitlines()[-1] == "hint: check the URL and your network, or clone it and pass the folder"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--dir", "/proc/churn"], "error: cannot create /proc/churn: "),
        (["--dir", "/proc", "--force"], "error: cannot write into /proc: "),
    ],
)
def test_init_where_nothing_can_be_written_exits_2_before_any_work(cli, tmp_path, args, start):
    before = sorted(Path("/").iterdir())
    result = cli("init", "churn", *args, "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert error_line(result.stderr).startswith(start)
    assert "initialising" not in result.stderr
    assert sorted(Path("/").iterdir()) == before and list(tmp_path.iterdir()) == []


def test_sigterm_during_a_force_merge_undoes_it(tmp_path):
    target = tmp_path / "churn"
    _write_user_files(target)
    before = _files(target)
    script = f"""
import os, signal, sys
from pathlib import Path
from mlkit import scaffold
real, calls = scaffold._move, []
def move(source, destination):
    calls.append(destination)
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGTERM)
    real(source, destination)
scaffold._move = move
try:
    scaffold.init_project("churn", directory=Path({str(target)!r}), force=True,
                          data_remote=Path({str(tmp_path / "r")!r}))
except KeyboardInterrupt:
    sys.exit(130)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert _files(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn"]


def test_data_remote_that_is_a_file_exits_2_before_any_work(cli, tmp_path):
    remote = tmp_path / "remote-file"
    remote.write_text("x")
    result = cli("init", "churn", "--data-remote", str(remote), cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert error_line(result.stderr) == f"error: --data-remote {remote} is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["remote-file"]
