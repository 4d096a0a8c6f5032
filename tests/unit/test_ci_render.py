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
    assert fields == set(ci.SECRET_VARIABLES)


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
    files = ci.render(settings(python="3.12", default_branch="trunk", schedule="30 2 * * *",
                               production_environment="prod-approval",
                               secrets={"tracking_uri": "TRACKING", "tracking_token": "TOKEN"}), "github")
    main = yaml.safe_load(files[".github/workflows/mlkit.yml"])
    # PyYAML reads the key `on` as True
    assert main[True]["push"]["branches"] == ["trunk"]
    assert main[True]["pull_request"]["branches"] == ["trunk"]
    assert main["permissions"] == {"contents": "read"}
    assert main["jobs"]["promote"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/trunk'"
    assert main["jobs"]["train"]["env"] == {"MLKIT_TRACKING_URI": "${{ secrets.TRACKING }}",
                                            "MLFLOW_TRACKING_TOKEN": "${{ secrets.TOKEN }}"}
    setup = main["jobs"]["test"]["steps"][1]
    assert setup["with"]["python-version"] == "3.12"
    promote = yaml.safe_load(files[".github/workflows/mlkit-promote.yml"])
    assert promote["jobs"]["promote-production"]["environment"] == "prod-approval"
    assert promote[True]["workflow_dispatch"]["inputs"]["stage"]["options"] == ["staging", "production"]
    retrain = yaml.safe_load(files[".github/workflows/mlkit-retrain.yml"])
    assert retrain[True]["schedule"] == [{"cron": "30 2 * * *"}]


def test_every_action_is_pinned_to_a_full_commit_with_its_version():
    for text in ci.render(settings(), "github").values():
        uses = re.findall(r"uses: (\S+)(.*)", text)
        assert uses
        for ref, comment in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), comment


