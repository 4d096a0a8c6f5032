"""Play generated GitHub Actions workflows job by job, the way a runner does, on this machine.

Each job starts from a fresh clone of a bare repository (what `actions/checkout` gives), in a new
virtualenv (what `actions/setup-python` gives), and installs mlkit through the workflow's own install
step with PyPI out of reach: ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS`` pointing at a wheelhouse that holds
the wheel built from this checkout. So the pin a generated project carries must resolve to this package,
and to no other.

The job virtualenv would otherwise need every dependency of mlkit (MLflow, DVC, scikit-learn...) from an
index. Instead it sees the test virtualenv's packages through one ``.pth`` file that adds a folder of
links to that virtualenv's site-packages, minus mlkit itself (its dist-info and its editable-install
hook). pip counts those packages as installed and takes only mlkit-ops from the wheelhouse. (A
``--system-site-packages`` virtualenv would not do: it sees the base interpreter's packages, not those
of the virtualenv it was made from.)

Runner files are real: ``GITHUB_OUTPUT`` and ``GITHUB_ENV`` per step, ``GITHUB_STEP_SUMMARY`` per job,
``GITHUB_EVENT_PATH``, ``RUNNER_TEMP``, ``GITHUB_ACTIONS=true``, ``CI=true``. Steps run with
``bash -e``, GitHub's default shell. Expressions are evaluated for the simple forms the generated files
use: context references, string literals, ``==``, ``!=``, ``&&``, ``||``, ``!``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# mlkit's own files in the test virtualenv: the job virtualenv must get mlkit from the wheel alone
_OWN = re.compile(
    r"^(mlkit|mlkit_ops-.*\.dist-info|_editable_impl_mlkit_ops\.pth|__editable__.*mlkit.*|"
    r"__pycache__)$"
)

GH_STUB = r'''#!PYTHON
"""A stand-in for the `gh` CLI: records every call, keeps issue comments in a JSON file."""
import json, os, sys
from pathlib import Path

state = Path(os.environ["GH_STUB_STATE"])
data = json.loads(state.read_text()) if state.exists() else {"calls": [], "comments": [], "next_id": 100}
args = sys.argv[1:]
data["calls"].append(args)
out = ""
if args[:1] == ["api"]:
    method = args[args.index("--method") + 1] if "--method" in args else "GET"
    path = next(a for a in args[1:] if a.startswith("repos/"))
    body = None
    if "-F" in args:
        key, _, value = args[args.index("-F") + 1].partition("=")
        assert key == "body" and value.startswith("@"), args
        body = Path(value[1:]).read_text()
    if method == "GET" and path.endswith("/comments"):
        number = int(path.split("/")[-2])
        expected = '.[] | select(.user.type == "Bot" and (.body | startswith(env.MARKER))) | .id'
        assert args[args.index("--jq") + 1] == expected, args
        marker = os.environ["MARKER"]
        out = "".join(f"{c['id']}\n" for c in data["comments"]
                      if c["issue"] == number and c["user"]["type"] == "Bot" and c["body"].startswith(marker))
    elif method == "POST" and path.endswith("/comments"):
        number = int(path.split("/")[-2])
        data["comments"].append({"id": data["next_id"], "issue": number, "body": body,
                                 "user": {"login": "github-actions[bot]", "type": "Bot"}})
        data["next_id"] += 1
        out = "{}"
    elif method == "PATCH" and "/issues/comments/" in path:
        comment = int(path.rsplit("/", 1)[1])
        (found,) = [c for c in data["comments"] if c["id"] == comment]
        found["body"] = body
        out = "{}"
    else:
        raise SystemExit(f"gh stub: unexpected call {args}")
else:
    raise SystemExit(f"gh stub: unexpected call {args}")
state.write_text(json.dumps(data))
sys.stdout.write(out)
'''


def build_wheelhouse(target: Path) -> Path:
    """The wheel of this checkout in ``target``, built with uv (offline first: its cache has hatchling)."""
    target.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH")
    command = [uv, "build", "--wheel", "--quiet", "--out-dir", str(target), str(ROOT)]
    done = subprocess.run([*command[:2], "--offline", *command[2:]], capture_output=True, text=True)
    if done.returncode != 0:
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"uv build failed:\n{done.stderr}")
    (_wheel,) = target.glob("mlkit_ops-*.whl")  # exactly one
    return target


def dependency_folder(target: Path) -> Path:
    """Links to every package of this virtualenv but mlkit's own files (see the module docstring)."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if not _OWN.match(entry.name):
            (target / entry.name).symlink_to(entry)
    return target


