"""Schema-level checks of the deployment recipes in infra/ (no cluster is reachable from the tests).

Each file is read the way its tool reads it, and checked for the fields that tool requires (KubeRay's
RayCluster / RayJob, core Kubernetes objects, the Ray autoscaler's own config validation, MLflow's own
server options and host check) and for the couplings that would break a deployment silently: versions
equal to pyproject.toml's pins, secrets only by reference, the job spec mounted where the entrypoint reads
it, Services that select their pods, MLflow accepting the host name the Ray pods use.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from jobs.cli_cluster import FORWARDED_ENV, PACKAGES
from jobs.specs import parse_spec

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

EXPECTED_FILES = [
    "README.md",
    "docker/Dockerfile",
    "docker/Dockerfile.dockerignore",
    "kuberay/raycluster.yaml",
    "kuberay/rayjob.yaml",
    "kuberay/secrets.example.yaml",
    "mlflow/Dockerfile",
    "mlflow/mlflow.yaml",
    "mlflow/postgres.yaml",
    "mlflow/secrets.example.yaml",
    "mlflow/docker-compose.yaml",
    "cluster-launcher/meshfleet-aws.yaml",
]
# Container variables that must come from a Secret (valueFrom.secretKeyRef), never a literal value.
SECRET_LIKE = re.compile(r"AWS_.*|.*PASSWORD.*|.*SECRET.*|.*TOKEN.*|.*_KEY|MLFLOW_TRACKING_URI|.*_STORE_URI")
# In docker-compose (no Secret objects): values that are credentials must be ${VAR} from the shell.
CREDENTIAL = re.compile(r".*PASSWORD.*|.*SECRET.*|.*TOKEN.*|AWS_ACCESS_KEY_ID|MINIO_ROOT_USER|.*_STORE_URI")
PLACEHOLDER = "REPLACE_ME"
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# The variables every Ray container gets from Secret meshfleet-env (all forwarded by `meshfleet submit`).
RAY_ENV = {"MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
           "AWS_ENDPOINT_URL"}


def pin(name: str) -> str:
    """The exact version pyproject.toml pins for ``name`` (extras ignored)."""
    for dep in PROJECT["dependencies"]:
        match = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==(\S+)", dep)
        if match:
            return match.group(2)
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


PYTHON_VERSION = re.fullmatch(r">=(\d+\.\d+),<\d+\.\d+", PROJECT["requires-python"]).group(1)


def yaml_files() -> list[Path]:
    return sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])


def load(relative: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((INFRA / relative).read_text()) if doc is not None]


def objects(kind: str) -> list[tuple[str, dict]]:
    """(file, object) for every Kubernetes object of ``kind`` under infra/."""
    found = []
    for path in yaml_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == kind and "apiVersion" in doc:
                found.append((str(path.relative_to(INFRA)), doc))
    return found


def one(kind: str, name: str) -> dict:
    matches = [doc for _, doc in objects(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def ray_clusters() -> list[tuple[str, dict]]:
    """(label, RayClusterSpec) of the RayCluster and of every RayJob's cluster."""
    specs = [(f"RayCluster/{doc['metadata']['name']}", doc["spec"]) for _, doc in objects("RayCluster")]
    specs += [(f"RayJob/{doc['metadata']['name']}", doc["spec"]["rayClusterSpec"]) for _, doc in objects("RayJob")]
    return specs


def pod_specs() -> list[tuple[str, dict]]:
    """(label, PodSpec) of every pod template under infra/."""
    pods = []
    for kind in ("Deployment", "StatefulSet"):
        pods += [(f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]) for _, doc in objects(kind)]
    for label, spec in ray_clusters():
        pods.append((f"{label}/head", spec["headGroupSpec"]["template"]["spec"]))
        pods += [(f"{label}/{g['groupName']}", g["template"]["spec"]) for g in spec["workerGroupSpecs"]]
    return pods


