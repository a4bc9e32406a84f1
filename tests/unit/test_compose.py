"""docker-compose.yml, the Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is read with PyYAML and interpolated the way Compose does (``${VAR:-default}``,
``$$``), then held against the code it runs: the topics the init service creates against
streams/topics.py, every LEADFLOW_* variable against the Settings fields, the worker's health
check against the routes in streams/api.py. Each check is a function of the parsed file, so
``test_a_broken_file_is_caught`` can show that each one fails on a file broken on purpose.
When a Docker client with Compose is installed, ``docker compose config`` validates the syntax.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams import topics
from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
KAFKA, REGISTRY, TOPICS, DASHBOARD = "kafka", "schema-registry", "topics", "dashboard"
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)$")
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)

Compose = dict[str, Any]


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution, applied to every string of the parsed file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["name"] or m["bare"]
        found, op, arg = env.get(name), m["op"], m["arg"] or ""
        unset = found is None or (op is not None and op.startswith(":") and found == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise AssertionError(f"{name} must be set: {arg}")
        return found or ""

    return _VAR.sub(substitute, value)


def raw_compose() -> Compose:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def load(env: Mapping[str, str] | None = None) -> Compose:
    return interpolate(raw_compose(), env or {})


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def workers(c: Compose) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in c["services"].items() if s.get("command") == ["worker"]}


def leadflow_services(c: Compose) -> dict[str, dict[str, Any]]:
    return {**workers(c), DASHBOARD: c["services"][DASHBOARD]}


def settings_of(service: Mapping[str, Any]) -> Settings:
    # The container's configuration file is the repo's leadflow.toml; the environment wins.
    return Settings.load(env=env_of(service), toml_path=ROOT / "leadflow.toml")


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """container path -> source, for the short volume syntax."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def internal_listeners(c: Compose) -> set[str]:
    advertised = env_of(c["services"][KAFKA])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    host_ports = {a.split("://", 1)[1] for a in advertised}
    return {hp for hp in host_ports if hp.split(":")[0] == KAFKA}


def created_topics(c: Compose) -> dict[str, dict[str, Any]]:
    """What the init service's script creates: name -> partitions, replication, configs."""
    script = "\n".join(c["services"][TOPICS]["command"])
    variables: dict[str, str] = {}
    created: dict[str, dict[str, Any]] = {}
    for line in script.splitlines():
        line = line.strip()
        if assignment := re.fullmatch(r"(\w+)=(.*)", line):
            variables[assignment[1]] = shlex.split(assignment[2])[0]
            continue
        line = re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m[1]], line)
        words = shlex.split(line, comments=True)
        if "--create" not in words:
            continue
        assert "--if-not-exists" in words, f"a re-run must not fail on existing topics: {line}"
        options: dict[str, list[str]] = {}
        for flag, value in zip(words, words[1:], strict=False):
            if flag.startswith("--") and not value.startswith("--"):
                options.setdefault(flag, []).append(value)
        name = options["--topic"][0]
        assert name not in created, f"{name} created twice"
        created[name] = {
            "partitions": int(options["--partitions"][0]),
            "replication": int(options["--replication-factor"][0]),
            "bootstrap": options["--bootstrap-server"][0],
            "config": dict(kv.split("=", 1) for kv in options.get("--config", [])),
        }
    return created


# -- the checks -----------------------------------------------------------------------------


def check_services(c: Compose) -> None:
    missing = {KAFKA, REGISTRY, TOPICS, DASHBOARD} - set(c["services"])
    assert not missing, f"services missing: {missing}"
    assert len(workers(c)) == 2, f"two `leadflow worker` services, found {sorted(workers(c))}"


def check_images_pinned(c: Compose) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in c["services"].items():
        image = service.get("image", "")
        match = PINNED.match(image)
        assert match, f"{name}: image {image!r} has no tag"
        tag = match["tag"]
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
        if "build" in service:
            assert tag == version, f"{name}: built image {image} should carry version {version}"


def check_health(c: Compose) -> None:
    for name, service in c["services"].items():
        if name == TOPICS:
            assert service.get("restart") == "no", "the topic init runs once"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert service.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy"


