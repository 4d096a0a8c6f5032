"""CI rendering as pure logic: settings, determinism, digests, quoting, export of results."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlkit import ci
from mlkit.config import CISection, MlkitConfig
from mlkit.errors import UsageError

BASE = {
    "project": {"name": "churn", "package": "churn"},
    "data": {"train": "data/d.csv", "target": "y"},
    "model": {"name": "churn", "task": "classification", "estimator": "xgboost.XGBClassifier"},
}


def config(**ci_section) -> MlkitConfig:
    stages = ci_section.pop("stages", None)
    data = {**BASE, "ci": ci_section}
    if stages is not None:
        data["stages"] = stages
    return MlkitConfig.model_validate(data)


def settings(**ci_section) -> ci.CISettings:
    return ci.CISettings.from_config(config(**ci_section))


def test_settings_defaults_match_the_config_schema():
    schema = CISection()
    defaults = ci.CISettings(model="m")
    for name in ("provider", "python", "default_branch", "schedule", "production_environment"):
        assert getattr(defaults, name) == getattr(schema, name), name
    assert defaults.stages == tuple(MlkitConfig.model_fields["stages"].default_factory())


def test_every_secret_field_has_an_environment_variable():
    fields = set(CISection.model_fields["secrets"].annotation.model_fields)
    # index_url reaches the install step only; env maps any other variable itself
    assert fields == set(ci.SECRET_VARIABLES) | {"index_url", "env"}


@pytest.mark.parametrize("provider", ci.PROVIDERS)
def test_render_is_deterministic_and_parses_as_yaml(provider):
    first = ci.render(settings(), provider)
    second = ci.render(settings(), provider)
    assert first == second
    assert list(first) == [path for path, _ in ci.FILES[provider]]
    for text in first.values():
        assert isinstance(yaml.safe_load(text), dict)
        assert ci.is_generated(text)


def test_the_configured_provider_is_the_default():
    assert list(ci.render(settings(provider="gitlab"))) == [".gitlab-ci.yml"]
    assert list(ci.render(settings())) == [p for p, _ in ci.FILES["github"]]


def test_unknown_provider_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        ci.render(settings(), "jenkins")
    assert str(info.value) == "unknown CI provider 'jenkins'; allowed: github, gitlab"
    assert info.value.hint == "run `mlkit ci generate --provider github` or `--provider gitlab`"


def test_github_workflows_follow_mlkit_yaml():
    files = ci.render(
        settings(
            python="3.12",
            default_branch="trunk",
            schedule="30 2 * * *",
            production_environment="prod-approval",
            secrets={"tracking_uri": "TRACKING", "tracking_token": "TOKEN"},
        ),
        "github",
    )
    main = yaml.safe_load(files[".github/workflows/mlkit.yml"])
    # PyYAML reads the key `on` as True
    assert main[True]["push"]["branches"] == ["trunk"]
    assert main[True]["pull_request"]["branches"] == ["trunk"]
    assert main["permissions"] == {"contents": "read"}
    assert main[True]["push"]["paths-ignore"] == ["**.md", "docs/**"]  # documentation alone trains nothing
    assert main["jobs"]["release"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/trunk'"
    for job in ("review", "release"):
        assert main["jobs"][job]["env"] == {
            "MLKIT_TRACKING_URI": "${{ secrets.TRACKING }}",
            "MLFLOW_TRACKING_TOKEN": "${{ secrets.TOKEN }}",
        }
    setup = main["jobs"]["test"]["steps"][1]
    assert setup["with"]["python-version"] == "3.12"
    promote = yaml.safe_load(files[".github/workflows/mlkit-promote.yml"])
    assert promote["jobs"]["promote-production"]["environment"] == "prod-approval"
    assert promote[True]["workflow_dispatch"]["inputs"]["stage"]["options"] == ["staging", "production"]
    retrain = yaml.safe_load(files[".github/workflows/mlkit-retrain.yml"])
    assert retrain[True]["schedule"] == [{"cron": "30 2 * * *"}]


def workflows(files: dict[str, str]) -> dict[str, str]:
    return {path: text for path, text in files.items() if path.startswith(".github/workflows/")}


def test_every_action_is_pinned_to_a_full_commit_with_its_version():
    for text in workflows(ci.render(settings(), "github")).values():
        uses = re.findall(r"uses: (\S+)(.*)", text)
        assert uses
        for ref, comment in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), comment


def test_no_expression_inside_run_scripts():
    for text in workflows(ci.render(settings(secrets={"tracking_uri": "T"}), "github")).values():
        for job in yaml.safe_load(text)["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), step


def test_values_are_quoted_so_yaml_and_shell_stay_intact():
    nasty = dataclasses.replace(settings(), model='we"ird: $(rm -rf /) #x')
    for provider in ci.PROVIDERS:
        for text in (
            workflows(ci.render(nasty, provider)).values()
            if provider == "github"
            else ci.render(nasty, provider).values()
        ):
            data = yaml.safe_load(text)
            dispatch = data.get(True, {}).get("workflow_dispatch") or {}
            if "model" in dispatch.get("inputs", {}):
                assert dispatch["inputs"]["model"]["default"] == nasty.model
            else:
                assert (data.get("env") or data.get("variables"))["MODEL_NAME"] == nasty.model


@pytest.mark.parametrize("stages", [["production"], ["dev", "staging", "production"]])
def test_other_stage_lists(stages):
    github = ci.render(settings(stages=stages), "github")
    promote = yaml.safe_load(github[".github/workflows/mlkit-promote.yml"])
    assert promote[True]["workflow_dispatch"]["inputs"]["stage"]["options"] == stages
    assert ("promote" in promote["jobs"]) == (len(stages) > 1)
    gitlab = yaml.safe_load(ci.render(settings(stages=stages), "gitlab")[".gitlab-ci.yml"])
    jobs = [name for name in gitlab if name.startswith("promote-")]
    assert jobs == [f"promote-{stage}" for stage in stages]
    assert gitlab[f"promote-{stages[-1]}"]["environment"]["name"] == "production"


def test_gitlab_pipeline_maps_secrets_and_reports():
    secrets = {"tracking_uri": "MLFLOW_TRACKING_URI", "data_remote_access_key_id": "AWS_ACCESS_KEY_ID"}
    text = ci.render(settings(secrets=secrets), "gitlab")[".gitlab-ci.yml"]
    data = yaml.safe_load(text)
    assert (
        data["default"]["before_script"][1]
        == '[ -z "${MLFLOW_TRACKING_URI:-}" ] || export MLKIT_TRACKING_URI="$MLFLOW_TRACKING_URI"'
    )
    # a secret already named like the variable needs no mapping
    assert not any("AWS_ACCESS_KEY_ID=" in line for line in data["default"]["before_script"])
    assert data["train"]["artifacts"]["reports"] == {"dotenv": "train.env", "metrics": "metrics.txt"}
    assert data["promote-production"]["rules"][0]["when"] == "manual"
    assert data["promote-staging"]["resource_group"] == "mlkit-promote-staging"
    assert data[".promote"]["interruptible"] is False and data["promote-staging"]["extends"] == ".promote"
    # the manual job promotes this pipeline's version (the train job's dotenv), not what staging holds now
    assert data["promote-production"]["needs"] == ["train", "promote-staging"]
    assert (
        data["promote-production"]["script"][-1]
        == 'mlkit promote "$MODEL_NAME" "$MLKIT_MODEL_VERSION" --to production --json'
    )
    assert data[".promote"]["allow_failure"] == {"exit_codes": [3]}


def test_hand_edits_break_the_digest():
    text = ci.render(settings(), "gitlab")[".gitlab-ci.yml"]
    assert ci.is_generated(text)
    assert not ci.is_generated(text.replace("python -m pytest -q", "pytest"))
    assert not ci.is_generated(text.split("\n", 3)[3])  # header removed
    assert not ci.is_generated("stages: [test]\n")


def test_raw_settings_equal_validated_settings(tmp_path):
    raw = {
        **BASE,
        "stages": ["staging", "production"],
        "ci": {
            "provider": "github",
            "python": "3.12",
            "default_branch": "main",
            "production_environment": "production",
            "secrets": {"tracking_uri": "MLFLOW_TRACKING_URI"},
        },
    }
    from mlkit.ci import _settings_from_raw

    assert _settings_from_raw(raw) == ci.CISettings.from_config(MlkitConfig.model_validate(raw))
    assert _settings_from_raw({**raw, "ci": {"python": 3.12}}) is None  # a number: let the schema judge
    assert _settings_from_raw({**raw, "ci": {"surprise": "x"}}) is None


def test_export_turns_a_result_into_dotenv_and_metrics(tmp_path):
    result = tmp_path / "train.json"
    result.write_text(
        json.dumps(
            {
                "run_id": "abc",
                "version": 3,
                "registered": True,
                "note": "two\nlines",
                "metrics": {"f1": 0.91, "roc_auc": 0.97, "label": "x"},
                "params": {"a": 1},
            }
        )
    )
    variables = ci.export_result(result, dotenv=tmp_path / "out" / "train.env", metrics=tmp_path / "metrics.txt")
    assert variables == {
        "MLKIT_RUN_ID": "abc",
        "MLKIT_VERSION": "3",
        "MLKIT_REGISTERED": "true",
        "MLKIT_METRIC_F1": "0.91",
        "MLKIT_METRIC_ROC_AUC": "0.97",
    }
    assert (tmp_path / "out" / "train.env").read_text() == (
        "MLKIT_RUN_ID=abc\nMLKIT_VERSION=3\nMLKIT_REGISTERED=true\nMLKIT_METRIC_F1=0.91\nMLKIT_METRIC_ROC_AUC=0.97\n"
    )
    assert (tmp_path / "metrics.txt").read_text() == "f1 0.91\nroc_auc 0.97\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: file not found"),
        ("[1, 2]", "{path}: expected a JSON object, got list"),
        ("not json", "{path}: not a JSON result: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_export_rejects_bad_input(tmp_path, content, message):
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as info:
        ci.export_result(path, dotenv=tmp_path / "x.env")
    assert str(info.value) == message.format(path=path)
    assert not (tmp_path / "x.env").exists()


def test_ci_does_not_import_scaffold():
    # scaffold calls ci for a new project's files; the other way round would be an import cycle
    code = "import sys, mlkit.ci; print('mlkit.scaffold' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_templates_ship_in_the_template_root():
    from mlkit.templates import templates_root

    for files in ci.FILES.values():
        for _, template in files:
            assert (templates_root() / "ci" / template).is_file()
    assert Path(ci.__file__).name == "ci.py"


def test_a_data_remote_secret_reaches_mlkit_data_pull_as_mlkit_data_remote():
    plain = yaml.safe_load(ci.render(settings(), "github")[".github/workflows/mlkit.yml"])
    assert "MLKIT_DATA_REMOTE" not in plain["jobs"]["review"].get("env", {})
    pull = [s for s in plain["jobs"]["review"]["steps"] if s["name"] == "Pull the versioned data"]
    assert pull == [{"name": "Pull the versioned data", "run": "mlkit data pull"}]

    files = ci.render(settings(secrets={"data_remote": "DVC_REMOTE_URL"}), "github")
    for path in (".github/workflows/mlkit.yml", ".github/workflows/mlkit-retrain.yml"):
        jobs = yaml.safe_load(files[path])["jobs"]
        for job in [jobs[name] for name in ("review", "release", "retrain") if name in jobs]:
            assert job["env"]["MLKIT_DATA_REMOTE"] == "${{ secrets.DVC_REMOTE_URL }}"
            (step,) = [s for s in job["steps"] if s["name"] == "Pull the versioned data"]
            assert step["run"] == "mlkit data pull"
            (check,) = [s for s in job["steps"] if s["name"] == "Check that the data remote is reachable"]
            assert "or set the secret DVC_REMOTE_URL;" in check["run"]
    rendered = ci.render(settings(secrets={"data_remote": "DVC_REMOTE_URL"}), "gitlab")
    gitlab = yaml.safe_load(rendered[".gitlab-ci.yml"])
    assert gitlab["train"]["script"][2] == "mlkit data pull"
    assert "or set the variable DVC_REMOTE_URL;" in gitlab["train"]["script"][1]
    assert (
        '[ -z "${DVC_REMOTE_URL:-}" ] || export MLKIT_DATA_REMOTE="$DVC_REMOTE_URL"'
        in gitlab["default"]["before_script"]
    )


def test_oidc_replaces_stored_keys():
    oidc = {"aws_role": "arn:aws:iam::123456789012:role/mlkit-ci", "aws_region": "eu-central-1"}
    files = workflows(ci.render(settings(oidc=oidc), "github"))
    for path, text in files.items():
        jobs = yaml.safe_load(text)["jobs"]
        for name, job in jobs.items():
            if name == "test":
                assert "permissions" not in job
                continue
            if name == "comment":  # the pull request comment: no credential at all
                assert job["permissions"] == {"pull-requests": "write"} and "env" not in job
                continue
            assert job["permissions"]["id-token"] == "write", (path, name)
            assert job["env"]["AWS_ROLE_ARN"] == oidc["aws_role"]
            assert job["env"]["AWS_REGION"] == "eu-central-1"
            names = [step["name"] for step in job["steps"]]
            install = names.index("Install mlkit and the project's dependencies")
            assert names.index("AWS credentials through OIDC") == install + 1
    gitlab = yaml.safe_load(ci.render(settings(oidc=oidc), "gitlab")[".gitlab-ci.yml"])
    assert gitlab["variables"]["AWS_ROLE_ARN"] == oidc["aws_role"]
    for job in ("train", ".promote"):
        assert gitlab[job]["id_tokens"] == {"MLKIT_AWS_OIDC_TOKEN": {"aud": "sts.amazonaws.com"}}
    assert "id_tokens" not in gitlab["test"]
    # without oidc nothing of it appears
    assert "id-token" not in "".join(ci.render(settings(), "github").values())
    (step,) = [
        s
        for s in yaml.safe_load(files[".github/workflows/mlkit.yml"])["jobs"]["release"]["steps"]
        if s["name"] == "AWS credentials through OIDC"
    ]
    assert "(while sleep 240; do fetch || true; done)" in step["run"]  # refreshed: a token lives 5 minutes
    assert "id_tokens" not in ci.render(settings(), "gitlab")[".gitlab-ci.yml"]


# --- install, trust, retraining ---------------------------------------------------------------------


def _steps(job: dict) -> dict[str, dict]:
    return {step["name"]: step for step in job["steps"]}


def test_ci_install_replaces_the_pinned_requirement_in_every_job():
    plain = yaml.safe_load(ci.render(settings(), "github")[".github/workflows/mlkit.yml"])
    install = _steps(plain["jobs"]["test"])["Install mlkit and the project's dependencies"]
    assert install == {
        "name": "Install mlkit and the project's dependencies",
        "run": "python -m pip install -r requirements.txt",
    }
    wheel = "git+https://example.org/acme/mlkit@v0.2.0"
    files = ci.render(settings(install=wheel, secrets={"index_url": "PRIVATE_INDEX"}), "github")
    for path, text in workflows(files).items():
        for job in yaml.safe_load(text)["jobs"].values():
            if job.get("permissions") == {"pull-requests": "write"}:
                continue
            step = _steps(job)["Install mlkit and the project's dependencies"]
            assert step["env"] == {"MLKIT_REQUIREMENT": wheel, "PIP_EXTRA_INDEX_URL": "${{ secrets.PRIVATE_INDEX }}"}, (
                path
            )
            assert (
                step["run"].splitlines()[-1]
                == 'python -m pip install "$MLKIT_REQUIREMENT" -r "$RUNNER_TEMP/requirements.txt"'
            )
    gitlab = yaml.safe_load(ci.render(settings(install=wheel), "gitlab")[".gitlab-ci.yml"])
    assert gitlab["default"]["before_script"][-1] == f"python -m pip install {wheel} -r /tmp/requirements.txt"


@pytest.mark.parametrize(
    ("install", "message"),
    [
        ("", "'' is not one pip requirement"),
        ("--index-url http://evil mlkit-ops", "'--index-url http://evil mlkit-ops' is not one pip requirement"),
        ("mlkit-ops\nrm", "'mlkit-ops\\nrm' is not one pip requirement"),
    ],
)
def test_a_bad_install_is_refused(install, message):
    with pytest.raises(ValidationError) as info:
        config(install=install)
    assert message in str(info.value)


def test_extra_secret_variables_reach_the_jobs_that_hold_credentials():
    extra = {"MLFLOW_TRACKING_USERNAME": "MLFLOW_USER", "MLFLOW_TRACKING_PASSWORD": "MLFLOW_PASSWORD"}
    files = ci.render(settings(secrets={"tracking_uri": "T", "env": extra}), "github")
    main = yaml.safe_load(files[".github/workflows/mlkit.yml"])
    assert main["jobs"]["release"]["env"] == {
        "MLKIT_TRACKING_URI": "${{ secrets.T }}",
        "MLFLOW_TRACKING_USERNAME": "${{ secrets.MLFLOW_USER }}",
        "MLFLOW_TRACKING_PASSWORD": "${{ secrets.MLFLOW_PASSWORD }}",
    }
    assert "env" not in main["jobs"]["test"] and "env" not in main["jobs"]["comment"]
    gitlab = yaml.safe_load(ci.render(settings(secrets={"env": extra}), "gitlab")[".gitlab-ci.yml"])
    assert (
        '[ -z "${MLFLOW_USER:-}" ] || export MLFLOW_TRACKING_USERNAME="$MLFLOW_USER"'
        in gitlab["default"]["before_script"]
    )


@pytest.mark.parametrize(
    ("variable", "secret", "message"),
    [
        ("GITHUB_TOKEN", "S", "'GITHUB_TOKEN' is not an environment variable a job may set"),
        ("lower", "S", "'lower' is not an environment variable a job may set"),
        ("MLFLOW_TRACKING_USERNAME", "1bad", "'1bad' is not a secret name"),
    ],
)
def test_extra_variables_are_checked(variable, secret, message):
    with pytest.raises(ValidationError) as info:
        config(secrets={"env": {variable: secret}})
    assert message in str(info.value)


def test_pull_request_jobs_hold_no_credential_that_can_move_a_stage():
    files = ci.render(settings(secrets={"tracking_uri": "T"}), "github")
    main = yaml.safe_load(files[".github/workflows/mlkit.yml"])
    jobs = main["jobs"]
    assert jobs["review"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["review"]["environment"] == "pull-request"
    assert jobs["release"]["environment"] == "staging"
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert jobs["comment"]["needs"] == "review" and "steps" in jobs["comment"]
    assert [step.get("uses") for step in jobs["comment"]["steps"]] == [None]  # no checkout: no PR code runs
    for name, job in jobs.items():  # pull-requests: write nowhere else, so never on a push
        assert name == "comment" or "pull-requests" not in job.get("permissions", {}), name
    # promotions happen only in jobs bound to an environment
    for path, text in workflows(files).items():
        for name, job in yaml.safe_load(text)["jobs"].items():
            if any("mlkit promote" in step.get("run", "") for step in job["steps"]):
                assert "environment" in job, (path, name)
    custom = yaml.safe_load(
        ci.render(settings(pull_request_environment="ci-read"), "github")[".github/workflows/mlkit.yml"]
    )
    assert custom["jobs"]["review"]["environment"] == "ci-read"


def test_the_comment_is_sticky():
    main = yaml.safe_load(ci.render(settings(), "github")[".github/workflows/mlkit.yml"])
    (step,) = main["jobs"]["comment"]["steps"]
    assert step["env"]["MARKER"] == "<!-- mlkit-comparison: churn -->"
    assert step["env"]["COMPARISON"] == "${{ needs.review.outputs.comparison }}"
    assert 'gh api --method PATCH "repos/$GH_REPO/issues/comments/$comment"' in step["run"]


def test_retraining_shares_the_promotion_rules():
    files = ci.render(settings(), "github")
    main = yaml.safe_load(files[".github/workflows/mlkit.yml"])["jobs"]["release"]
    retrain = yaml.safe_load(files[".github/workflows/mlkit-retrain.yml"])
    job = retrain["jobs"]["retrain"]
    assert job["concurrency"] == main["concurrency"] == {"group": "mlkit-promote-staging", "cancel-in-progress": False}
    assert job["environment"] == main["environment"] == "staging"
    assert "concurrency" not in retrain  # no group of its own that would let it run beside a push
    assert retrain[True]["workflow_dispatch"]["inputs"]["force"]["type"] == "boolean"
    steps = _steps(job)
    assert steps["Train"]["if"] == "steps.inputs.outputs.changed != 'false'"
    assert _steps(main)["Promote to staging if the gates pass"] == steps["Promote to staging if the gates pass"]


def test_one_rule_for_a_refused_gate():
    files = ci.render(settings(), "github")
    rule = '          if [ "$status" -eq 3 ]; then\n            echo "::warning::'
    for path in (
        ".github/workflows/mlkit.yml",
        ".github/workflows/mlkit-retrain.yml",
        ".github/workflows/mlkit-promote.yml",
        ".github/workflows/mlkit-monitor.yml",
    ):
        for name, job in yaml.safe_load(files[path])["jobs"].items():
            for step in job["steps"]:
                if "mlkit promote" in step.get("run", ""):
                    assert "|| status=$?" in step["run"] and '[ "$status" -eq 3 ]' in step["run"], (path, name)
    assert rule in files[".github/workflows/mlkit.yml"]
    gitlab = yaml.safe_load(ci.render(settings(), "gitlab")[".gitlab-ci.yml"])
    assert gitlab[".promote"]["allow_failure"] == {"exit_codes": [3]}
    assert all(gitlab[name]["extends"] == ".promote" for name in gitlab if name.startswith("promote-"))


def test_dependabot_keeps_the_action_pins_current():
    data = yaml.safe_load(ci.render(settings(), "github")[".github/dependabot.yml"])
    assert data["updates"] == [
        {
            "package-ecosystem": "github-actions",
            "directory": "/",
            "schedule": {"interval": "weekly"},
            "cooldown": {"default-days": 7},
        }
    ]


def test_the_digest_leaves_the_action_pins_out():
    text = ci.render(settings(), "github")[".github/workflows/mlkit.yml"]
    checkout = ci.ACTIONS["checkout"]
    moved = text.replace(checkout.uses, f"{checkout.repository}@{'f' * 40}").replace(checkout.version, "v7.0.0")
    assert moved != text and ci.is_generated(moved)
    assert ci._keep_newer_pins(text, moved) == moved
    assert ci._keep_newer_pins(moved, text) == moved  # the newer release wins either way
    # a file written before the pins left the digest (digest of the whole body) is still recognised
    body = text.split("\n", 3)[3]
    old_header = [*text.split("\n", 3)[:2], f"# mlkit-digest: sha256:{ci._digest(body, raw=True)}"]
    assert ci.is_generated("\n".join(old_header) + "\n" + body)


def test_a_single_stage_is_promoted_in_the_approval_environment():
    files = ci.render(settings(stages=["production"], production_environment="prod-approval"), "github")
    release = yaml.safe_load(files[".github/workflows/mlkit.yml"])["jobs"]["release"]
    assert release["environment"] == "prod-approval"
    assert _steps(release)["Check the tracking server"]["env"]["ENVIRONMENT"] == "prod-approval"
    assert (
        yaml.safe_load(files[".github/workflows/mlkit-retrain.yml"])["jobs"]["retrain"]["environment"]
        == "prod-approval"
    )
    gitlab = yaml.safe_load(
        ci.render(settings(stages=["production"], production_environment="prod-approval"), "gitlab")[".gitlab-ci.yml"]
    )
    assert gitlab["promote-production"]["environment"] == {"name": "prod-approval", "deployment_tier": "production"}
    two = yaml.safe_load(ci.render(settings(), "github")[".github/workflows/mlkit.yml"])["jobs"]["release"]
    assert two["environment"] == "staging"