def containers() -> list[tuple[str, dict]]:
    return [(f"{label}/{c['name']}", c) for label, pod in pod_specs() for c in pod["containers"]]


UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    """A Kubernetes resource quantity ("500m", "4", "16Gi") as a number."""
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * UNITS.get(unit, 1.0) if unit else float(number)


def image_tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def server_options() -> set[str]:
    """The options `mlflow server` of the pinned MLflow accepts."""
    from mlflow.cli import server

    return {opt for param in server.params for opt in param.opts if opt.startswith("--")}


def flag_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


# -- every file ---------------------------------------------------------------------------------------

def test_the_documented_files_exist_and_the_readme_walks_through_each():
    readme = (INFRA / "README.md").read_text()
    for name in EXPECTED_FILES:
        assert (INFRA / name).is_file(), name
        if name != "README.md":
            assert f"infra/{name}" in readme, f"infra/README.md never mentions infra/{name}"


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_yaml_file_parses_into_objects(path):
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs and all(isinstance(doc, dict) for doc in docs)
    for doc in docs:
        if "apiVersion" not in doc:
            continue
        assert doc.get("kind") and isinstance(doc.get("metadata"), dict), doc.get("kind")
        assert DNS_1123.fullmatch(doc["metadata"]["name"]), doc["metadata"]["name"]
        # Applied with `kubectl -n NAMESPACE apply -f`: a namespace written in the file would conflict.
        assert "namespace" not in doc["metadata"], f"{path.name}: {doc['metadata']['name']} pins a namespace"


def test_every_container_is_complete_and_names_its_ports_uniquely():
    for label, container in containers():
        assert DNS_1123.fullmatch(container["name"]) and container.get("image"), label
        ports = container.get("ports", [])
        names = [p["name"] for p in ports if "name" in p]
        assert len(names) == len(set(names)), label
        assert all(len(name) <= 15 for name in names), f"{label}: a port name is longer than 15 characters"
        requests, limits = container["resources"].get("requests", {}), container["resources"].get("limits", {})
        assert requests and limits, f"{label}: give requests and limits"
        for key in set(requests) & set(limits):
            assert quantity(requests[key]) <= quantity(limits[key]), f"{label}: {key} requests > limits"
        if "nvidia.com/gpu" in requests or "nvidia.com/gpu" in limits:  # extended resources: must be equal
            assert requests.get("nvidia.com/gpu") == limits.get("nvidia.com/gpu"), f"{label}: GPU requests != limits"


# -- secrets ------------------------------------------------------------------------------------------

def test_secret_like_variables_come_from_secrets_never_literals():
    checked = 0
    for label, container in containers():
        for env in container.get("env", []):
            if SECRET_LIKE.fullmatch(env["name"]):
                checked += 1
                assert "value" not in env, f"{label}: {env['name']} has a literal value"
                assert "secretKeyRef" in env.get("valueFrom", {}), f"{label}: {env['name']} is not a secretKeyRef"
        for source in container.get("envFrom", []):
            assert "configMapRef" not in source, f"{label}: environment from a ConfigMap may hold secrets"
    assert checked >= 20  # the Ray containers and MLflow really are covered


def test_every_required_secret_reference_resolves_to_an_example_secret_key():
    examples = {doc["metadata"]["name"]: doc for _, doc in objects("Secret")}
    assert set(examples) == {"meshfleet-env", "mlflow-db", "mlflow-s3"}
    for label, container in containers():
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional", False):
                assert ref["name"] in examples, f"{label}: Secret {ref['name']} has no example"
                assert ref["key"] in examples[ref["name"]]["stringData"], f"{label}: {ref['name']}/{ref['key']}"


def test_example_secrets_hold_only_placeholders_for_credentials():
    for path, doc in objects("Secret"):
        assert path.endswith("secrets.example.yaml") and doc["type"] == "Opaque"
        assert "data" not in doc  # stringData only: nothing base64-encoded that could hide a real value
        for key, value in doc["stringData"].items():
            assert isinstance(value, str), key
            if CREDENTIAL.fullmatch(key) or key == "AWS_SECRET_ACCESS_KEY":
                assert PLACEHOLDER in value, f"{path}: {key} must be a placeholder"