def check_depends_on(c: Compose) -> None:
    services = c["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, how in depends.items():
            condition = how.get("condition")
            assert condition in (
                "service_healthy", "service_completed_successfully", "service_started"
            ), f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no health to wait for"
    expected = {
        KAFKA: "service_healthy", REGISTRY: "service_healthy",
        TOPICS: "service_completed_successfully",
    }
    for name, worker in workers(c).items():
        got = {t: d["condition"] for t, d in worker.get("depends_on", {}).items()}
        assert got == expected, f"{name} starts after {got}"
    for name in (REGISTRY, TOPICS):
        assert services[name]["depends_on"][KAFKA]["condition"] == "service_healthy", name


def check_kafka(c: Compose) -> None:
    kafka = c["services"][KAFKA]
    env = env_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "KRaft"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env.get("CLUSTER_ID", "")), "fixed CLUSTER_ID"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env.get(key) == "1", f"one node: {key} must be 1"
    assert internal_listeners(c) == {"kafka:19092"}, "inside the network: kafka:19092"
    assert "EXTERNAL://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "127.0.0.1:9092:9092" in kafka.get("ports", []), "outside: localhost:9092"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def check_registry(c: Compose) -> None:
    registry = env_of(c["services"][REGISTRY])
    assert registry["SCHEMA_REGISTRY_SCHEMA_COMPATIBILITY_LEVEL"].upper() == "FULL_TRANSITIVE"
    store = registry["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].split("://")[-1]
    assert store in internal_listeners(c), f"registry stores schemas via {store}"
    port = urlsplit(registry["SCHEMA_REGISTRY_LISTENERS"]).port
    for name, service in workers(c).items():
        url = urlsplit(settings_of(service).schema_registry_url)
        assert (url.scheme, url.hostname, url.port) == ("http", REGISTRY, port), name


def check_worker_environment(c: Compose) -> None:
    app_ids, canonical = set(), set()
    for name, service in workers(c).items():
        s = settings_of(service)
        assert not s.embedded and set(s.bootstrap.split(",")) <= internal_listeners(c), name
        assert (s.store, s.web_host) == ("rocksdb", "0.0.0.0"), f"{name}: {s.store} {s.web_host}"
        assert s.data_dir.startswith("/"), f"{name}: data dir on a volume, not relative"
        url = urlsplit(env_of(service).get("NODE_CANONICAL_URL", ""))
        assert (url.hostname, url.port) == (name, s.web_port), f"{name} advertises {url}"
        health = " ".join(service["healthcheck"]["test"])
        assert re.search(rf":{s.web_port}/v1/health(?![\w/])", health), f"{name}: {health}"
        app_ids.add(s.app_id)
        canonical.add(url.geturl())
    assert len(app_ids) == 1, f"one consumer group, found app ids {app_ids}"
    assert len(canonical) == 2, "each worker has its own name"
    api = (ROOT / "streams" / "api.py").read_text()
    assert '@app.page("/v1/health")' in api, "the health check calls a route that exists"


def check_volumes(c: Compose) -> None:
    shared, state = set(), set()
    for name, service in workers(c).items():
        s, where = settings_of(service), mounts(service)
        assert str(s.data_path) in where, f"{name}: DATA_DIR {s.data_path} is not a volume"
        rocksdb = str(s.data_path / "worker")  # streams/app.py: data_path / "worker" / app_id
        assert rocksdb in where, f"{name}: RocksDB dir {rocksdb} is not its own volume"
        shared.add(where[str(s.data_path)])
        state.add(where[rocksdb])
    assert len(shared) == 1, f"models, examples and archive are shared: {shared}"
    assert len(state) == 2, f"two workers never share RocksDB files: {state}"
    dash = c["services"][DASHBOARD]
    assert mounts(dash).get(str(settings_of(dash).data_path)) in shared, "dashboard reads it"
    named = set(c.get("volumes") or {})
    assert shared | state <= named, "named volumes, declared at the end"


def check_topics(c: Compose) -> None:
    created = created_topics(c)
    assert set(created) == {t.name for t in topics.ALL}, (
        f"missing {sorted({t.name for t in topics.ALL} - set(created))}, "
        f"unknown {sorted(set(created) - {t.name for t in topics.ALL})}"
    )
    for name, service in workers(c).items():
        partitions = settings_of(service).partitions
        for spec in topics.ALL:
            got = created[spec.name]
            assert got["partitions"] == (spec.partitions or partitions), (name, spec.name, got)
            assert got["replication"] == 1 and got["bootstrap"] in internal_listeners(c)
            policy, retention = got["config"].get("cleanup.policy"), got["config"].get(
                "retention.ms")
            if spec.compacted:
                # as leadflow creates it (compact; the dead letters also delete after 30 days)
                assert got["config"] == spec.topic_configs, (spec.name, got["config"])
                assert policy == "compact" or int(retention or 0) > 0, (spec.name, got["config"])
            else:
                assert policy == "delete" and int(retention or 0) > 0, (spec.name, got["config"])


def check_settings_names(c: Compose) -> None:
    known = {env for _name, env, _default in Settings.documented()}
    source = (ROOT / "streams" / "settings.py").read_text()
    assert 'ENV_PREFIX + "CONFIG"' in source, "LEADFLOW_CONFIG is read by Settings.load"
    known.add(ENV_PREFIX + "CONFIG")
    dockerfile = (ROOT / "Dockerfile").read_text()
    names = set(re.findall(r"\b(LEADFLOW_\w+)=", dockerfile))
    for service in leadflow_services(c).values():
        names |= {k for k in env_of(service) if k.startswith(ENV_PREFIX)}
    assert names and not names - known, f"not settings: {sorted(names - known)}"


def check_no_inline_secrets(raw: Compose) -> None:
    for name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY", key):
                reference = r"\$\{" + key + r"(:?-)?\}"
                assert re.fullmatch(reference, value), f"{name}: {key} written inline"


def check_dashboard(c: Compose) -> None:
    dash = c["services"][DASHBOARD]
    command = dash["command"]
    assert command[:2] == ["dashboard", "--port"], command
    port = int(command[2])
    s = settings_of(dash)
    assert (s.dashboard_host, s.dashboard_port) == ("0.0.0.0", port)
    assert f"127.0.0.1:{port}:{port}" in dash["ports"]
    assert re.search(rf":{port}/_stcore/health(?![\w/])", " ".join(dash["healthcheck"]["test"]))
    url = urlsplit(s.dashboard_worker_url)
    assert url.hostname in workers(c), f"the dashboard asks {url.hostname} for live figures"
    assert "LEADFLOW_API_KEY" in env_of(dash), "the worker answers /v1/stats to a key only"


def check_ports_on_loopback(c: Compose) -> None:
    for name, service in c["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def check_dockerfile(text: str) -> None:
    lines = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text).splitlines()
    steps = [
        (ln.strip().split(None, 1) + [""])[:2]
        for ln in lines if ln.strip() and not ln.lstrip().startswith("#")
    ]
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in steps if k == "ARG" and "=" in v}
    stages: list[list[list[str]]] = []
    for step in steps:
        if step[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(step)
    assert len(stages) >= 2, "multi-stage: build the wheel, then install it"
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stages[-1][0][1]).split()[0]
    assert re.fullmatch(r"python:3\.12\.\d+-slim(-\w+)?", base), f"pinned slim Python: {base}"
    final = {k: v for k, v in stages[-1]}
    assert final.get("USER", "root").split(":")[0] not in ("root", "0"), "runs as non-root"
    assert {"8080", "8501"} <= set(final.get("EXPOSE", "").split()), "EXPOSE the API and dashboard"
    assert "HEALTHCHECK" in final and "/v1/health" in final["HEALTHCHECK"]
    assert "VOLUME" in final, "the data dir is a volume"
    body = " ".join(v for _k, v in stages[-1])
    assert not re.search(r"apt-get install|\bgcc\b|build-essential|pip install", body), (
        "no build tools or installs in the runtime stage"
    )
    assert any(k == "COPY" and "--from=" in v for k, v in stages[-1]), "installs the build"
    build = stages[0]
    assert any(k == "COPY" and v.split()[0] == "avro" for k, v in build), "copies the contracts"
    assert any(k == "RUN" and re.search(r"cp -r avro .*purelib", v) for k, v in build), (
        "streams/schemas.py finds avro/ beside the installed packages"
    )