def make_job_python(venv: Path, dependencies: Path) -> Path:
    """A fresh virtualenv with pip that sees ``dependencies``; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz-mlkit-test-dependencies.pth").write_text(f"import site; site.addsitedir({str(dependencies)!r})\n")
    return venv / "bin"


def install_gh_stub(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / "gh"
    stub.write_text(GH_STUB.replace("#!PYTHON", f"#!{sys.executable}", 1))
    stub.chmod(0o755)
    return folder


# --- expressions -----------------------------------------------------------------------------------

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))|"
    r"(?P<ref>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[[^\]]+\])*)|(?P<num>\d+))"
)


def evaluate(expression: str, lookup: Any) -> Any:
    """A GitHub expression of the simple forms: references, 'strings', ==, !=, &&, ||, !, parentheses."""
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"unsupported expression: {expression!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "str":
            tokens.append(("value", value[1:-1].replace("''", "'")))
        elif kind == "num":
            tokens.append(("value", int(value)))
        elif kind == "ref":
            literal = {"true": True, "false": False, "null": None}
            tokens.append(("value", literal[value] if value in literal else lookup(value)))
        else:
            tokens.append(("op", value))
    tokens.append(("end", None))
    index = 0

    def peek() -> tuple[str, Any]:
        return tokens[index]

    def take() -> tuple[str, Any]:
        nonlocal index
        index += 1
        return tokens[index - 1]

    def primary() -> Any:
        kind, value = take()
        if (kind, value) == ("op", "!"):
            return not truthy(primary())
        if (kind, value) == ("op", "("):
            result = disjunction()
            assert take() == ("op", ")"), expression
            return result
        assert kind == "value", expression
        return value

    def comparison() -> Any:
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            _, op = take()
            right = primary()
            same = _loose(left) == _loose(right)
            left = same if op == "==" else not same
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            left = right if truthy(left) else left
        return left

    def disjunction() -> Any:
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left if truthy(left) else right
        return left

    result = disjunction()
    assert peek()[0] == "end", expression
    return result


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "")


def _loose(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT (or GITHUB_ENV) file: `key=value` lines and `key<<DELIMITER` blocks."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            out[key] = "\n".join(value)
        elif line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


# --- the runner ------------------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    status: str  # success, failure, skipped
    output: str = ""


@dataclass
class JobResult:
    name: str
    status: str  # success, failure, skipped
    environment: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    uses: list[str] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)  # uploaded by actions/upload-artifact

    @property
    def annotations(self) -> list[str]:
        return [
            line
            for step in self.steps
            for line in step.output.splitlines()
            if re.match(r"^::(error|warning|notice)", line)
        ]

    def step(self, name: str) -> StepResult:
        (found,) = [s for s in self.steps if s.name == name]
        return found


@dataclass
class Event:
    name: str  # push, pull_request, schedule, workflow_dispatch
    ref: str  # refs/heads/main, refs/pull/7/merge
    sha: str  # the commit the jobs check out
    inputs: dict[str, Any] = field(default_factory=dict)
    pull_request: int | None = None


@dataclass
class Runner:
    """Plays one workflow for one event; ``secrets`` maps an environment (None: the repository) to secrets."""

    repository: Path  # the bare repository the jobs clone
    work: Path  # a folder for this run's workspaces, virtualenvs and runner files
    wheelhouse: Path
    dependencies: Path
    stubs: Path
    secrets: Mapping[str | None, Mapping[str, str]] = field(default_factory=dict)
    home: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def play(self, workflow_file: Path, event: Event) -> dict[str, JobResult]:
        workflow = yaml.safe_load(workflow_file.read_text())
        results: dict[str, JobResult] = {}
        pending = dict(workflow["jobs"])
        while pending:
            ready = [name for name, job in pending.items() if all(n in results for n in _needs(job))]
            assert ready, f"a cycle in needs: {list(pending)}"
            for name in ready:
                results[name] = self._job(name, pending.pop(name), workflow, event, results)
        return results

    # --- one job -----------------------------------------------------------------------------------

    def _job(
        self, name: str, job: dict[str, Any], workflow: dict[str, Any], event: Event, done: Mapping[str, JobResult]
    ) -> JobResult:
        environment = job.get("environment")
        if any(done[n].status != "success" for n in _needs(job)):
            return JobResult(name, "skipped", environment)
        context = _Context(event, self.repository.name, {n: done[n] for n in _needs(job)}, self._secrets(None))
        if "if" in job and not truthy(evaluate(job["if"], context.lookup)):
            return JobResult(name, "skipped", environment)
        if environment is not None:
            environment = render(context.substitute(environment))
            context.secrets = self._secrets(environment)
        result = JobResult(name, "success", environment)
        folder = self.work / name
        temp = folder / "temp"
        temp.mkdir(parents=True)
        workspace = folder / "workspace"
        workspace.mkdir()  # empty until a checkout fills it, as on a runner
        summary = folder / "summary.md"
        summary.touch()
        context.runner = {"temp": str(temp), "os": "Linux"}
        event_file = folder / "event.json"
        event_file.write_text(json.dumps(context.event_payload()))
        env: dict[str, str] = {
            "PATH": os.pathsep.join([str(self.stubs), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.home or folder / "home"),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_REF": event.ref,
            "GITHUB_SHA": event.sha,
            "GITHUB_REPOSITORY": context.repository,
            "GITHUB_JOB": name,
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
            # PyPI out of reach: mlkit-ops comes from the wheel of this checkout, or from nowhere
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.wheelhouse),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "GH_STUB_STATE": str(self.work.parent / "gh-state.json"),
            **self.extra_env,
        }
        for scope in (workflow.get("env") or {}, job.get("env") or {}):
            env.update({k: render(context.substitute(v)) for k, v in scope.items()})
        github_env = folder / "github_env"
        github_env.touch()
        failed = False
        for index, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            if failed or ("if" in step and not truthy(evaluate(step["if"], context.lookup))):
                result.steps.append(StepResult(label, "skipped"))
                continue
            if "uses" in step:
                result.uses.append(step["uses"])
                problem = self._uses(step, event, workspace, folder, env, context, result)
                result.steps.append(StepResult(label, "failure" if problem else "success", problem))
                if problem:
                    failed = True
                    result.status = "failure"
                continue
            output = folder / f"output-{index}"
            output.touch()
            step_env = {
                **env,
                **parse_outputs(github_env.read_text()),
                "GITHUB_OUTPUT": str(output),
                "GITHUB_ENV": str(github_env),
            }
            step_env.update({k: render(context.substitute(v)) for k, v in (step.get("env") or {}).items()})
            script = folder / f"step-{index}.sh"
            script.write_text(step["run"])
            ran = subprocess.run(
                ["bash", "-e", str(script)],
                cwd=workspace,
                env=step_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            status = "success" if ran.returncode == 0 else "failure"
            result.steps.append(StepResult(label, status, ran.stdout))
            if "id" in step:
                context.steps[step["id"]] = parse_outputs(output.read_text())
            if status == "failure":
                failed = True
                result.status = "failure"
        result.summary = summary.read_text()
        result.outputs = {k: render(context.substitute(v)) for k, v in (job.get("outputs") or {}).items()}
        return result

    def _uses(
        self,
        step: dict[str, Any],
        event: Event,
        workspace: Path,
        folder: Path,
        env: dict[str, str],
        context: _Context,
        result: JobResult,
    ) -> str:
        """Play an action; '' when it succeeded, else the error it reports."""
        action = step["uses"].split("@")[0]
        given = {k: render(context.substitute(v)) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":
            depth = int((step.get("with") or {}).get("fetch-depth", 1))
            clone = ["git", "clone", "-q", "--no-checkout"]
            if depth:
                clone += ["--depth", str(depth)]
            if event.pull_request is not None:
                subprocess.run([*clone[:3], "--no-checkout", f"file://{self.repository}", str(workspace)], check=True)
                subprocess.run(["git", "fetch", "-q", "origin", f"+{event.ref}:{event.ref}"], cwd=workspace, check=True)
            else:
                subprocess.run(
                    [
                        *clone,
                        "--branch",
                        event.ref.removeprefix("refs/heads/"),
                        f"file://{self.repository}",
                        str(workspace),
                    ],
                    check=True,
                )
            subprocess.run(["git", "checkout", "-q", "--detach", event.sha], cwd=workspace, check=True)
        elif action == "actions/setup-python":
            bin_dir = make_job_python(folder / "python", self.dependencies)
            env["PATH"] = os.pathsep.join([str(self.stubs), str(bin_dir), *env["PATH"].split(os.pathsep)[1:]])
        elif action == "actions/upload-artifact":
            source = Path(given["path"])
            if not source.is_absolute():
                source = workspace / source
            if not source.exists():
                if given.get("if-no-files-found", "warn") == "error":
                    return f"::error::No files were found with the provided path: {given['path']}"
                return ""
            kept = self.work / "artifacts" / given.get("name", "artifact") / source.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, kept)
            result.artifacts[given.get("name", "artifact")] = kept
        # any other action is recorded only
        return ""

    def _secrets(self, environment: str | None) -> dict[str, str]:
        merged = dict(self.secrets.get(None, {}))
        if environment is not None:
            merged.update(self.secrets.get(environment, {}))
        return merged


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


@dataclass
class _Context:
    event: Event
    repository: str
    needs: Mapping[str, JobResult]
    secrets: Mapping[str, str]
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    runner: dict[str, str] = field(default_factory=dict)

    def event_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"ref": self.event.ref, "repository": {"full_name": self.repository}}
        if self.event.pull_request is not None:
            payload["pull_request"] = {
                "number": self.event.pull_request,
                "head": {"repo": {"full_name": self.repository}},
            }
        if self.event.inputs:
            payload["inputs"] = self.event.inputs
        return payload

    def lookup(self, reference: str) -> Any:
        head, _, rest = reference.partition(".")
        if head == "steps":
            step, _, key = rest.partition(".outputs.")
            return self.steps.get(step, {}).get(key, "")
        if head == "needs":
            job, _, key = rest.partition(".outputs.")
            return self.needs[job].outputs.get(key, "")
        if head == "secrets":
            return self.secrets.get(rest, "")
        if head == "inputs":
            return self.event.inputs.get(rest, "")
        if head == "runner" and rest in self.runner:
            return self.runner[rest]
        if head == "github":
            values: dict[str, Any] = {
                "event_name": self.event.name,
                "ref": self.event.ref,
                "sha": self.event.sha,
                "repository": self.repository,
                "run_id": "1",
                "token": "runner-token",
            }
            if rest in values:
                return values[rest]
            if rest.startswith("event."):
                value: Any = self.event_payload()
                for part in rest.removeprefix("event.").split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                return value
        raise ValueError(f"unsupported reference: {reference}")

    def substitute(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        whole = _EXPR.fullmatch(value.strip())
        if whole:
            return evaluate(whole.group(1), self.lookup)
        return _EXPR.sub(lambda m: render(evaluate(m.group(1), self.lookup)), value)


# --- GitLab ----------------------------------------------------------------------------------------

CURL_STUB = r'''#!PYTHON
"""A stand-in for curl against GitLab's merge request notes API: records calls, keeps the notes."""
import json, os, sys
from pathlib import Path