def test_ray_containers_get_what_meshfleet_submit_would_forward():
    assert RAY_ENV <= set(FORWARDED_ENV)
    for label, spec in ray_clusters():
        for pod_label, pod in [("head", spec["headGroupSpec"]["template"]["spec"])] + [
                (g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]]:
            ray_container = pod["containers"][0]
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in ray_container.get("env", []) if "valueFrom" in e}
            assert RAY_ENV <= set(refs), f"{label}/{pod_label}: missing {sorted(RAY_ENV - set(refs))}"
            assert all(refs[name] == {**refs[name], "name": "meshfleet-env", "key": name} for name in RAY_ENV)


# -- KubeRay ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label,spec", ray_clusters(), ids=[label for label, _ in ray_clusters()])
def test_ray_cluster_has_the_fields_kuberay_requires(label, spec):
    assert spec["rayVersion"] == pin("ray")
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict) and "template" in head
    # RayStartParams is map[string]string in the CRD: an unquoted number is rejected by the API server.
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["rayStartParams"].get("num-gpus") == "0"  # a CPU head: no model actor can land on it
    ray_head = head["template"]["spec"]["containers"][0]  # KubeRay treats containers[0] as the Ray container
    ports = {p["containerPort"] for p in ray_head["ports"]}
    assert {6379, 8265, 10001} <= ports  # GCS, dashboard / Jobs API, Ray client
    assert "nvidia.com/gpu" not in ray_head["resources"].get("limits", {})
    assert ray_head["image"].endswith("-cpu") and image_tag(ray_head["image"]).startswith(PROJECT["version"])

    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    gpu_groups = 0
    for group in groups:
        assert DNS_1123.fullmatch(group["groupName"]) and "template" in group
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        worker = group["template"]["spec"]["containers"][0]
        assert image_tag(worker["image"]).startswith(PROJECT["version"])
        gpus = worker["resources"].get("limits", {}).get("nvidia.com/gpu")
        if gpus is None:
            continue
        gpu_groups += 1
        assert int(gpus) >= 1 and worker["image"].endswith("-gpu")
        if "num-gpus" in group["rayStartParams"]:
            assert float(group["rayStartParams"]["num-gpus"]) == int(gpus)
        tolerations = group["template"]["spec"].get("tolerations", [])
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), f"{label}: GPU taint not tolerated"
        # meshfleet requests GPUs only if the cluster has some when the job starts (pipelines/ray_runner.py).
        assert group["minReplicas"] >= 1
    assert gpu_groups >= 1


def test_the_rayjob_and_the_raycluster_describe_the_same_cluster():
    (_, cluster), = objects("RayCluster")
    (_, job), = objects("RayJob")

    def shape(spec):
        head = spec["headGroupSpec"]
        return (spec["rayVersion"], spec.get("authOptions"), head["rayStartParams"],
                head["template"]["spec"]["containers"][0]["image"],
                head["template"]["spec"]["containers"][0]["env"],
                [(g["groupName"], g["rayStartParams"], g["template"]["spec"]["containers"][0]["image"],
                  g["template"]["spec"]["containers"][0]["resources"], g["template"]["spec"]["containers"][0]["env"])
                 for g in spec["workerGroupSpecs"]])

    assert shape(cluster["spec"]) == shape(job["spec"]["rayClusterSpec"])


