"""infra/ and the workflow, checked without Azure: the script's commands, the template's
resources and properties, the workflow's jobs.

The Bicep CLI is not installable from the registries this project uses, so
``main.bicep`` is checked as text for what it must declare (its resources, the
site's properties, the parameters file's names); the deploy script runs for
real against a fake ``az`` that records its arguments.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
DEPLOY = INFRA / "deploy.sh"
ALL_OPTIONAL = ["--with-sql", "--with-openai", "--with-speech", "--with-redis"]

FAKE_AZ = """#!/usr/bin/env bash
# Records each call; answers as if every resource already existed.
printf '%s\\n' "$*" >> "$AZ_LOG"
case "$*" in
    *"--query id "*) echo "/subscriptions/s/resourceGroups/g/providers/x/y" ;;
    *"--query principalId"*) echo "11111111-1111-1111-1111-111111111111" ;;
    *"--query clientId"*) echo "22222222-2222-2222-2222-222222222222" ;;
    *"appsettings list"*) [[ "$AZ_FRESH" == 1 ]] && echo 0 || echo 1 ;;
    *"keys list"* | *"list-keys"*) echo "key-from-azure" ;;
    *" show "*) [[ "$AZ_FRESH" == 1 ]] && exit 3 ;;
esac
exit 0
"""


def _deploy(
    tmp_path: Path, *args: str, fresh: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "az"
    fake.write_text(FAKE_AZ)
    fake.chmod(0o755)
    log = tmp_path / "az.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AZ_LOG": str(log),
        "AZ_FRESH": "1" if fresh else "0",
    }
    env.pop("API_TOKEN", None)
    result = subprocess.run(
        ["bash", str(DEPLOY), *args], capture_output=True, text=True, env=env, check=False
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def _az_lines(output: str) -> list[list[str]]:
    return [shlex.split(line) for line in output.splitlines() if line.startswith("az ")]


def test_deploy_sh_is_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is installed by .ci/run"
    result = subprocess.run(
        [shellcheck, "--severity=style", str(DEPLOY), str(ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_the_dry_run_prints_every_command_and_runs_none(tmp_path):
    args = ["--name", "pichat-test", "--location", "northeurope", "--tag", "abc123"]
    result, calls = _deploy(tmp_path, *args, "--dry-run", *ALL_OPTIONAL)
    assert result.returncode == 0, result.stderr
    assert calls == []  # nothing reached az
    commands = _az_lines(result.stdout)
    joined = [" ".join(command) for command in commands]

    def has(*words: str) -> str:
        found = [line for line in joined if all(word in line for word in words)]
        assert found, f"no command with {words}"
        return found[0]

    has("az group create", "--name pichat-test-rg", "--location northeurope")
    has("az acr show", "--name pichattestacr")
    has("az acr create", "--name pichattestacr", "--sku Basic", "--admin-enabled false")
    has("az acr build", "--registry pichattestacr", "--image pichat-backend:abc123")
    has("az identity create", "--name pichat-test-identity")
    has("az role assignment create", "--role AcrPull")
    has("az appservice plan create", "--is-linux", "--name pichat-test-plan")
    has(
        "az webapp create",
        "--plan pichat-test-plan",
        "--container-image-name pichattestacr.azurecr.io/pichat-backend:abc123",
    )
    identity = has("acrUseManagedIdentityCreds")
    assert '"acrUseManagedIdentityCreds": true' in identity
    has("az webapp config container set", "pichattestacr.azurecr.io/pichat-backend:abc123")
    site = has("az webapp config set", "--web-sockets-enabled true")
    assert "--always-on true" in site and '{"healthCheckPath": "/readyz"}' in site
    has("az webapp update", "--https-only true")
    has("az webapp config appsettings set", f"@{INFRA / 'appsettings.json'}")
    has("az webapp config appsettings set", "API_TOKEN=<generated>")
    has("az sql server create", "--name pichat-test-sql")
    has("az sql db create", "--name pichat")
    has("DB_HOST=pichat-test-sql.database.windows.net")
    has("az cognitiveservices account create", "--kind OpenAI")
    has("AZURE_OPENAI_ENDPOINT=https://pichat-test-openai.openai.azure.com/")
    has("az cognitiveservices account create", "--kind SpeechServices")
    has("az redis create", "--name pichat-test-redis")
    has("REDIS_URL=rediss://")
    assert joined[-1] == "az webapp restart --name pichat-test --resource-group pichat-test-rg"


def test_a_first_run_creates_and_a_second_run_only_updates(tmp_path):
    args = ["--name", "pichat-test", "--tag", "abc123", *ALL_OPTIONAL]
    first, created = _deploy(tmp_path, *args, fresh=True)
    assert first.returncode == 0, first.stderr
    assert "API_TOKEN (the default user's; shown once):" in first.stdout
    for creation in ("acr create", "webapp create", "sql server create", "redis create"):
        assert any(call.startswith(creation) for call in created), creation
    again, updated = _deploy(tmp_path, *args, fresh=False)
    assert again.returncode == 0, again.stderr
    for creation in ("acr create", "webapp create", "sql server create", "redis create"):
        assert not any(call.startswith(creation) for call in updated), creation
    assert not any("API_TOKEN=" in call for call in updated)  # the token is kept
    assert "API_TOKEN" not in again.stdout
    assert any(call.startswith("webapp config container set") for call in updated)
    assert updated[-1].startswith("webapp restart")


def test_a_missing_name_is_refused(tmp_path):
    result, calls = _deploy(tmp_path, "--dry-run")
    assert result.returncode == 2 and "--name is required" in result.stderr
    assert calls == []
    assert "set -euo pipefail" in DEPLOY.read_text()


BICEP = (INFRA / "main.bicep").read_text()


def _bicep_code() -> str:
    """The template without its comments and string contents (for counting brackets)."""
    code = re.sub(r"//[^\n]*", "", BICEP)
    return re.sub(r"'(?:\\'|[^'])*'", "''", code)


def _resources() -> dict[str, tuple[str, str]]:
    """Symbolic name -> (type@version, condition) of every resource."""
    found = {}
    pattern = r"^resource (\w+) '([\w./]+@[\w-]+)' = (?:if \((\w+)\) )?\{"
    for match in re.finditer(pattern, BICEP, re.MULTILINE):
        found[match.group(1)] = (match.group(2), match.group(3) or "")
    return found


def _block(symbol: str) -> str:
    start = re.search(rf"^resource {symbol} .*\{{$", BICEP, re.MULTILINE)
    assert start, symbol
    depth, index = 0, start.end() - 1
    for index in range(start.end() - 1, len(BICEP)):
        depth += {"{": 1, "}": -1}.get(BICEP[index], 0)
        if depth == 0:
            break
    return BICEP[start.start() : index + 1]


def test_the_template_is_balanced():
    code = _bicep_code()
    for opening, closing in ("{}", "[]", "()"):
        assert code.count(opening) == code.count(closing), opening


def test_the_template_declares_the_resources():
    resources = _resources()
    types = {kind.split("@")[0]: condition for kind, condition in resources.values()}
    assert types["Microsoft.Web/serverfarms"] == ""
    assert types["Microsoft.Web/sites"] == ""
    assert types["Microsoft.ContainerRegistry/registries"] == ""
    assert types["Microsoft.ManagedIdentity/userAssignedIdentities"] == ""
    assert types["Microsoft.Authorization/roleAssignments"] == ""
    assert types["Microsoft.Sql/servers"] == "deploySql"
    assert types["Microsoft.Sql/servers/databases"] == "deploySql"
    assert types["Microsoft.CognitiveServices/accounts/deployments"] == "deployOpenAI"
    assert types["Microsoft.Cache/redis"] == "deployRedis"
    kinds = re.findall(r"kind: '(\w+)'", BICEP)
    assert "OpenAI" in kinds and "SpeechServices" in kinds
    assert "reserved: true" in _block("plan")  # a Linux plan
    assert "7f951dda-4ed3-4680-a7ca-43fe172d538d" in BICEP  # AcrPull


def test_the_site_pulls_with_its_identity_and_is_set_for_websockets():
    site = _block("app")
    for line in (
        "kind: 'app,linux,container'",
        "httpsOnly: true",
        "linuxFxVersion: 'DOCKER|${image}'",
        "acrUseManagedIdentityCreds: true",
        "acrUserManagedIdentityID: identity.properties.clientId",
        "webSocketsEnabled: true",
        "alwaysOn: true",
        "healthCheckPath: '/readyz'",
        "type: 'UserAssigned'",
    ):
        assert line in site, line
    assert "appSettings: [for item in items(settings):" in site
    assert "loadJsonContent('appsettings.json')" in BICEP


def test_the_parameters_file_fits_the_template_and_holds_no_secret():
    declared = dict(re.findall(r"^param (\w+) (\w+)", BICEP, re.MULTILINE))
    secure = set(re.findall(r"@secure\(\)\n(?:@[^\n]*\n)*param (\w+)", BICEP))
    assert {"apiToken", "metricsToken", "sqlAdminPassword"} <= secure
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(declared)
    assert not set(parameters) & secure  # secrets are passed on the command line
    required = {
        name
        for name in declared
        if re.search(rf"^param {name} \w+$", BICEP, re.MULTILINE) and name not in secure
    }
    assert required <= set(parameters)


def test_the_app_settings_file_is_what_app_service_needs():
    from pichat_trio.settings import VARIABLES

    settings = json.loads((INFRA / "appsettings.json").read_text())
    assert settings["WEBSITES_PORT"] == "8080"
    assert settings["ENVIRONMENT"] == "production"
    assert "WEBSITES_ENABLE_APP_SERVICE_STORAGE" in settings
    ours = {variable.name for variable in VARIABLES}
    platform = {n for n in settings if n.startswith("WEBSITES_")}
    assert set(settings) <= ours | platform
    assert not {v.name for v in VARIABLES if v.secret} & set(settings)


WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


def test_the_workflow_tests_builds_and_deploys_with_oidc():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert "push" in triggers
    jobs = workflow["jobs"]
    assert set(jobs) >= {"test", "build", "deploy"}
    assert jobs["build"]["needs"] == "test" and jobs["deploy"]["needs"] == "build"
    assert any(step.get("run", "").startswith("make test") for step in jobs["test"]["steps"])
    build_runs = " ".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert "az acr build" in build_runs
    deploy_runs = " ".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    assert "az webapp config container set" in deploy_runs
    for name in ("build", "deploy"):
        job = jobs[name]
        assert job["permissions"]["id-token"] == "write"
        logins = [step for step in job["steps"] if step.get("uses", "").startswith("azure/login@")]
        assert len(logins) == 1
        for key in ("client-id", "tenant-id", "subscription-id"):
            assert re.fullmatch(
                r"\$\{\{ (vars|secrets)\.AZURE_[A-Z_]+ \}\}", logins[0]["with"][key]
            )
        assert "creds" not in logins[0]["with"]  # no service principal secret


def test_no_secret_values_are_written_in_infra_or_the_workflow():
    texts = [WORKFLOW.read_text(), BICEP, (INFRA / "main.parameters.json").read_text()]
    for text in texts:
        assert not re.search(r"(?i)(password|secret|key|token)\s*[:=]\s*['\"][^'\"$<{]{8,}", text)


def test_scale_out_sets_the_workers_and_needs_redis(tmp_path: Path):
    result, _ = _deploy(tmp_path, "--name", "pichat-test", "--instances", "3", "--dry-run")
    assert result.returncode == 2 and "--with-redis" in result.stderr
    result, _ = _deploy(
        tmp_path, "--name", "pichat-test", "--instances", "3", "--with-redis", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    [plan] = [
        line for line in _az_lines(result.stdout) if line[1:4] == ["appservice", "plan", "create"]
    ]
    assert plan[plan.index("--number-of-workers") + 1] == "3"
    assert "capacity: instanceCount" in _block("plan")
    assert "param instanceCount int = 1" in BICEP
