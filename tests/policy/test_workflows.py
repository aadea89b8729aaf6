"""The GitHub Actions workflows are valid, refer only to things that exist, and keep their guard rails.

Schema validation uses the GitHub workflow schema that check-jsonschema ships (no download: the proxy variables
point at a closed port, so a fetch would fail the test). The rest reads the workflows as GitHub does and checks
what a broken copy of this repository would only reveal on its first pull request: stacks without config files,
`make` targets that do not exist, actions on a moving reference, a deploy that could be cancelled halfway, and the
security review's findings (zizmor clean offline, prod out of reach of pull requests, one role per environment).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policy.workflows import (
    PULUMI_ACTION,
    ROOT,
    Step,
    all_workflows,
    make_targets_called,
    makefile_targets,
    stack_configs,
    stacks_of,
    steps,
    workflow_files,
)

OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"


def check_schema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema with its bundled GitHub workflow schema, offline."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **OFFLINE},
        check=False,
    )


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    return all_workflows()


def pulumi_steps(workflows: dict[str, dict[str, Any]], workflow: str | None = None) -> list[Step]:
    return [step for step in steps(workflows) if step.action == PULUMI_ACTION and workflow in (None, step.workflow)]


def test_the_three_workflows_exist() -> None:
    names = {path.name for path in workflow_files()}
    assert {"ci.yml", "preview.yml", "deploy.yml"} <= names, f"workflows present: {sorted(names)}"


def test_workflows_match_the_github_schema() -> None:
    result = check_schema(workflow_files())
    assert result.returncode == 0, f"check-jsonschema rejected a workflow:\n{result.stdout}\n{result.stderr}"


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n", encoding="utf-8")
    result = check_schema([broken])
    assert result.returncode != 0, "a job without runs-on passed the schema check, so the check proves nothing"


def test_every_named_stack_has_a_config_file(workflows: dict[str, dict[str, Any]]) -> None:
    configs = stack_configs()
    for step in pulumi_steps(workflows):
        named = stacks_of(step, workflows)
        assert named, f"{step.where} names no stack"
        for stack in named:
            assert stack in configs, f"{step.where} runs on stack {stack!r}, which has no Pulumi.{stack}.yaml"


def covered_by(workflows: dict[str, dict[str, Any]], workflow: str, command: str) -> set[str]:
    return {
        stack
        for step in pulumi_steps(workflows, workflow)
        if step.inputs.get("command") == command
        for stack in stacks_of(step, workflows)
    }


def test_every_configured_stack_is_deployed(workflows: dict[str, dict[str, Any]]) -> None:
    covered = covered_by(workflows, "deploy-stack.yml", "up")
    assert covered == stack_configs(), f"deploy-stack.yml runs `pulumi up` on {covered}, configs: {stack_configs()}"


def test_pull_requests_preview_dev_only(workflows: dict[str, dict[str, Any]]) -> None:
    """A preview runs the pull request's code with the stack's config decrypted: prod's secrets and state must be out
    of its reach, so only dev is previewed, with a Pulumi token that is not the deploy token."""
    assert covered_by(workflows, "preview.yml", "preview") == {"dev"}, "a pull request previews a stack other than dev"
    for step in pulumi_steps(workflows, "preview.yml"):
        token = step.step.get("env", {}).get("PULUMI_ACCESS_TOKEN")
        assert token == "${{ secrets.PULUMI_PREVIEW_TOKEN }}", f"{step.where} previews with {token}, not the dev token"
        assert "environment" not in step.job, f"{step.where} runs in an environment, whose secrets deploy"


def test_every_make_target_called_exists(workflows: dict[str, dict[str, Any]]) -> None:
    defined = makefile_targets()
    called = [
        (step.where, target) for step in steps(workflows) for target in make_targets_called(step.step.get("run", ""))
    ]
    assert called, "no workflow calls make, so CI would not run the tests"
    for where, target in called:
        assert target in defined, f"{where} calls `make {target}`, which the Makefile does not define"


def test_make_target_parsing() -> None:
    assert make_targets_called('make smoke URL="$WSS_URL"\ncd x && make -j2 test lint # make bench') == [
        "smoke",
        "test",
        "lint",
    ], "make targets were misread from a run script"


PINNED = re.compile(r"uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?P<comment>\s+#.*)?$")


def test_actions_are_pinned_to_a_commit_with_its_release_named() -> None:
    """A tag can be moved to other code; a commit cannot. The comment says which release the commit is."""
    pinned = []
    for path in workflow_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = PINNED.search(line)
            if not match or match["action"].startswith("."):
                continue
            where = f"{path.name}:{number}"
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{where}: {match['action']} not pinned to a commit"
            assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", match["comment"] or ""), f"{where}: no `# vX.Y.Z` comment"
            pinned.append(where)
    assert pinned, "no action found, so the check proves nothing"


def test_local_workflows_called_exist(workflows: dict[str, dict[str, Any]]) -> None:
    called = [str(job["uses"]) for workflow in workflows.values() for job in workflow["jobs"].values() if "uses" in job]
    assert called, "no reusable workflow is called"
    for reference in called:
        assert reference.startswith("./") and (ROOT / reference).is_file(), f"{reference} does not exist"


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("zizmor")), "--offline", "--no-progress", "--format", "plain", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **OFFLINE},
        check=False,
    )


def test_zizmor_finds_nothing_offline() -> None:
    """Each finding zizmor still reports is fixed or suppressed inline with its reason."""
    result = zizmor(ROOT / ".github" / "workflows")
    assert result.returncode == 0, f"zizmor --offline reports findings:\n{result.stdout}{result.stderr}"


def test_zizmor_flags_a_workflow_that_keeps_credentials(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\npermissions: {}\njobs:\n  build:\n    runs-on: ubuntu-latest\n    permissions: {}\n"
        "    steps:\n      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1\n"
    )
    result = zizmor(broken)
    assert result.returncode != 0 and "artipacked" in result.stdout, f"zizmor missed persist-credentials: {result}"


def test_least_privilege_permissions_and_no_inherited_secrets(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        assert workflow.get("permissions") == {}, f"{name}: workflow-level permissions {workflow.get('permissions')}"
        for job_id, job in workflow["jobs"].items():
            assert job.get("secrets") != "inherit", f"{name} job {job_id} hands every secret to the called workflow"
            assert "permissions" in job, f"{name} job {job_id} states no permissions"
    for step in steps(workflows):
        if step.action == "actions/checkout":
            assert step.inputs.get("persist-credentials") is False, f"{step.where} leaves the token in .git/config"


def test_each_environment_deploys_with_its_own_role_and_token(workflows: dict[str, dict[str, Any]]) -> None:
    """The role ARN and the Pulumi token come from the job's environment (`vars`/`secrets` there override the
    repository's), so dev's unreviewed job cannot assume prod's role; the preview never runs in an environment."""
    job = workflows["deploy-stack.yml"]["jobs"]["up"]
    assert job["environment"] == "${{ inputs.stack }}", "the deploy job does not run in the stack's environment"
    roles = {
        step.workflow: step.inputs.get("role-to-assume")
        for step in steps(workflows)
        if step.action == AWS_CREDENTIALS_ACTION
    }
    assert roles == {
        "deploy-stack.yml": "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
        "plan-stack.yml": "${{ vars.AWS_PLAN_ROLE_ARN }}",
        "preview.yml": "${{ vars.AWS_PREVIEW_ROLE_ARN }}",
    }, f"roles: {roles}"


