"""Offline checks of the cluster configs in ``cluster/``. They make no cloud or Kubernetes calls.

The AWS and GCP autoscaler YAMLs go through the same steps ``ray up`` runs on them before its
first cloud API call (``commands._bootstrap_config``):
``prepare_config`` (merge with the provider's ``defaults.yaml``, merge the setup commands, validate
the docker section, fill in per-type min/max workers), then ``validate_config`` (Ray's
``ray-schema.json`` plus its cross-field checks). Ray's own resource-demand scheduler then shows
that GPU and CPU demand would start the right worker types from zero. What needs the cloud
(AMI/image lookup, IAM, subnets, quota) cannot be checked here.

The KubeRay manifest is checked structurally against the subset of the RayJob/RayCluster CRD
(ray.io/v1) that we use; no installed package ships the CRD's OpenAPI schema. Its
``rayClusterSpec`` is also put through the function that the in-tree autoscaler in the head pod
runs on the RayCluster (``_derive_autoscaling_config_from_ray_cr``), and its ``runtimeEnvYAML``
through Ray's ``RuntimeEnv`` validation.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
AUTOSCALER_YAMLS = {"aws": CLUSTER / "aws.yaml", "gcp": CLUSTER / "gcp.yaml"}
KUBERAY_YAML = CLUSTER / "kuberay-rayjob.yaml"
README = CLUSTER / "README.md"
SEARCH_SCRIPT = "searches/ahnp_per_pathology.py"
IMAGE_RE = re.compile(r"^rayproject/ray:2\.60\.0-py311-(gpu|cpu|cu\d+)$")

try:  # Ray's own validation (jsonschema: a Ray dependency, also in the dev extra)
    import jsonschema
    from ray.autoscaler._private import util as ray_util
    from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
    from ray.autoscaler._private.resource_demand_scheduler import (
        _default_utilization_scorer,
        get_nodes_for,
    )

    RAY_IMPORT_ERROR: Exception | None = None
except ImportError as e:  # pragma: no cover - only without ray[default]/jsonschema
    RAY_IMPORT_ERROR = e

needs_ray = pytest.mark.skipif(
    RAY_IMPORT_ERROR is not None,
    reason=f"Ray's autoscaler validation (ray.autoscaler._private.util + jsonschema) cannot be "
           f"imported: {RAY_IMPORT_ERROR!r}",
)


# --------------------------------------------------------------------------------------------
# helpers

@functools.lru_cache(maxsize=None)
def _load(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def raw(name: str) -> dict:
    """A fresh copy of an autoscaler YAML, exactly as written."""
    return copy.deepcopy(_load(AUTOSCALER_YAMLS[name]))


def ray_pipeline(cfg: dict) -> dict:
    """What `ray up` does to a config before talking to the cloud (minus the config cache)."""
    prepared = ray_util.prepare_config(copy.deepcopy(cfg))
    ray_util.validate_config(prepared)
    return prepared


def rayjob() -> dict:
    return copy.deepcopy(_load(KUBERAY_YAML))


def torch_pin() -> str:
    """The torch version scripts/setup.sh installs (XMODAL_TORCH_VERSION default)."""
    setup = ROOT / "scripts" / "setup.sh"
    m = re.search(r"XMODAL_TORCH_VERSION:-([0-9][0-9.]*)", setup.read_text()) if setup.exists() else None
    if not m:
        pytest.skip("scripts/setup.sh has no XMODAL_TORCH_VERSION default to compare against")
    return m.group(1)


def scorer():
    return functools.partial(_default_utilization_scorer,
                             node_availability_summary=NodeAvailabilitySummary(node_availabilities={}))


def nodes_for(cfg: dict, demand: list[dict]) -> dict[str, int]:
    """Node types Ray's autoscaler would launch for `demand`, starting from a lone head."""
    head = cfg["head_node_type"]
    launch, _unfulfilled = get_nodes_for(cfg["available_node_types"], {head: 1}, head,
                                         cfg["max_workers"], demand, scorer())
    return dict(launch)