def check_dockerignore(text: str) -> None:
    rules = [r.strip() for r in text.splitlines() if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "an allow-list: nothing reaches the build unless named"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    needed = {p for line in copied for p in line.split()}
    assert needed <= allowed, f"the Dockerfile copies what .dockerignore drops: {needed - allowed}"
    assert not allowed & {".env", ".venv", ".git", ".leadflow"}, "never in the build context"


# -- the tests ------------------------------------------------------------------------------

CHECKS: list[Callable[[Compose], None]] = [
    check_services, check_images_pinned, check_health, check_depends_on, check_kafka,
    check_registry, check_worker_environment, check_volumes, check_topics, check_settings_names,
    check_dashboard, check_ports_on_loopback,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_the_compose_file(check: Callable[[Compose], None]) -> None:
    check(load())


def test_no_secret_is_written_in_the_compose_file() -> None:
    check_no_inline_secrets(raw_compose())


def test_partitions_follow_one_variable_for_topics_and_workers() -> None:
    check_topics(load({"LEADFLOW_PARTITIONS": "8"}))
    assert created_topics(load({"LEADFLOW_PARTITIONS": "8"}))["leads.captured"]["partitions"] == 8


def test_the_dockerfile_and_its_context() -> None:
    check_dockerfile((ROOT / "Dockerfile").read_text())
    check_dockerignore((ROOT / ".dockerignore").read_text())


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        *parents, last = path.split(".")
        node = c
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return mutate


def _edit_script(topic: str, old: str, new: str | None) -> Callable[[Compose], None]:
    """Replace ``old`` in the line that creates ``topic`` (None: drop that line)."""
    def mutate(c: Compose) -> None:
        lines = c["services"][TOPICS]["command"][0].splitlines()
        edited = [
            ln if f"--topic {topic} " not in ln else (None if new is None else ln.replace(old, new))
            for ln in lines
        ]
        c["services"][TOPICS]["command"] = ["\n".join(ln for ln in edited if ln is not None)]
    return mutate


BROKEN = [
    ("no second worker", _set("services.worker-2", None), check_services),
    ("latest tag", _set("services.schema-registry.image", "confluentinc/cp-schema-registry:latest"),
     check_images_pinned),
    ("no health check", _set("services.kafka.healthcheck", None), check_health),
    ("plain depends_on", _set("services.worker-1.depends_on", ["kafka"]), check_depends_on),
    ("three replicas", _set("services.kafka.environment.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", 3),
     check_kafka),
    ("BACKWARD", _set("services.schema-registry.environment."
                      "SCHEMA_REGISTRY_SCHEMA_COMPATIBILITY_LEVEL", "BACKWARD"), check_registry),
    ("memory store", _set("services.worker-2.environment.LEADFLOW_STORE", "memory"),
     check_worker_environment),
    ("outside listener", _set("services.worker-1.environment.LEADFLOW_BROKER_URL",
                              "kafka://localhost:9092"), check_worker_environment),
    ("shared RocksDB", _set("services.worker-2.volumes",
                            ["leadflow-data:/data", "worker-1-state:/data/worker"]), check_volumes),
    ("a topic missing", _edit_script("models.scoring", "", None), check_topics),
    ("not compacted", _edit_script("models.scoring", "=compact", "=delete"), check_topics),
    ("dead letters not compacted", _edit_script("leadflow.dead-letters", "=compact,delete",
                                                "=delete"), check_topics),
    ("wrong partitions", _edit_script("leadflow.routing", "--partitions 1", "--partitions 4"),
     check_topics),
    ("same worker name", _set("services.worker-2.environment.NODE_CANONICAL_URL",
                              "http://worker-1:8080"), check_worker_environment),
    ("health of a missing route", _set("services.worker-1.healthcheck.test",
                                       ["CMD", "curl", "http://127.0.0.1:8080/v1/healthz"]),
     check_worker_environment),
    ("a typo in a setting", _set("services.worker-1.environment.LEADFLOW_STOR", "rocksdb"),
     check_settings_names),
    ("inline secret", _set("services.worker-1.environment.LEADFLOW_WEBHOOK_SECRETS", "whsec_x"),
     check_no_inline_secrets),
    ("inline API key", _set("services.dashboard.environment.LEADFLOW_API_KEY", "lfk_x"),
     check_no_inline_secrets),
    ("dashboard on loopback", _set("services.dashboard.environment.LEADFLOW_DASHBOARD_HOST",
                                   "127.0.0.1"), check_dashboard),
    ("open port", _set("services.kafka.ports", ["9092:9092"]), check_ports_on_loopback),
]


@pytest.mark.parametrize(("what", "mutate", "check"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_is_caught(
    what: str, mutate: Callable[[Compose], None], check: Callable[[Compose], None]
) -> None:
    compose = copy.deepcopy(raw_compose() if check is check_no_inline_secrets else load())
    check(copy.deepcopy(compose))  # the real file passes ...
    mutate(compose)
    with pytest.raises(AssertionError):
        check(compose)  # ... and the broken one does not


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [(r"USER leadflow", "USER root"), (r"python:3\.12\.\d+-slim\S*", "python:3.12-slim"),
     (r"COPY avro \./avro", "COPY models ./more-models"), (r"\nHEALTHCHECK", "\n# HEALTHCHECK")],
)
def test_a_broken_dockerfile_is_caught(pattern: str, replacement: str) -> None:
    text = (ROOT / "Dockerfile").read_text()
    broken, count = re.subn(pattern, replacement, text)
    assert count, f"{pattern} is not in the Dockerfile"
    with pytest.raises(AssertionError):
        check_dockerfile(broken)


@pytest.mark.parametrize(
    ("before", "after"), [("*\n", "\n"), ("!avro/\n", ""), ("!README.md", "!README.md\n!.env")]
)
def test_a_broken_dockerignore_is_caught(before: str, after: str) -> None:
    text = (ROOT / ".dockerignore").read_text()
    assert before in text
    with pytest.raises(AssertionError):
        check_dockerignore(text.replace(before, after, 1))


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True) if docker else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no Docker client with the Compose plugin here; the checks above still ran")
    result = subprocess.run(
        [docker, "compose", "--project-directory", str(ROOT), "-f",
         str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