def test_the_rayjob_runs_the_spec_it_mounts_and_the_spec_is_valid(monkeypatch):
    (path, job), = objects("RayJob")
    spec = job["spec"]
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
    assert all(isinstance(v, str) for v in spec.get("metadata", {}).values())
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["meshfleet", "run"] or argv[:4] == ["python", "-m", "jobs.cli", "run"]
    spec_path = Path(argv[-1])
    head_pod = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in head_pod["containers"][0]["volumeMounts"]}
    assert str(spec_path.parent) in mounts, "the entrypoint runs on the head: the spec must be mounted there"
    volume = next(v for v in head_pod["volumes"] if v["name"] == mounts[str(spec_path.parent)])
    configmap = one("ConfigMap", volume["configMap"]["name"])
    assert configmap in [doc for doc in load(path)]  # shipped in the same file, applied together
    text = configmap["data"][spec_path.name]
    kind, config = parse_spec(yaml.safe_load(text))
    assert spec["metadata"]["meshfleet_kind"] == kind
    if kind == "infer":
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as KubeRay sets it: the models run on the GPU workers
        config.validate()
        assert all(uri.startswith("s3://") for uri in (*config.inputs, config.checkpoint, config.body_models,
                                                       config.output))
        gpu_group = spec["rayClusterSpec"]["workerGroupSpecs"][0]
        assert config.resources.actors is None or config.resources.actors <= gpu_group["maxReplicas"]


def test_every_job_spec_shipped_in_a_configmap_parses():
    specs = [(cm["metadata"]["name"], key, text) for _, cm in objects("ConfigMap")
             for key, text in cm.get("data", {}).items() if key.endswith((".yaml", ".yml"))]
    assert specs
    for name, key, text in specs:
        kind, _ = parse_spec(yaml.safe_load(text))
        assert kind in ("infer", "eval", "track", "leaderboard"), (name, key)


# -- MLflow -------------------------------------------------------------------------------------------

def mlflow_deployment() -> tuple[dict, list[str]]:
    container = one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    return container, [*container["command"], *container["args"]]


def test_mlflow_server_uses_a_database_backend_and_an_s3_artifact_store():
    container, argv = mlflow_deployment()
    assert argv[:2] == ["mlflow", "server"]
    unknown = {arg for arg in argv[2:] if arg.startswith("--")} - server_options()
    assert not unknown, f"not options of mlflow {pin('mlflow')} server: {unknown}"
    assert flag_value(argv, "--artifacts-destination").startswith("s3://")
    assert "--serve-artifacts" in argv and flag_value(argv, "--host") == "0.0.0.0"
    # The backend store URI (it holds the database password) comes from a Secret, through the variable
    # that `mlflow server` reads for --backend-store-uri.
    assert "--backend-store-uri" not in argv
    env = {e["name"]: e for e in container["env"]}
    ref = env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    from mlflow.cli import server

    assert "MLFLOW_BACKEND_STORE_URI" in {p.envvar for p in server.params}
    example = one("Secret", ref["name"])["stringData"][ref["key"]]
    assert urlsplit(example).scheme.startswith("postgresql") and urlsplit(example).hostname == "mlflow-postgres"
    assert image_tag(container["image"]) == pin("mlflow")