def gpu_types(types: dict) -> list[str]:
    return [k for k, t in types.items() if t.get("resources", {}).get("GPU", 0) > 0]


def search_invocations(text: str) -> list[list[str]]:
    """Argument lists that follow every `python searches/ahnp_per_pathology.py` in `text`
    (shell line continuations joined; a command ends at a newline or `;`)."""
    text = text.replace("\\\n", " ")
    out = []
    for m in re.finditer(re.escape(f"python {SEARCH_SCRIPT}") + r"([^\n;']*)", text):
        out.append(shlex.split(m.group(1)))
    return out


def arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def pyproject_dependencies() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_req_name(d): d for d in deps}


def _req_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


# --------------------------------------------------------------------------------------------
# AWS / GCP autoscaler YAMLs: Ray's own validation

@needs_ray
@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_autoscaler_yaml_passes_ray_validation(name):
    ray_util.validate_config(raw(name))  # the file itself against ray-schema.json
    prepared = ray_pipeline(raw(name))  # and after merging with Ray's provider defaults
    assert prepared["provider"]["type"] == name
    assert prepared["cluster_name"].startswith("xmodal-")


@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_autoscaler_yaml_sets_every_command_list_itself(name):
    """`prepare_config` fills missing top-level keys from Ray's defaults.yaml, whose commands
    install nightly Ray wheels and old boto3 / google-api-python-client versions. We set them all."""
    cfg = raw(name)
    for key in ("provider", "auth", "docker", "available_node_types", "head_node_type", "max_workers",
                "idle_timeout_minutes", "file_mounts", "cluster_synced_files", "initialization_commands",
                "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cfg, f"{name}: `{key}` missing; Ray would silently use its default"


@needs_ray
@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_autoscaler_node_types(name):
    cfg = ray_pipeline(raw(name))
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("CPU", 0) <= 2 and not head["resources"].get("GPU"), \
        "the head should not run trials: advertise CPU 0 (or a small number) and no GPU"
    gpus = gpu_types(types)
    assert gpus, "no worker type with a GPU"
    for t in gpus:
        assert t != cfg["head_node_type"]
        assert types[t]["min_workers"] == 0, f"{t} must scale from zero"
        assert 1 <= types[t]["max_workers"] <= cfg["max_workers"]
    cpus = [k for k, t in types.items() if k != cfg["head_node_type"] and k not in gpus]
    assert cpus, "no CPU-only worker type for Ray Data preprocessing"
    assert all(types[t]["min_workers"] == 0 and types[t]["resources"].get("CPU", 0) >= 4 for t in cpus)
    assert cfg["idle_timeout_minutes"] > 0


@needs_ray
@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_ray_autoscaler_starts_the_right_workers_from_zero(name):
    """Ray's resource-demand scheduler, fed with these node types: trial demand (Tune function
    + a 1-GPU Train worker) starts GPU workers, CPU-only Ray Data demand starts CPU workers."""
    cfg = ray_pipeline(raw(name))
    types = cfg["available_node_types"]
    gpus = gpu_types(types)
    trial = [{"CPU": 1}, {"CPU": 4, "GPU": 1}]
    launch = nodes_for(cfg, trial * 3)
    assert launch and set(launch) <= set(gpus), launch
    assert sum(launch.values()) == 3
    data = nodes_for(cfg, [{"CPU": 1}] * 8)
    assert data and not set(data) & set(gpus), f"CPU-only work should not start GPU nodes: {data}"
    assert cfg["head_node_type"] not in data


@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_autoscaler_docker_image(name):
    cfg = raw(name)
    docker = cfg["docker"]
    images = [docker["image"]] + [docker[k] for k in ("head_image", "worker_image") if k in docker]
    images += [t["docker"]["worker_image"] for t in cfg["available_node_types"].values()
               if "worker_image" in t.get("docker", {})]
    for image in images:
        assert IMAGE_RE.match(image), image
    assert docker.get("container_name")


@pytest.mark.parametrize("path", [*AUTOSCALER_YAMLS.values(), KUBERAY_YAML, README], ids=lambda p: p.name)
def test_no_ray_ml_images(path):
    text = path.read_text()
    assert "ray-ml" not in text, f"{path.name} mentions ray-ml (no longer published)"
    for image in re.findall(r"rayproject/ray:[\w.\-]*\w", text):
        assert IMAGE_RE.match(image), f"{path.name}: {image} is not a 2.60.0 py311 image"


@needs_ray
@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_setup_commands_install_the_project_and_gpu_torch(name):
    cfg = ray_pipeline(raw(name))
    pin = torch_pin()
    mounts = cfg["file_mounts"]
    for role in ("head_setup_commands", "worker_setup_commands"):
        cmds = cfg[role]  # after Ray merged setup_commands into both
        installs = [c for c in cmds if "pip install" in c]
        project = [i for i, c in enumerate(installs)
                   if any(re.search(rf"pip install\b.*\s(-e\s+)?{re.escape(remote)}/?(\s|$)", c) for remote in mounts)]
        assert project, f"{name} {role}: no `pip install [-e] <file_mounts target>`: {cmds}"
        torch = [i for i, c in enumerate(installs) if re.search(r"\btorch==", c)]
        assert torch and torch[0] < project[0], f"{name} {role}: pin torch before installing the project"
        assert f"torch=={pin}" in installs[torch[0]], f"torch pin differs from scripts/setup.sh ({pin})"
        joined = " ".join(cmds)
        assert "+cpu" not in joined and "whl/cpu" not in joined, "CPU-only torch on GPU nodes"
    for t, spec in cfg["available_node_types"].items():  # a per-type list would replace the merged one
        if "worker_setup_commands" in spec:
            assert any("pip install" in c for c in spec["worker_setup_commands"]), t


@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_project_mount_is_the_repository(name):
    cfg = raw(name)
    cmds = " ".join(cfg["setup_commands"])
    remote = next(r for r in cfg["file_mounts"] if re.search(rf"pip install\b.*{re.escape(r)}", cmds))
    local = (ROOT / os.path.expanduser(cfg["file_mounts"][remote])).resolve()
    assert local == ROOT, f"{remote} is mounted from {local}; run `ray up` from the repository root"
    assert (local / "pyproject.toml").exists()
    assert ".venv" in cfg.get("rsync_exclude", []), "do not rsync the local virtualenv to the nodes"


@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_start_commands(name):
    cfg = raw(name)
    head = " ".join(cfg["head_start_ray_commands"])
    worker = " ".join(cfg["worker_start_ray_commands"])
    for flag in ("--head", "--port=6379", "--dashboard-host=0.0.0.0",
                 "--autoscaling-config=~/ray_bootstrap_config.yaml"):
        assert flag in head, f"{name}: head start lacks {flag}"
    assert "--address=$RAY_HEAD_IP:6379" in worker
    assert cfg["head_start_ray_commands"][0] == "ray stop" and cfg["worker_start_ray_commands"][0] == "ray stop"


@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_token_auth_is_enabled_on_every_node(name):
    """Ray 2.60 enables token auth by itself only for local ray.init() clusters, so set it."""
    cfg = raw(name)
    opts = " ".join(cfg["docker"].get("run_options", []))
    assert re.search(r"(--env|-e)[ =]RAY_AUTH_MODE=token\b", opts), "RAY_AUTH_MODE=token not in docker run_options"
    assert cfg["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token", "token file not mounted"
    for t in cfg["available_node_types"].values():
        assert "run_options" not in t.get("docker", {}), "per-type docker options could drop the auth env"


def test_aws_specifics():
    cfg = raw("aws")
    types = cfg["available_node_types"]
    for t, spec in types.items():
        # Without ImageId, Ray falls back to its built-in 2018-era Ubuntu 18.04 DLAMI.
        assert spec["node_config"].get("ImageId"), f"{t}: set ImageId"
        assert spec["node_config"]["InstanceType"]
    for t, spec in types.items():
        if t != cfg["head_node_type"]:
            assert "IamInstanceProfile" in spec["node_config"], f"{t}: workers need S3 access"
    assert cfg["auth"]["ssh_user"] == "ubuntu"


def test_gcp_specifics():
    cfg = raw("gcp")
    project = cfg["provider"]["project_id"]
    assert project
    for t, spec in cfg["available_node_types"].items():
        nc = spec["node_config"]
        assert "machineType" in nc, f"{t}: a Compute VM needs machineType (else Ray treats it as a TPU)"
        assert isinstance(nc.get("scheduling", {}), dict), f"{t}: `scheduling` must be a mapping (ray#46248)"
        for sa in nc.get("serviceAccounts", []):
            assert sa["email"].endswith(f"@{project}.iam.gserviceaccount.com"), sa
        if spec["resources"].get("GPU"):
            assert nc["guestAccelerators"][0]["acceleratorCount"] == spec["resources"]["GPU"]
            assert nc["scheduling"]["onHostMaintenance"] == "TERMINATE"
            assert nc.get("serviceAccounts"), f"{t}: workers need GCS access"
    try:
        from ray.autoscaler._private.gcp.config import GCPNodeType, get_node_type
    except ImportError:  # needs google-api-python-client; only the GCP launcher itself installs it
        return
    for t, spec in cfg["available_node_types"].items():
        assert get_node_type(spec["node_config"]) == GCPNodeType.COMPUTE, t


# --------------------------------------------------------------------------------------------
# negative: the validator really runs and rejects broken copies

def _set(path, value):
    def mutate(cfg):
        *parents, last = path
        node = cfg
        for p in parents:
            node = node[p] if not callable(p) else p(cfg)
        node[last] = value
    return mutate


def _gpu_type(cfg):
    return cfg["available_node_types"][gpu_types(cfg["available_node_types"])[0]]


BROKEN = {
    "unknown-top-level-key": (_set(["max_worker"], 3), "max_worker"),
    "max-workers-not-int": (_set(["max_workers"], "twelve"), "twelve"),
    "unknown-docker-key": (_set(["docker", "imagee"], "rayproject/ray:2.60.0-py311-gpu"), "imagee"),
    "resource-not-int": (_set([_gpu_type, "resources"], {"CPU": 8, "GPU": "one"}), "one"),
    "node-type-without-node-config": (lambda c: _gpu_type(c).pop("node_config"), "node_config"),
    "unknown-node-type-key": (_set([_gpu_type, "min_worker"], 0), "min_worker"),
    "head-type-missing": (_set(["head_node_type"], "no.such.type"), "head_node_type"),
    "min-workers-over-max": (_set([_gpu_type, "min_workers"], 99), "max_workers"),
}


@needs_ray
@pytest.mark.parametrize("broken", sorted(BROKEN))
@pytest.mark.parametrize("name", sorted(AUTOSCALER_YAMLS))
def test_ray_validation_rejects_broken_copy(name, broken):
    mutate, needle = BROKEN[broken]
    cfg = raw(name)
    mutate(cfg)
    with pytest.raises((jsonschema.ValidationError, ValueError)) as err:
        ray_pipeline(cfg)
    assert needle in str(err.value), f"rejected, but for another reason: {err.value}"


# --------------------------------------------------------------------------------------------
# KubeRay RayJob

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_INT0 = {"type": "integer", "minimum": 0}
_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {"spec": {
        "type": "object",
        "required": ["containers"],
        "properties": {"containers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "image"],
            "properties": {"resources": {"type": "object", "additionalProperties": False, "properties": {
                "limits": {"type": "object", "additionalProperties": {"type": ["string", "integer", "number"]}},
                "requests": {"type": "object", "additionalProperties": {"type": ["string", "integer", "number"]}},
            }}}}}},
    }},
}
# The fields of KubeRay's ray.io/v1 RayJobSpec / RayClusterSpec / group specs (KubeRay v1.5-1.6
# API reference) with their CRD types; unknown keys are rejected like `kubectl apply` (strict
# field validation) would. Extend the lists if a newer KubeRay adds a field you need.
RAYJOB_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            # DNS-1123 label; KubeRay derives the RayCluster and submitter names from it
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 47}}},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["entrypoint", "rayClusterSpec"],
            "properties": {
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": _INT0,
                "rayClusterSpec": {"$ref": "#/$defs/rayClusterSpec"},
                "submitterPodTemplate": {"type": "object"},
                "metadata": _STR_MAP,
                "clusterSelector": _STR_MAP,
                "submitterConfig": {"type": "object", "additionalProperties": False,
                                    "properties": {"backoffLimit": _INT0}},
                "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
                "deletionStrategy": {"type": "object"},
                "entrypoint": {"type": "string", "minLength": 1},
                "runtimeEnvYAML": {"type": "string"},
                "jobId": {"type": "string"},
                "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                "entrypointResources": {"type": "string"},
                "entrypointNumCpus": {"type": "number"},
                "entrypointNumGpus": {"type": "number"},
                "ttlSecondsAfterFinished": _INT0,
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "suspend": {"type": "boolean"},
            },
        },
    },
    "$defs": {
        "rayClusterSpec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["headGroupSpec"],
            "properties": {
                "suspend": {"type": "boolean"},
                "managedBy": {"type": "string"},
                "authOptions": {"type": "object", "additionalProperties": False, "properties": {
                    "mode": {"enum": ["disabled", "token"]}, "secretName": {"type": "string"},
                    "enableK8sTokenAuth": {"type": "boolean"}}},
                "autoscalerOptions": {"type": "object", "additionalProperties": False, "properties": {
                    "resources": {"type": "object"}, "image": {"type": "string"},
                    "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    "securityContext": {"type": "object"}, "idleTimeoutSeconds": _INT0,
                    "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                    "version": {"enum": ["v1", "v2"]}, "env": {"type": "array"},
                    "envFrom": {"type": "array"}, "volumeMounts": {"type": "array"}}},
                "headServiceAnnotations": _STR_MAP,
                "enableInTreeAutoscaling": {"type": "boolean"},
                "gcsFaultToleranceOptions": {"type": "object"},
                "headGroupSpec": {"type": "object", "additionalProperties": False, "required": ["template"],
                                  "properties": {
                                      "template": _POD_TEMPLATE, "headService": {"type": "object"},
                                      "enableIngress": {"type": "boolean"}, "rayStartParams": _STR_MAP,
                                      "serviceType": {"type": "string"}, "resources": _STR_MAP,
                                      "labels": _STR_MAP}},
                "rayVersion": {"type": "string"},
                "workerGroupSpecs": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["groupName", "minReplicas", "maxReplicas", "template"],
                    "properties": {
                        "suspend": {"type": "boolean"}, "groupName": {"type": "string", "minLength": 1},
                        "replicas": _INT0, "minReplicas": _INT0, "maxReplicas": _INT0,
                        "idleTimeoutSeconds": _INT0, "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE,
                        "scaleStrategy": {"type": "object"}, "numOfHosts": {"type": "integer", "minimum": 1},
                        "resources": _STR_MAP, "labels": _STR_MAP}}},
            },
        },
    },
}