state = Path(os.environ["CURL_STUB_STATE"])
data = json.loads(state.read_text()) if state.exists() else {"calls": [], "notes": [], "next_id": 500}
args = sys.argv[1:]
method = args[args.index("-X") + 1] if "-X" in args else "GET"
url = next(a for a in args if a.startswith("http"))
body = json.loads(args[args.index("--data") + 1]) if "--data" in args else None
headers = [args[i + 1] for i, a in enumerate(args) if a == "--header"]
data["calls"].append({"method": method, "url": url, "headers": headers})
path = url.split("/api/v4/", 1)[1].split("?", 1)[0]
parts = path.split("/")
out = ""
if parts[-1] == "notes" and method == "GET":
    out = json.dumps([n for n in data["notes"] if n["mr"] == parts[-2]])
elif parts[-1] == "notes" and method == "POST":
    data["notes"].append({"id": data["next_id"], "mr": parts[-2], "body": body["body"]})
    data["next_id"] += 1
    out = "{}"
elif parts[-2] == "notes" and method == "PUT":
    (note,) = [n for n in data["notes"] if str(n["id"]) == parts[-1]]
    note["body"] = body["body"]
    out = "{}"
else:
    raise SystemExit(f"curl stub: unexpected call {args}")
state.write_text(json.dumps(data))
sys.stdout.write(out)
'''


def install_curl_stub(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / "curl"
    stub.write_text(CURL_STUB.replace("#!PYTHON", f"#!{sys.executable}", 1))
    stub.chmod(0o755)
    return folder


_VARIABLE = re.compile(r"\$(\w+)")


def gitlab_rule(expression: str, variables: Mapping[str, str]) -> bool:
    """A GitLab `rules: if:` of the simple forms: $VAR, "string", ==, !=, &&, ||."""
    translated = _VARIABLE.sub(r"var.\1", expression).replace('"', "'")
    return truthy(evaluate(translated, lambda ref: variables.get(ref.removeprefix("var."))))


@dataclass
class GitLabJob:
    name: str
    status: str  # success, failed, warning (an allowed exit code), skipped, manual (not started)
    output: str = ""
    dotenv: dict[str, str] = field(default_factory=dict)
    environment: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # artifacts:paths files (text) by path


@dataclass
class GitLabRunner:
    """Plays a `.gitlab-ci.yml` pipeline; ``variables`` are the project's CI/CD variables."""

    repository: Path
    work: Path
    wheelhouse: Path
    dependencies: Path
    stubs: Path
    variables: Mapping[str, str] = field(default_factory=dict)

    def play(
        self,
        pipeline_file: Path,
        source: str,
        sha: str,
        *,
        branch: str = "",
        merge_request: str = "",
        manual: tuple[str, ...] = (),
    ) -> dict[str, GitLabJob]:
        pipeline = yaml.safe_load(pipeline_file.read_text())
        predefined = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PIPELINE_SOURCE": source,
            "CI_COMMIT_SHA": sha,
            "CI_COMMIT_BRANCH": branch,
            "CI_MERGE_REQUEST_IID": merge_request,
            "CI_API_V4_URL": "https://gitlab.example/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_DEFAULT_BRANCH": "main",
        }
        context = {**self.variables, **{k: v for k, v in predefined.items() if v}}
        assert self._admitted(pipeline["workflow"]["rules"], context) == "always", "no pipeline"
        jobs = {
            name: self._resolve(pipeline, job)
            for name, job in pipeline.items()
            if isinstance(job, dict) and "script" in job and not name.startswith(".")
        }
        results: dict[str, GitLabJob] = {}
        for stage in pipeline["stages"]:
            for name, job in jobs.items():
                if job.get("stage", "test") != stage:
                    continue
                when = self._admitted(job["rules"], context) if "rules" in job else "always"
                needs = job.get("needs") or []
                if when == "never" or any(
                    results.get(n) is None or results[n].status in ("failed", "skipped") for n in needs
                ):
                    results[name] = GitLabJob(name, "skipped")
                elif when == "manual" and name not in manual:
                    results[name] = GitLabJob(name, "manual")
                else:
                    # with needs, the dotenv reports of those jobs; without, of every job of an earlier stage
                    sources = needs if "needs" in job else [n for n, r in results.items() if r.status != "skipped"]
                    dotenv = {k: v for n in sources for k, v in results[n].dotenv.items()}
                    results[name] = self._job(
                        name, job, pipeline, {**context, **dotenv}, sha, [results[n].artifacts for n in sources]
                    )
        return results

    @staticmethod
    def _admitted(rules: list[dict[str, Any]], variables: Mapping[str, str]) -> str:
        for rule in rules:
            if "if" not in rule or gitlab_rule(rule["if"], variables):
                return rule.get("when", "always")
        return "never"

    @staticmethod
    def _resolve(pipeline: Mapping[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        if "extends" in job:
            return {**pipeline[job["extends"]], **job}
        return job

    def _job(
        self,
        name: str,
        job: dict[str, Any],
        pipeline: dict[str, Any],
        variables: dict[str, str],
        sha: str,
        artifacts: list[dict[str, str]],
    ) -> GitLabJob:
        folder = self.work / name
        folder.mkdir(parents=True)
        project = folder / "project"
        subprocess.run(["git", "clone", "-q", "--no-checkout", f"file://{self.repository}", str(project)], check=True)
        # GitLab's runner fetches merge request heads too
        subprocess.run(
            ["git", "fetch", "-q", "origin", "+refs/merge-requests/*:refs/remotes/origin/merge-requests/*"],
            cwd=project,
            check=True,
        )
        subprocess.run(["git", "checkout", "-q", "--detach", sha], cwd=project, check=True)
        for files in artifacts:  # the artifacts of the jobs in `needs`, else of every earlier job
            for relative, text in files.items():
                (project / relative).write_text(text)
        bin_dir = make_job_python(folder / "python", self.dependencies)
        env = {
            "PATH": os.pathsep.join([str(self.stubs), str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(folder / "home"),
            "LANG": "C.UTF-8",
            "CI_PROJECT_DIR": str(project),
            "TMPDIR": str(folder),
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.wheelhouse),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "CURL_STUB_STATE": str(self.work.parent / "curl-state.json"),
            **{k: str(v) for k, v in (pipeline.get("variables") or {}).items()},
            **{k: str(v) for k, v in (job.get("variables") or {}).items()},
            **variables,
        }
        before = job.get("before_script", pipeline["default"]["before_script"])
        script = "\n".join([*before, *job["script"]]) + "\n"
        # the pip cache path is made relative to the clone, as GitLab expands $CI_PROJECT_DIR
        env["PIP_CACHE_DIR"] = str(project / ".cache" / "pip")
        (folder / "script.sh").write_text(script)
        ran = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(folder / "script.sh")],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        allowed = (
            (job.get("allow_failure") or {}).get("exit_codes", []) if isinstance(job.get("allow_failure"), dict) else []
        )
        status = "success" if ran.returncode == 0 else "warning" if ran.returncode in allowed else "failed"
        dotenv: dict[str, str] = {}
        report = ((job.get("artifacts") or {}).get("reports") or {}).get("dotenv")
        if report and (project / report).is_file():
            dotenv = parse_outputs((project / report).read_text())
        environment = (job.get("environment") or {}).get("name")
        kept = {
            relative: (project / relative).read_text()
            for relative in (job.get("artifacts") or {}).get("paths", [])
            if (project / relative).is_file()
        }
        return GitLabJob(name, status, ran.stdout, dotenv, environment, kept)