def test_mlflow_service_postgres_service_and_ports_line_up():
    container, argv = mlflow_deployment()
    port = int(flag_value(argv, "--port"))
    assert port in {p["containerPort"] for p in container["ports"]}
    for service_name, workload_kind in (("mlflow", "Deployment"), ("mlflow-postgres", "StatefulSet")):
        service = one("Service", service_name)
        workload = one(workload_kind, service_name)
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert service["spec"]["selector"].items() <= pod_labels.items(), f"Service {service_name} selects nothing"
        named = {p["name"]: p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        for service_port in service["spec"]["ports"]:
            assert service_port["targetPort"] in named or service_port["targetPort"] in named.values()
    uri = urlsplit(one("Secret", "meshfleet-env")["stringData"]["MLFLOW_TRACKING_URI"])
    assert uri.hostname == "mlflow" and uri.port == one("Service", "mlflow")["spec"]["ports"][0]["port"] == port
    db = urlsplit(one("Secret", "mlflow-db")["stringData"]["MLFLOW_BACKEND_STORE_URI"])
    assert db.port == one("Service", "mlflow-postgres")["spec"]["ports"][0]["port"]
    assert one("StatefulSet", "mlflow-postgres")["spec"]["serviceName"] == "mlflow-postgres"


def test_mlflow_accepts_the_host_names_clients_use_and_only_those():
    from mlflow.server.security_utils import is_allowed_host_header

    _, argv = mlflow_deployment()
    allowed = [host.strip() for host in flag_value(argv, "--allowed-hosts").split(",")]
    tracking = urlsplit(one("Secret", "meshfleet-env")["stringData"]["MLFLOW_TRACKING_URI"]).netloc
    for host in (tracking, "mlflow.meshfleet.svc.cluster.local:5000", "localhost:5000", "127.0.0.1:5000"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "mlflow.attacker.example:5000")
    assert "*" not in allowed


def test_docker_compose_stands_up_mlflow_on_postgres_and_minio_without_literal_credentials():
    (compose,) = load("mlflow/docker-compose.yaml")
    services = compose["services"]
    assert {"postgres", "minio", "buckets", "mlflow"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
        env = service.get("environment", {})
        assert isinstance(env, dict), name
        for key, value in env.items():
            if CREDENTIAL.fullmatch(key):
                assert "${" in str(value), f"{name}: {key} is a literal; take it from the shell"
    mlflow = services["mlflow"]
    assert image_tag(mlflow["image"]) == pin("mlflow") and mlflow["build"] == "."
    argv = mlflow["command"]
    unknown = {arg for arg in argv if arg.startswith("--")} - server_options()
    assert not unknown, unknown
    destination = urlsplit(flag_value(argv, "--artifacts-destination"))
    assert destination.scheme == "s3" and "--serve-artifacts" in argv
    assert destination.netloc in services["buckets"]["environment"]["BUCKETS"].split(",")
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == services["buckets"]["environment"]["S3_ENDPOINT"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mlflow["depends_on"]["buckets"]["condition"] == "service_completed_successfully"
    compile(services["buckets"]["command"][0], "buckets", "exec")  # the one-shot script is valid Python


# -- container recipes --------------------------------------------------------------------------------

def dockerfile_args(relative: str) -> dict[str, str]:
    text = (INFRA / relative).read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))


def test_worker_image_pins_what_pyproject_pins():
    text = (INFRA / "docker/Dockerfile").read_text()
    args = dockerfile_args("docker/Dockerfile")
    assert args["RAY_VERSION"] == pin("ray")
    assert args["TORCH_VERSION"] == pin("torch")
    assert args["PYTHON_VERSION"] == PYTHON_VERSION
    assert args["MESHFLEET_VERSION"] == PROJECT["version"]
    assert args["TORCH_VARIANT"] == "gpu"
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim", text, flags=re.MULTILINE)
    assert 'pip install "ray[data,train,default]==${RAY_VERSION}"' in text
    assert 'pip install "torch==${TORCH_VERSION}"' in text


def test_worker_image_installs_the_packages_that_meshfleet_submit_ships():
    text = (INFRA / "docker/Dockerfile").read_text()
    copied = {part for line in re.findall(r"^COPY (.+)$", text, flags=re.MULTILINE) for part in line.split()[:-1]}
    assert set(PACKAGES) | {"pyproject.toml", PROJECT["readme"]} <= copied
    assert "pip install /opt/meshfleet" in text


def test_worker_image_works_under_kuberays_login_shell():
    """KubeRay starts Ray with `/bin/bash -lc`, and Debian's /etc/profile resets PATH in login shells:
    the Python tools must live in /usr/local (pip as root, before `USER ray`), not in a venv on ENV PATH.
    Its exec probes need wget."""
    text = (INFRA / "docker/Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any(re.match(r"ENV\s+(.*\s)?PATH=", line) for line in lines)
    assert "venv" not in "\n".join(lines)
    user = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert lines[user] == "USER ray"
    assert all(i < user for i, line in enumerate(lines) if "pip install" in line)
    assert re.search(r"apt-get install [^\n]*\bwget\b", text)
    assert "--uid 1000" in text and "WORKDIR /home/ray" in text


def test_build_context_keeps_only_what_the_image_installs():
    patterns = [line.strip() for line in (INFRA / "docker/Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**"  # exclude everything (.venv, results, weights, .git) ...
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert included == set(PACKAGES) | {"pyproject.toml", PROJECT["readme"]}  # ... but what COPY needs
    assert "**/__pycache__" in patterns


def test_mlflow_image_pins_the_same_mlflow_as_the_clients():
    args = dockerfile_args("mlflow/Dockerfile")
    text = (INFRA / "mlflow/Dockerfile").read_text()
    assert args["MLFLOW_VERSION"] == pin("mlflow")
    assert args["DATABRICKS_SDK_VERSION"] == pin("databricks-sdk")
    assert args["BOTO3_VERSION"] == pin("boto3")
    # SQLAlchemy 2.1 (installed with this mlflow) opens postgresql:// URIs with psycopg 3, not psycopg2.
    import sqlalchemy

    assert int(sqlalchemy.__version__.split(".")[0]) == 2 and int(sqlalchemy.__version__.split(".")[1]) >= 1
    assert "PSYCOPG_VERSION" in args and '"psycopg[binary]==${PSYCOPG_VERSION}"' in text
    assert "psycopg2-binary" not in text
    for _, deployment in objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if "/mlflow:" in container["image"]:
                assert image_tag(container["image"]) == args["MLFLOW_VERSION"]


# -- Ray cluster launcher -----------------------------------------------------------------------------

def launcher() -> dict:
    (config,) = load("cluster-launcher/meshfleet-aws.yaml")
    return config


def test_cluster_launcher_config_passes_the_ray_autoscalers_own_validation():
    # The same two steps `ray up` runs before it contacts the cloud provider.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(launcher())))


def test_cluster_launcher_has_a_cpu_head_and_gpu_workers():
    config = launcher()
    assert config["cluster_name"] and config["provider"]["type"] == "aws" and config["provider"]["region"]
    assert config["auth"]["ssh_user"]
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    for name, node_type in types.items():
        assert node_type["node_config"]["InstanceType"] and "ImageId" in node_type["node_config"], name
        assert isinstance(node_type["resources"], dict), name
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0}
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    gpu = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] >= 1 for t in gpu)  # see the RayCluster test
    assert sum(t["min_workers"] for t in workers) <= config["max_workers"]
    assert all(t["max_workers"] <= config["max_workers"] for t in workers)


def test_cluster_launcher_starts_ray_as_meshfleet_needs():
    config = launcher()
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    for flag in ("--head", "--dashboard-host=0.0.0.0", "--autoscaling-config=~/ray_bootstrap_config.yaml",
                 "--num-gpus=0", "--num-cpus=0", "--port=6379"):
        assert flag in head, flag
    assert "--address=$RAY_HEAD_IP:6379" in worker
    # Token auth on every node, with the token the launcher copies to every node.
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker


def test_cluster_launcher_installs_the_pinned_stack_from_the_mounted_sources():
    config = launcher()
    setup = " ".join(config["setup_commands"])
    assert f'"ray[data,train,default]=={pin("ray")}"' in setup
    assert f'"torch=={pin("torch")}"' in setup
    assert f"--python {PYTHON_VERSION}" in setup
    mounts = config["file_mounts"]
    mounted = {Path(local).name for remote, local in mounts.items() if remote.startswith("~/meshfleet-src/")}
    assert set(PACKAGES) | {"pyproject.toml", PROJECT["readme"]} <= mounted
    for remote, local in mounts.items():
        if not local.startswith("~"):  # relative to the repository root, where `ray up` is run
            assert (ROOT / local).exists(), f"file_mounts {remote}: {local} does not exist"
    assert "~/meshfleet-src" in setup