def _containers(job: dict) -> list[dict]:
    spec = job["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _gpu_groups(job: dict) -> list[dict]:
    return [g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
            if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})]


def test_kuberay_manifest_required_fields():
    job = rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert SEARCH_SCRIPT in spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0
    assert spec.get("submissionMode", "K8sJobMode") in ("K8sJobMode", "HTTPMode", "SidecarMode")
    rc = spec["rayClusterSpec"]
    assert rc["enableInTreeAutoscaling"] is True
    assert isinstance(rc["autoscalerOptions"], dict)
    assert rc["rayVersion"] == "2.60.0"
    assert rc["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0", "keep trials off the head"
    for c in _containers(job):
        assert IMAGE_RE.match(c["image"]), c["image"]
    assert rc.get("authOptions", {}).get("mode") == "token"


def test_kuberay_gpu_worker_group_scales_from_zero():
    job = rayjob()
    groups = _gpu_groups(job)
    assert groups, "no worker group with nvidia.com/gpu limits"
    for g in groups:
        assert g["minReplicas"] == 0 and g.get("replicas", 0) == 0
        assert g["maxReplicas"] >= 1
        res = g["template"]["spec"]["containers"][0]["resources"]
        assert int(res["limits"]["nvidia.com/gpu"]) >= 1
        if "nvidia.com/gpu" in res.get("requests", {}):
            assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"]
    others = [g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g not in groups]
    assert others and all(g["minReplicas"] == 0 for g in others), "a CPU group for Ray Data, from zero"
    accounts = {g["template"]["spec"].get("serviceAccountName") for g in
                [job["spec"]["rayClusterSpec"]["headGroupSpec"], *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]}
    assert len(accounts) == 1 and None not in accounts, "every Ray pod needs the same storage identity"


def test_kuberay_structural_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(rayjob(), RAYJOB_SCHEMA)


@pytest.mark.parametrize("mutation", ["typo-field", "int-ray-start-param", "negative-min-replicas",
                                      "bad-submission-mode", "wrong-api-version"])
def test_kuberay_structural_schema_rejects_broken_copy(mutation):
    jsonschema = pytest.importorskip("jsonschema")
    job = rayjob()
    rc = job["spec"]["rayClusterSpec"]
    if mutation == "typo-field":
        rc["enableInTreeAutoScaling"] = rc.pop("enableInTreeAutoscaling")
    elif mutation == "int-ray-start-param":
        rc["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # the CRD wants map[string]string
    elif mutation == "negative-min-replicas":
        rc["workerGroupSpecs"][0]["minReplicas"] = -1
    elif mutation == "bad-submission-mode":
        job["spec"]["submissionMode"] = "K8sMode"
    elif mutation == "wrong-api-version":
        job["apiVersion"] = "ray.io/v1alpha1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(job, RAYJOB_SCHEMA)


@needs_ray
def test_kuberay_cluster_as_seen_by_rays_autoscaler():
    """The in-tree autoscaler turns the RayCluster CR into an autoscaling config (and validates
    it) with this function; then the same demand checks as for the VM configs."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    job = rayjob()
    cr = {"apiVersion": "ray.io/v1", "kind": "RayCluster",
          "metadata": {"name": job["metadata"]["name"], "namespace": "default"},
          "spec": job["spec"]["rayClusterSpec"]}
    cfg = _derive_autoscaling_config_from_ray_cr(cr)
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"]["CPU"] == 0
    gpus = gpu_types(types)
    assert gpus == [g["groupName"] for g in _gpu_groups(job)]
    assert all(types[g]["min_workers"] == 0 and types[g]["max_workers"] >= 1 for g in gpus)
    launch = nodes_for(cfg, [{"CPU": 1}, {"CPU": 4, "GPU": 1}] * 2)
    assert launch and set(launch) <= set(gpus), launch
    data = nodes_for(cfg, [{"CPU": 1}] * 8)
    assert data and not set(data) & set(gpus), data


def _runtime_env() -> dict:
    return yaml.safe_load(rayjob()["spec"]["runtimeEnvYAML"])


@needs_ray
def test_kuberay_runtime_env_passes_ray_validation():
    from ray.runtime_env import RuntimeEnv

    env = _runtime_env()
    RuntimeEnv(**env)  # Ray's own checks: known fields, remote working_dir must be an archive URI, pip shape
    wd = env["working_dir"]
    assert re.match(r"^(s3|gs)://[^/]+/.+\.zip$", wd), wd
    storage = arg(search_invocations(rayjob()["spec"]["entrypoint"])[0], "--storage")
    assert storage.split("/")[:3] == wd.split("/")[:3], "code zip and --storage on different buckets"


def test_kuberay_runtime_env_installs_the_project_dependencies():
    env = _runtime_env()
    pkgs = env["pip"]["packages"] if isinstance(env["pip"], dict) else env["pip"]
    names = {_req_name(p): p for p in pkgs}
    assert "ray" not in names, "the image provides Ray; Ray refuses to change its version"
    assert names.get("torch") == f"torch=={torch_pin()}"
    missing = [spec for name, spec in pyproject_dependencies().items() if name not in ("ray",) and name not in names]
    assert not missing, f"runtimeEnvYAML pip lacks pyproject dependencies: {missing}"


def test_kuberay_entrypoint_search_arguments():
    invocations = search_invocations(rayjob()["spec"]["entrypoint"])
    assert len(invocations) == 1
    args = invocations[0]
    assert re.match(r"^(s3|gs)://", arg(args, "--storage") or ""), "--storage must be object storage"
    assert float(arg(args, "--gpus-per-worker") or 0) > 0, "without GPU demand no GPU pod starts"
    assert int(arg(args, "--max-concurrent") or 0) > 0, "set concurrency; the cluster starts with no workers"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_kuberay_entrypoint_uploads_reports_and_keeps_the_exit_code(tmp_path):
    """Run the entrypoint's shell logic for real with a stand-in search script and file:// storage."""
    argv = shlex.split(rayjob()["spec"]["entrypoint"])
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3, "entrypoint must be one bash -c '...' word"
    bucket = tmp_path / "bucket"
    payload = re.sub(r"(s3|gs)://[^/\s;'\"]+", f"file://{bucket}", argv[2])  # any bucket, even once filled in
    reports = arg(search_invocations(rayjob()["spec"]["entrypoint"])[0], "--reports")
    assert reports and reports.startswith("/"), "--reports: a local folder the entrypoint uploads"
    payload = payload.replace(reports, str(tmp_path / "reports"))
    work = tmp_path / "work"
    (work / "searches").mkdir(parents=True)
    (work / SEARCH_SCRIPT).write_text(
        "import argparse, pathlib, sys\n"
        "p = argparse.ArgumentParser(); p.add_argument('--reports'); p.add_argument('--run')\n"
        "a, _ = p.parse_known_args()\n"
        "out = pathlib.Path(a.reports) / a.run; out.mkdir(parents=True)\n"
        "(out / 'summary.md').write_text('ok')\n"
        "sys.exit(3)\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # keeps the venv
    (bindir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(["bash", "-c", payload], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, f"exit code of the search must be kept\n{res.stdout}\n{res.stderr}"
    run = arg(search_invocations(rayjob()["spec"]["entrypoint"])[0], "--run")
    uploaded = list(bucket.rglob("summary.md"))
    assert uploaded and uploaded[0].parent.name == run, (uploaded, res.stderr)


def test_search_script_accepts_the_documented_arguments():
    """Every command line in the manifest and the README parses with the real CLI."""
    try:
        from xmodal.search.cli import parser
    except Exception as e:  # the lead's module; keep this file independent of its state
        pytest.skip(f"xmodal.search.cli not importable: {e!r}")
    invocations = search_invocations(rayjob()["spec"]["entrypoint"]) + search_invocations(README.read_text())
    assert len(invocations) >= 3
    for args in invocations:
        ns = parser().parse_args(args)
        if ns.smoke_test and not ns.data:  # the README's local trial of the job path
            continue
        assert re.match(r"^(s3|gs)://", ns.storage), args
        assert ns.gpus_per_worker > 0 and ns.max_concurrent > 0, args


def test_readme_documents_the_steps():
    text = README.read_text()
    for needle in ("ray up cluster/aws.yaml", "ray down cluster/aws.yaml", "ray dashboard cluster/aws.yaml",
                   "ray up cluster/gcp.yaml", "ray down cluster/gcp.yaml", "ray dashboard cluster/gcp.yaml",
                   "ray job submit --address http://127.0.0.1:8265 --working-dir .",
                   "kubectl apply -f cluster/kuberay-rayjob.yaml", "kubectl get rayjob", "kubectl logs",
                   "RAY_AUTH_MODE=token", "ray get-auth-token --generate", "RAY_AUTH_TOKEN"):
        assert needle in text, needle