def test_prod_reviewers_get_a_read_only_plan_first(workflows: dict[str, dict[str, Any]]) -> None:
    """Prod is never previewed from a pull request, so its diff is produced on main, read-only, before the gate."""
    deploy = workflows["deploy.yml"]["jobs"]
    assert deploy["prod-plan"]["uses"] == "./.github/workflows/plan-stack.yml", "no plan job for prod"
    assert deploy["prod-plan"]["with"]["stack"] == "prod", f"the plan job plans {deploy['prod-plan']['with']}"
    plan_job = workflows["plan-stack.yml"]["jobs"]["plan"]
    assert plan_job["environment"] == "${{ inputs.stack }}-plan", "the plan runs where the deploy token lives"
    commands = [step.inputs.get("command") for step in pulumi_steps(workflows, "plan-stack.yml")]
    assert commands == ["preview"], f"the plan job runs {commands}"
    runs = [str(step.step.get("run", "")) for step in steps({"plan-stack.yml": workflows["plan-stack.yml"]})]
    assert any("-m preflight --stack" in run for run in runs), "the plan does not run preflight"


def test_preflight_runs_before_each_up(workflows: dict[str, dict[str, Any]]) -> None:
    stack_steps = [step.step for step in steps({"deploy-stack.yml": workflows["deploy-stack.yml"]})]
    up = next(index for index, step in enumerate(stack_steps) if step.get("with", {}).get("command") == "up")
    credentials = next(
        index for index, step in enumerate(stack_steps) if AWS_CREDENTIALS_ACTION in step.get("uses", "")
    )
    preflight = [index for index, step in enumerate(stack_steps) if "-m preflight --stack" in str(step.get("run", ""))]
    assert preflight and credentials < preflight[0] < up, "preflight does not run with credentials before pulumi up"
    assert stack_steps[preflight[0]]["env"]["STACK"] == "${{ inputs.stack }}", "preflight checks another stack"