def test_no_expression_inside_run_scripts():
    for text in ci.render(settings(secrets={"tracking_uri": "T"}), "github").values():
        for job in yaml.safe_load(text)["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), step


def test_values_are_quoted_so_yaml_and_shell_stay_intact():
    nasty = dataclasses.replace(settings(), model='we"ird: $(rm -rf /) #x')
    for provider in ci.PROVIDERS:
        for text in ci.render(nasty, provider).values():
            data = yaml.safe_load(text)
            dispatch = data.get(True, {}).get("workflow_dispatch") or {}
            if "inputs" in dispatch:
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
    assert data["default"]["before_script"][1] == \
        '[ -z "${MLFLOW_TRACKING_URI:-}" ] || export MLKIT_TRACKING_URI="$MLFLOW_TRACKING_URI"'
    # a secret already named like the variable needs no mapping
    assert not any("AWS_ACCESS_KEY_ID=" in line for line in data["default"]["before_script"])
    assert data["train"]["artifacts"]["reports"] == {"dotenv": "train.env", "metrics": "metrics.txt"}
    assert data["promote-production"]["rules"][0]["when"] == "manual"
    assert data["promote-staging"]["resource_group"] == "mlkit-promote-staging"
    assert data["promote-staging"]["interruptible"] is False


def test_hand_edits_break_the_digest():
    text = ci.render(settings(), "gitlab")[".gitlab-ci.yml"]
    assert ci.is_generated(text)
    assert not ci.is_generated(text.replace("python -m pytest -q", "pytest"))
    assert not ci.is_generated(text.split("\n", 3)[3])  # header removed
    assert not ci.is_generated("stages: [test]\n")


def test_raw_settings_equal_validated_settings(tmp_path):
    raw = {**BASE, "stages": ["staging", "production"],
           "ci": {"provider": "github", "python": "3.12", "default_branch": "main",
                  "production_environment": "production", "secrets": {"tracking_uri": "MLFLOW_TRACKING_URI"}}}
    from mlkit.ci import _settings_from_raw

    assert _settings_from_raw(raw) == ci.CISettings.from_config(MlkitConfig.model_validate(raw))
    assert _settings_from_raw({**raw, "ci": {"python": 3.12}}) is None  # a number: let the schema judge
    assert _settings_from_raw({**raw, "ci": {"surprise": "x"}}) is None


def test_export_turns_a_result_into_dotenv_and_metrics(tmp_path):
    result = tmp_path / "train.json"
    result.write_text(json.dumps({"run_id": "abc", "version": 3, "registered": True, "note": "two\nlines",
                                  "metrics": {"f1": 0.91, "roc_auc": 0.97, "label": "x"},
                                  "params": {"a": 1}}))
    variables = ci.export_result(result, dotenv=tmp_path / "out" / "train.env",
                                 metrics=tmp_path / "metrics.txt")
    assert variables == {"MLKIT_RUN_ID": "abc", "MLKIT_VERSION": "3", "MLKIT_REGISTERED": "true",
                         "MLKIT_METRIC_F1": "0.91", "MLKIT_METRIC_ROC_AUC": "0.97"}
    assert (tmp_path / "out" / "train.env").read_text() == (
        "MLKIT_RUN_ID=abc\nMLKIT_VERSION=3\nMLKIT_REGISTERED=true\nMLKIT_METRIC_F1=0.91\nMLKIT_METRIC_ROC_AUC=0.97\n")
    assert (tmp_path / "metrics.txt").read_text() == "f1 0.91\nroc_auc 0.97\n"


@pytest.mark.parametrize(("content", "message"), [
    (None, "{path}: file not found"),
    ("[1, 2]", "{path}: expected a JSON object, got list"),
    ("not json", "{path}: not a JSON result: Expecting value: line 1 column 1 (char 0)"),
])
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
    assert "MLKIT_DATA_REMOTE" not in plain["jobs"]["train"].get("env", {})
    pull = [s for s in plain["jobs"]["train"]["steps"] if s["name"] == "Pull the versioned data"]
    assert pull == [{"name": "Pull the versioned data", "run": "mlkit data pull"}]

    files = ci.render(settings(secrets={"data_remote": "DVC_REMOTE_URL"}), "github")
    for path in (".github/workflows/mlkit.yml", ".github/workflows/mlkit-retrain.yml"):
        jobs = yaml.safe_load(files[path])["jobs"]
        job = jobs.get("train") or jobs["retrain"]
        assert job["env"]["MLKIT_DATA_REMOTE"] == "${{ secrets.DVC_REMOTE_URL }}"
        (step,) = [s for s in job["steps"] if s["name"] == "Pull the versioned data"]
        assert step["run"] == "mlkit data pull"
    rendered = ci.render(settings(secrets={"data_remote": "DVC_REMOTE_URL"}), "gitlab")
    gitlab = yaml.safe_load(rendered[".gitlab-ci.yml"])
    assert gitlab["train"]["script"][0] == "mlkit data pull"
    assert '[ -z "${DVC_REMOTE_URL:-}" ] || export MLKIT_DATA_REMOTE="$DVC_REMOTE_URL"' in \
        gitlab["default"]["before_script"]


def test_oidc_replaces_stored_keys():
    oidc = {"aws_role": "arn:aws:iam::123456789012:role/mlkit-ci", "aws_region": "eu-central-1"}
    files = ci.render(settings(oidc=oidc), "github")
    for path, text in files.items():
        jobs = yaml.safe_load(text)["jobs"]
        for name, job in jobs.items():
            if name == "test":
                assert "permissions" not in job
                continue
            assert job["permissions"]["id-token"] == "write", (path, name)
            assert job["env"]["AWS_ROLE_ARN"] == oidc["aws_role"]
            assert job["env"]["AWS_REGION"] == "eu-central-1"
            names = [step["name"] for step in job["steps"]]
            install = names.index("Install the project's dependencies")
            assert names.index("AWS credentials through OIDC") == install + 1
    gitlab = yaml.safe_load(ci.render(settings(oidc=oidc), "gitlab")[".gitlab-ci.yml"])
    assert gitlab["variables"]["AWS_ROLE_ARN"] == oidc["aws_role"]
    for job in ("train", "promote-staging", "promote-production"):
        assert gitlab[job]["id_tokens"] == {"MLKIT_AWS_OIDC_TOKEN": {"aud": "sts.amazonaws.com"}}
    assert "id_tokens" not in gitlab["test"]
    # without oidc nothing of it appears
    assert "id-token" not in "".join(ci.render(settings(), "github").values())
    assert "id_tokens" not in ci.render(settings(), "gitlab")[".gitlab-ci.yml"]