def test_no_long_lived_aws_keys(workflows: dict[str, dict[str, Any]]) -> None:
    credential_steps = [step for step in steps(workflows) if step.action == AWS_CREDENTIALS_ACTION]
    assert credential_steps, "no workflow configures AWS credentials"
    for step in credential_steps:
        inputs = step.inputs
        assert "aws-access-key-id" not in inputs and "aws-secret-access-key" not in inputs, (
            f"{step.where} uses stored keys instead of OIDC"
        )
        assert re.fullmatch(r"\$\{\{\s*vars\.[A-Z_]+\s*\}\}", str(inputs.get("role-to-assume", ""))), (
            f"{step.where} must take role-to-assume from a repository variable, got {inputs.get('role-to-assume')!r}"
        )
        permissions = step.job.get("permissions") or {}
        assert permissions.get("id-token") == "write", f"{step.where} cannot get an OIDC token: {permissions}"


def test_pulumi_steps_apply_the_policy_pack(workflows: dict[str, dict[str, Any]]) -> None:
    for step in pulumi_steps(workflows):
        pack = str(step.inputs.get("policyPacks", "")).replace("${{ github.workspace }}/", "")
        assert pack, f"{step.where} runs Pulumi without the policy pack"
        assert (ROOT / pack / "PulumiPolicy.yaml").is_file(), f"{step.where}: {pack!r} is not a policy pack"
        assert str(step.step.get("env", {}).get("PULUMI_ACCESS_TOKEN", "")).startswith("${{ secrets.PULUMI_"), (
            f"{step.where} does not log in to Pulumi Cloud with a token secret"
        )


def test_ci_runs_make_test_on_push_and_pull_request(workflows: dict[str, dict[str, Any]]) -> None:
    ci = workflows["ci.yml"]
    assert {"push", "pull_request"} <= set(ci["on"]), f"ci.yml triggers: {ci['on']}"
    targets = [target for step in steps({"ci.yml": ci}) for target in make_targets_called(step.step.get("run", ""))]
    assert "test" in targets, f"ci.yml never runs make test: {targets}"


def test_preview_comments_each_stack_on_the_pull_request(workflows: dict[str, dict[str, Any]]) -> None:
    preview = workflows["preview.yml"]
    assert set(preview["on"]) == {"pull_request"}, f"preview.yml triggers: {preview['on']}"
    job_permissions = preview["jobs"]["preview"]["permissions"]
    assert job_permissions == {"contents": "read", "id-token": "write", "pull-requests": "write"}, (
        f"preview.yml permissions: {job_permissions}"
    )
    concurrency = preview["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"] and concurrency["cancel-in-progress"] is True, (
        f"preview.yml must run once per pull request, cancelling stale runs: {concurrency}"
    )
    for step in pulumi_steps(workflows, "preview.yml"):
        assert step.inputs.get("command") == "preview", f"{step.where} is not a preview"
        assert step.inputs.get("comment-on-pr") is True, f"{step.where} does not comment on the pull request"


def test_deploy_goes_to_dev_then_to_prod_behind_an_environment(workflows: dict[str, dict[str, Any]]) -> None:
    deploy = workflows["deploy.yml"]
    assert deploy["on"] == {"push": {"branches": ["main"]}}, f"deploy.yml triggers: {deploy['on']}"
    jobs = deploy["jobs"]
    assert jobs["dev"]["with"]["stack"] == "dev" and jobs["prod"]["with"]["stack"] == "prod", f"deploy jobs: {jobs}"
    assert set(jobs["prod"]["needs"]) == {"dev", "prod-plan"}, "prod must deploy only after dev and its own plan"
    stack_job = workflows["deploy-stack.yml"]["jobs"]["up"]
    assert stack_job["environment"] == "${{ inputs.stack }}", (
        "each stack must deploy in its GitHub environment (prod's required reviewers gate it)"
    )


def test_deploys_are_never_cancelled_halfway(workflows: dict[str, dict[str, Any]]) -> None:
    groups = [("deploy.yml", workflows["deploy.yml"].get("concurrency"))]
    groups += [
        (f"deploy-stack.yml job {job_id}", job.get("concurrency"))
        for job_id, job in workflows["deploy-stack.yml"]["jobs"].items()
    ]
    for where, concurrency in groups:
        assert concurrency and concurrency.get("cancel-in-progress") is False, (
            f"{where} must queue deploys, never cancel one in progress: {concurrency}"
        )


def test_smoke_test_uses_the_url_pulumi_up_printed(workflows: dict[str, dict[str, Any]]) -> None:
    stack_steps = [step.step for step in steps({"deploy-stack.yml": workflows["deploy-stack.yml"]})]
    up_index = next(index for index, step in enumerate(stack_steps) if step.get("with", {}).get("command") == "up")
    up_id = stack_steps[up_index]["id"]
    smoke = [step for step in stack_steps[up_index + 1 :] if "smoke" in make_targets_called(step.get("run", ""))]
    assert smoke, "no `make smoke` after `pulumi up`"
    assert smoke[0]["env"]["WSS_URL"] == f"${{{{ steps.{up_id}.outputs.wssUrl }}}}", (
        f"the smoke test must target the stack's wssUrl output: {smoke[0]}"
    )
    assert '"$WSS_URL"' in smoke[0]["run"], f"the smoke test ignores WSS_URL: {smoke[0]['run']}"


def test_files_the_workflows_read_exist(workflows: dict[str, dict[str, Any]]) -> None:
    referenced: list[tuple[str, str]] = []
    for step in steps(workflows):
        referenced += [(step.where, path) for path in re.findall(r"-r\s+(\S+)", str(step.step.get("run", "")))]
        referenced += [(step.where, path) for path in str(step.inputs.get("cache-dependency-path", "")).split()]
    assert referenced, "no workflow installs requirements, so the check proves nothing"
    for where, path in referenced:
        assert (ROOT / path).is_file(), f"{where} reads {path}, which does not exist"


def test_workflows_create_the_virtualenvs_pulumi_runs(workflows: dict[str, dict[str, Any]]) -> None:
    # Pulumi runs the program with Pulumi.yaml's virtualenv and the pack with PulumiPolicy.yaml's; neither is created
    # by the Pulumi action, so a job that runs Pulumi must create both.
    program_env = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    pack_env = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]["virtualenv"]
    for step in pulumi_steps(workflows):
        scripts = "\n".join(str(other.get("run", "")) for other in step.job.get("steps") or ())
        for env in (program_env, f"policy/{pack_env}"):
            assert re.search(rf"python -m venv {re.escape(env)}\s", scripts + "\n"), (
                f"{step.where} runs Pulumi, but its job never creates the virtualenv {env}"
            )
