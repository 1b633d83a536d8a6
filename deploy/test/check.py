#!/usr/bin/env python3
"""Checks the shipped deployment files: schemas, the tools' own validators, what `kubectl kustomize`
builds from the base and every overlay, the variants, that the pieces agree with each other and
with rolerelay itself (the two-application variants: each application mounts only its own
client's volume), the systemd units through systemd-analyze, checkov (the scanner platform teams
run) with every skip explained, and the GitHub workflows against GitHub's workflow schema (they
run on GitHub only).

Usage: check.py ROLERELAY_BINARY   (run with the test virtualenv's python: PyYAML, moto, boto3,
       check-jsonschema, checkov; kubectl, promtool and systemd-analyze on PATH)
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
MONITORING = os.path.join(K8S, "monitoring")
OVERLAYS = os.path.join(ROOT, "deploy", "kubernetes-overlays")
GRAFANA = os.path.join(ROOT, "deploy", "grafana")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def kustomize(directory):
    """The resources `kubectl kustomize DIRECTORY` builds (offline), or None when it fails."""
    what = "kubectl kustomize " + os.path.relpath(directory, ROOT)
    try:
        r = run(["kubectl", "kustomize", directory])
    except FileNotFoundError:
        check(False, what + ": kubectl is not installed")
        return None
    check(r.returncode == 0, what + ("" if r.returncode == 0 else ": " + r.stderr.strip()))
    return [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else None


def find(resources, kind, name=None):
    return next(r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name))


def without_tag(image):
    """The image reference without its tag (a registry's port is not a tag)."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def rolerelay_check(binary, text, what):
    """`rolerelay check` on the configuration TEXT: the effective configuration, {} if refused."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    r = run([binary, "check", "--config", f.name])
    os.unlink(f.name)
    check(r.returncode == 0, f"rolerelay check accepts {what}" + ("" if r.returncode == 0 else ": " + r.stderr))
    return json.loads(r.stdout) if r.returncode == 0 else {}


def client_directories(effective):
    """Each client's name, roles and directory as rolerelay sees it, and where its application
    mounts it (app_directory, else the directory)."""
    top = effective.get("outputs", {}).get("directory", "?")
    clients = {}
    for c in effective.get("clients", []):
        directory = os.path.join(top, c.get("directory") or c["name"])
        clients[c["name"]] = {"roles": c["roles"], "directory": directory, "app_directory": c.get("app_directory") or directory}
    return clients


def kubernetes(binary):
    """The base (deploy/kubernetes), the monitoring component, every overlay and the variants."""
    builds = kustomizations()
    if builds is None:
        return
    base = builds["base"]
    job = load(os.path.join(K8S, "variants", "job-once.yaml"))
    two_apps = list(yaml.safe_load_all(open(os.path.join(K8S, "variants", "two-apps.yaml"))))
    everywhere(builds, job, two_apps)
    pod, sidecar, effective = base_pod(base, binary)
    metrics_port = int(effective.get("server", {}).get("listen", ":0").rsplit(":", 1)[1])
    network_policy(find(base, "NetworkPolicy"), pod, metrics_port)
    monitoring(builds["with-monitoring"], pod, pod["spec"])
    dashboard(builds["with-monitoring"])
    pre_129(builds["pre-1.29"], sidecar, effective.get("outputs", {}).get("directory", "?"),
            [r["name"] for r in effective.get("roles", [])])
    pod_identity(builds["pod-identity"], find(base, "ServiceAccount"), find(base, "Namespace")["metadata"]["name"])
    clients_pod(two_apps, binary, find(base, "ServiceAccount")["metadata"]["name"], metrics_port)


def kustomizations():
    """What kubectl kustomize builds from the base and every overlay, by name (None if any fails);
    the builds' resources validated, the base free of the Prometheus Operator's kinds."""
    kustomization = load(os.path.join(K8S, "kustomization.yaml"))
    for resource in kustomization["resources"]:
        check(os.path.exists(os.path.join(K8S, resource)), f"kustomization resource {resource} exists")
    listed = {os.path.basename(f) for f in glob.glob(os.path.join(K8S, "*.yaml"))} - {"kustomization.yaml"}
    check(listed == set(kustomization["resources"]), "every manifest of deploy/kubernetes is listed in its kustomization")
    component = load(os.path.join(MONITORING, "kustomization.yaml"))
    check(component["kind"] == "Component", "deploy/kubernetes/monitoring is a kustomize Component")
    listed = {os.path.basename(f) for f in glob.glob(os.path.join(MONITORING, "*.yaml"))} - {"kustomization.yaml"}
    check(listed == set(component["resources"]), "every manifest of the monitoring component is listed in it")

    base = kustomize(K8S)
    builds = {"base": base}
    for d in sorted(glob.glob(os.path.join(OVERLAYS, "*", "kustomization.yaml"))):
        builds[os.path.basename(os.path.dirname(d))] = kustomize(os.path.dirname(d))
    check(set(builds) == {"base", "with-monitoring", "pre-1.29", "pod-identity"}, "the overlays: " + ", ".join(sorted(builds)))
    if any(b is None for b in builds.values()):
        return None

    # What any cluster accepts: the base has no kind of the Prometheus Operator; what the API server
    # knows, it validates.
    check(not [r for r in base if r["apiVersion"].startswith("monitoring.coreos.com/")],
          "the base has no monitoring.coreos.com kind (kubectl apply -k deploy/kubernetes works without the Prometheus Operator)")
    check({"PodMonitor", "PrometheusRule"} <= {r["kind"] for r in builds["with-monitoring"]},
          "with-monitoring adds the PodMonitor and the PrometheusRule")
    with tempfile.TemporaryDirectory() as d:
        files = []
        for name, resources in builds.items():
            core = [r for r in resources if not r["apiVersion"].startswith("monitoring.coreos.com/")]
            files.append(os.path.join(d, name + ".yaml"))
            with open(files[-1], "w") as f:
                yaml.safe_dump_all(core, f)
        files += sorted(glob.glob(os.path.join(K8S, "variants", "*.yaml")))
        r = run([os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"), "--strict", "--quiet", *files])
        check(r.returncode == 0, "kubernetes-validate --strict: the built base, every overlay, every variant ("
              + ", ".join(os.path.basename(f) for f in files if "/variants/" in f) + ")"
              + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))
    # The commands the files' comments give name what exists.
    named = set()
    for path in glob.glob(os.path.join(ROOT, "deploy", "**", "*.yaml"), recursive=True):
        named |= set(re.findall(r"kubectl apply -[kf] (deploy/[\w./-]+)", open(path).read()))
    missing = sorted(n for n in named if not os.path.exists(os.path.join(ROOT, n)))
    check(named and not missing, f"the {len(named)} paths in the manifests' kubectl apply commands exist"
          + ("" if not missing else ": not " + ", ".join(missing)))
    return builds


def everywhere(builds, job, two_apps):
    """In every build and variant: the example's namespace, and no Kubernetes API token (IRSA and
    Pod Identity bring projected tokens of their own)."""
    kustomization = load(os.path.join(K8S, "kustomization.yaml"))
    base = builds["base"]
    namespace = find(base, "Namespace")["metadata"]["name"]
    check(namespace != "default" and kustomization.get("namespace") == namespace, f"the kustomization puts everything in the namespace {namespace}")
    variants = [("variants/job-once.yaml", [job]), ("variants/two-apps.yaml", two_apps)]
    for name, resources in list(builds.items()) + variants:
        stray = [f"{r['kind']}/{r['metadata']['name']}" for r in resources
                 if r["kind"] != "Namespace" and r["metadata"].get("namespace") != namespace]
        check(not stray, f"{name}: every resource is in {namespace}" + (": not " + ", ".join(stray) if stray else ""))
    check(find(base, "ServiceAccount").get("automountServiceAccountToken") is False, "the ServiceAccount does not automount an API token")
    for name, resources in list(builds.items()) + variants:
        for r in resources:
            if r["kind"] in ("Deployment", "Job"):
                check(r["spec"]["template"]["spec"].get("automountServiceAccountToken") is False,
                      f"{name}: {r['kind']} {r['metadata']['name']} mounts no API token")


def base_pod(base, binary):
    """The base's pod: the native sidecar, hardening, and the app pointed at the sidecar's
    endpoint as rolerelay reads the ConfigMap. Returns the pod template, the sidecar and the
    effective configuration."""
    kustomization = load(os.path.join(K8S, "kustomization.yaml"))
    deployment = find(base, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "rolerelay")
    check(sidecar.get("restartPolicy") == "Always", "rolerelay is a native sidecar (init container, restartPolicy: Always)")
    images = {i["name"]: i for i in kustomization["images"]}
    shipped = load(os.path.join(K8S, "deployment.yaml"))["spec"]["template"]["spec"]["initContainers"][0]["image"]
    check(without_tag(shipped) in images and "example.com" in images[without_tag(shipped)]["newName"],
          "the kustomization sets the sidecar's image, a placeholder at example.com")
    for probe, path in [("startupProbe", "/readyz"), ("readinessProbe", "/servingz"), ("livenessProbe", "/healthz")]:
        check(sidecar.get(probe, {}).get("httpGet", {}).get("path") == path, f"sidecar {probe} on {path}")
    hardened(spec)
    volumes = {v["name"]: v for v in spec["volumes"]}
    shared = next(m["name"] for m in sidecar["volumeMounts"] if m["mountPath"] == "/var/run/rolerelay")
    check(volumes[shared].get("emptyDir", {}).get("medium") == "Memory", "the shared volume is an in-memory emptyDir")
    check(pod["metadata"]["annotations"].get("prometheus.io/scrape") == "true", "prometheus scrape annotations")

    # The ConfigMap's configuration is valid for rolerelay itself, and the app points at it.
    effective = rolerelay_check(binary, find(base, "ConfigMap")["data"]["config.yaml"], "the ConfigMap's config.yaml")
    app = next(c for c in spec["containers"] if c["name"] == "app")
    env = {e["name"]: e.get("value") for e in app.get("env", [])}
    uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    listen = effective.get("credentials_endpoint", {}).get("listen", "?")
    roles = [r["name"] for r in effective.get("roles", [])]
    m = re.fullmatch(r"http://([^/]+)/v1/credentials/([A-Za-z0-9_-]+)", uri)
    check(bool(m) and m.group(1) == listen and m.group(2) in roles, f"the app's endpoint URI {uri} matches {listen} and a role")
    directory = effective.get("outputs", {}).get("directory", "?")
    token = os.path.join(directory, effective.get("credentials_endpoint", {}).get("token_file", "?"))
    check(env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") == token, f"the app's token file is {token}")
    metrics_port = int(effective.get("server", {}).get("listen", ":0").rsplit(":", 1)[1])
    check(sidecar["ports"][0]["containerPort"] == metrics_port, "the metrics port matches server.listen")
    check("eks.amazonaws.com/skip-containers" in pod["metadata"]["annotations"]
          and "app" in pod["metadata"]["annotations"]["eks.amazonaws.com/skip-containers"].split(","),
          "the EKS webhook skips the app container (IRSA's variables, Pod Identity's token)")
    return pod, sidecar, effective


def hardened(spec, prefix=""):
    """The pod and every container of it: non-root, seccomp, read-only root, no escalation, no
    capabilities, requests and limits."""
    check(spec["securityContext"].get("runAsNonRoot") is True, prefix + "pod runAsNonRoot")
    check(spec["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault", prefix + "pod seccompProfile RuntimeDefault")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"], f"{prefix}container {c['name']} hardened")
        limits = c.get("resources", {}).get("limits", {})
        check("requests" in c.get("resources", {}) and {"cpu", "memory"} <= limits.keys(), f"{prefix}container {c['name']} has requests and cpu and memory limits")


def network_policy(policy, pod, metrics_port, prefix=""):
    selects = policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    check(selects, prefix + "the NetworkPolicy selects the pod")
    check(policy["spec"]["policyTypes"] == ["Ingress"], prefix + "the NetworkPolicy restricts ingress only (egress to STS, IMDS, DNS stays open)")
    rules = policy["spec"].get("ingress", [])
    ports = [p["port"] for rule in rules for p in rule.get("ports", [])]
    sources = [s for rule in rules for s in rule.get("from", [])]
    check(ports == [metrics_port] and len(rules) == 1 and sources
          and all(s.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus" for s in sources),
          f"{prefix}the NetworkPolicy lets only Prometheus in, only to {metrics_port}")


def monitoring(resources, pod, spec):
    monitor = find(resources, "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    check(selector.items() <= pod["metadata"]["labels"].items(), "the PodMonitor selects the pod")
    ports = {p["name"] for c in spec["initContainers"] + spec["containers"] for p in c.get("ports", [])}
    check(all(e["port"] in ports for e in monitor["spec"]["podMetricsEndpoints"]), "the PodMonitor's port exists")

    rule = find(resources, "PrometheusRule")
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
        with open(os.path.join(ROOT, "deploy", "test", "alerts-test.yaml")) as src, open(os.path.join(d, "test.yaml"), "w") as dst:
            dst.write(src.read())
        r = run(["promtool", "check", "rules", "rules.yaml"], cwd=d)
        check(r.returncode == 0, "promtool check rules" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
        r = run(["promtool", "test", "rules", "test.yaml"], cwd=d)
        check(r.returncode == 0, "promtool test rules (the alerts fire when they should)" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    check({"RolerelayCredentialsExpiringSoon", "RolerelayRefreshFailing", "RolerelayNotReady", "RolerelayDown"} <= alerts, "the four alerts exist")


def dashboard(resources):
    """deploy/grafana/rolerelay.json: a Grafana dashboard model whose every panel asks the chosen
    Prometheus data source, filtered by the dashboard's variables; and its ConfigMap for the
    Grafana sidecar. Its queries are run against a live Prometheus by tests/prometheus.rs."""
    text = open(os.path.join(GRAFANA, "rolerelay.json")).read()
    model = json.loads(text)
    check(model.get("schemaVersion", 0) >= 39 and model.get("uid") == "rolerelay" and model.get("id") is None,
          "the dashboard: a current schemaVersion, a fixed uid, no instance id")
    variables = {v["name"]: v for v in model["templating"]["list"]}
    check(variables.get("datasource", {}).get("type") == "datasource"
          and variables["datasource"].get("query") == "prometheus", "the dashboard's datasource variable picks a Prometheus")
    check({"job", "namespace", "pod", "role"} <= {n for n, v in variables.items() if v["type"] == "query"},
          "the dashboard's job, namespace, pod and role variables")
    panels = [p for p in model["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in model["panels"]]
    check(len(ids) == len(set(ids)), "the dashboard's panel ids are unique")
    data_source = {"type": "prometheus", "uid": "${datasource}"}
    check(all(p.get("datasource") == data_source and p["targets"]
              and all(t.get("datasource") == data_source and t.get("expr") for t in p["targets"]) for p in panels),
          "every dashboard panel queries the ${datasource} variable")
    filtered = all(all(f'{v}=~"${v}"' in t["expr"] for v in ("job", "namespace", "pod")) for p in panels for t in p["targets"])
    check(filtered, "every dashboard query is filtered by $job, $namespace and $pod")
    cells = set()
    overlap = False
    for p in model["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                overlap |= (x, y) in cells or x >= 24
                cells.add((x, y))
    check(not overlap, "the dashboard's panels do not overlap and fit its 24 columns")
    metrics = {re.sub(r"_bucket$", "", m) for m in re.findall(r"\brolerelay_[a-z_]+", text)}
    documented = set(re.findall(r"`(rolerelay_[a-z_]+)`", open(os.path.join(ROOT, "docs", "reference.md")).read()))
    check(metrics <= documented, "the dashboard uses only the documented metrics"
          + "".join(f"; not {m}" for m in sorted(metrics - documented)))
    maps = [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    check(len(maps) == 1 and json.loads(maps[0]["data"]["rolerelay.json"]) == model,
          "with-monitoring has the dashboard as a ConfigMap labelled grafana_dashboard: \"1\"")
    alone = kustomize(GRAFANA)
    check(alone is not None and [r["kind"] for r in alone] == ["ConfigMap"] and "namespace" not in alone[0]["metadata"],
          "deploy/grafana alone builds the ConfigMap without a namespace (kubectl apply -k deploy/grafana -n <Grafana's>)")


def pre_129(resources, sidecar, directory, roles):
    """Without native sidecars: `once` as a plain init container, then `run` as a regular one."""
    spec = find(resources, "Deployment")["spec"]["template"]["spec"]
    inits, containers = spec.get("initContainers", []), {c["name"]: c for c in spec["containers"]}
    check(all("restartPolicy" not in c and not {"startupProbe", "readinessProbe", "livenessProbe"} & c.keys() for c in inits),
          "pre-1.29: no init container is a native sidecar or has probes")
    check(len(inits) == 1 and inits[0]["args"][:3] == ["once", "--retry-for", "2m"], "pre-1.29: an init container runs rolerelay once --retry-for 2m")
    regular = dict(sidecar)
    del regular["restartPolicy"]
    check(containers.get("rolerelay") == regular, "pre-1.29: rolerelay runs as a regular container, as the base's sidecar does")
    check(list(containers)[0] == "rolerelay", "pre-1.29: rolerelay is the first container (started before the application)")
    env = {e["name"]: e.get("value") for e in containers["app"].get("env", [])}
    check(env.get("AWS_CONFIG_FILE") == os.path.join(directory, "config") and env.get("AWS_PROFILE") in roles
          and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env,
          "pre-1.29: the application uses the credential_process profile (its files exist before it starts)")
    text = open(os.path.join(OVERLAYS, "pre-1.29", "kustomization.yaml")).read()
    base_text = open(os.path.join(K8S, "deployment.yaml")).read()
    check("NEVER STARTS" in text and "NEVER STARTS" in base_text and "kubernetes-overlays/pre-1.29" in base_text,
          "the base deployment and the variant say loudly what happens before 1.29, and name the variant")


def pod_identity(resources, account, namespace):
    account_here = find(resources, "ServiceAccount")
    check("eks.amazonaws.com/role-arn" in account.get("metadata", {}).get("annotations", {})
          and "eks.amazonaws.com/role-arn" not in (account_here["metadata"].get("annotations") or {}),
          "pod-identity: the ServiceAccount has no IRSA annotation (the base has one)")
    pod = find(resources, "Deployment")["spec"]["template"]
    app = next(c for c in pod["spec"]["containers"] if c["name"] == "app")
    names = {e["name"] for e in app["env"]}
    sidecar = next(c for c in pod["spec"]["initContainers"] if c["name"] == "rolerelay")
    check({"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} <= names
          and not {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} & {e["name"] for e in sidecar["env"]}
          and "app" in pod["metadata"]["annotations"].get("eks.amazonaws.com/skip-containers", "").split(","),
          "pod-identity: the webhook injects the agent's variables into rolerelay only (skip-containers: app)")
    text = open(os.path.join(OVERLAYS, "pod-identity", "kustomization.yaml")).read()
    sa = account["metadata"]["name"]
    check(f"--namespace {namespace}" in text and f"--service-account {sa}" in text,
          f"pod-identity: the association command names {namespace}/{sa}")


def clients_pod(resources, binary, account, metrics_port):
    """variants/two-apps.yaml: rolerelay with `clients`, one in-memory volume per client mounted at
    that client's directory, and each application mounting only its own client's volume,
    read-only, pointed at its own token and one of its own roles."""
    p = "two-apps: "
    deployment, configmap = find(resources, "Deployment"), find(resources, "ConfigMap")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    sidecar = next(c for c in spec.get("initContainers", []) if c["name"] == "rolerelay")
    check(sidecar.get("restartPolicy") == "Always", p + "rolerelay is a native sidecar (init container, restartPolicy: Always)")
    for probe, path in [("startupProbe", "/readyz"), ("readinessProbe", "/servingz"), ("livenessProbe", "/healthz")]:
        check(sidecar.get(probe, {}).get("httpGet", {}).get("path") == path, f"{p}sidecar {probe} on {path}")
    hardened(spec, p)
    check(spec.get("serviceAccountName") == account, f"{p}the pod runs as the base's service account {account}")
    check(pod["metadata"]["annotations"].get("prometheus.io/scrape") == "true", p + "prometheus scrape annotations")
    network_policy(find(resources, "NetworkPolicy"), pod, metrics_port, p)
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_mount = next(m for m in sidecar["volumeMounts"] if volumes[m["name"]].get("configMap"))
    check(volumes[config_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
          and sidecar["args"] == ["run", "--config", os.path.join(config_mount["mountPath"], "config.yaml")],
          p + "rolerelay runs with the variant's own ConfigMap")

    effective = rolerelay_check(binary, configmap["data"]["config.yaml"], "the two-apps ConfigMap's config.yaml (with clients)")
    clients = client_directories(effective)
    check(len(clients) >= 2, f"{p}the configuration has clients: {', '.join(clients) or 'none'}")
    listen = effective.get("credentials_endpoint", {}).get("listen", "?")
    token_file = effective.get("credentials_endpoint", {}).get("token_file", "?")
    sidecar_mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    top = sidecar_mounts.get(effective.get("outputs", {}).get("directory", "?"))
    apps = spec["containers"]
    for name, client in clients.items():
        volume = sidecar_mounts.get(client["directory"])
        check(volume is not None and volume != top and volumes[volume].get("emptyDir", {}).get("medium") == "Memory",
              f"{p}rolerelay mounts an in-memory emptyDir of its own at the directory of client {name}, {client['directory']}")
        users = [c for c in apps if any(m["name"] == volume for m in c.get("volumeMounts", []))]
        check(len(users) == 1, f"{p}one application mounts the volume of client {name}: " + (", ".join(c["name"] for c in users) or "none"))
        if len(users) != 1:
            continue
        app = users[0]
        mounts = app["volumeMounts"]
        own = next(m for m in mounts if m["name"] == volume)
        check(own.get("readOnly") is True and own["mountPath"] == client["app_directory"] and "subPath" not in own,
              f"{p}{app['name']} mounts the volume of client {name} read-only at {client['app_directory']}")
        shared = [m["name"] for m in mounts if m["name"] in sidecar_mounts.values()]
        check(shared == [volume], f"{p}{app['name']} mounts no other volume of rolerelay's (no other client's, not the top level): {shared}")
        env = {e["name"]: e.get("value") for e in app.get("env", [])}
        m = re.fullmatch(r"http://([^/]+)/v1/credentials/([A-Za-z0-9_-]+)", env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""))
        check(bool(m) and m.group(1) == listen and m.group(2) in client["roles"],
              f"{p}{app['name']}: its endpoint URI asks {listen} for a role of client {name} {client['roles']}")
        check(env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") == os.path.join(client["app_directory"], token_file),
              f"{p}{app['name']}: its token file is the one of client {name}, in its own mount")
        check(env.get("AWS_REGION") and env.get("AWS_REGION") == env.get("AWS_DEFAULT_REGION"),
              f"{p}{app['name']} sets AWS_REGION and AWS_DEFAULT_REGION")
    check(len(apps) == len(clients), f"{p}every application container is a client's ({len(apps)} containers, {len(clients)} clients)")
    skipped = pod["metadata"]["annotations"].get("eks.amazonaws.com/skip-containers", "").split(",")
    check(all(c["name"] in skipped for c in apps), p + "the EKS webhook skips every application container")
    text = open(os.path.join(K8S, "variants", "two-apps.yaml")).read()
    check("ONE VOLUME PER CLIENT" in text and "subPath" in text and "kubectl apply -f deploy/kubernetes/variants/two-apps.yaml" in text,
          p + "the header gives the recipe (one volume per client), the subPath alternative and the apply command")


def ecs_clients(task, binary):
    """task-definition-two-apps.json: as the Kubernetes variant, with one task volume per client (no
    subPath in ECS), the configuration written by the init container, and config-file profiles."""
    p = "ECS two-apps: "
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    sidecar, init = containers["rolerelay"], containers.get("rolerelay-init", {})
    check(sidecar["healthCheck"]["command"][1:] == ["/rolerelay", "healthcheck"], p + "health check runs rolerelay healthcheck")
    check(init.get("essential") is False and {"containerName": "rolerelay-init", "condition": "SUCCESS"} in sidecar.get("dependsOn", []),
          p + "rolerelay starts once rolerelay-init (not essential) succeeded")
    check(sidecar.get("user") == "65532:65532" and sidecar.get("readonlyRootFilesystem") is True,
          p + "rolerelay runs as 65532 with a read-only root file system")
    env = {e["name"]: e["value"] for e in init.get("environment", [])}
    config_path = {e["name"]: e["value"] for e in sidecar.get("environment", [])}.get("ROLERELAY_CONFIG", "?")
    command = " ".join(init.get("command", []))
    check(f"> {config_path}" in command, f"{p}rolerelay-init writes {config_path}, rolerelay's ROLERELAY_CONFIG")
    effective = rolerelay_check(binary, env.get("ROLERELAY_CONFIG_YAML", ""), "the ECS two-apps configuration (rolerelay-init's ROLERELAY_CONFIG_YAML)")
    clients = client_directories(effective)
    check(len(clients) >= 2, f"{p}the configuration has clients: {', '.join(clients) or 'none'}")

    def mounts(c):
        return {m["containerPath"]: m for m in c.get("mountPoints", [])}
    config_volume = mounts(sidecar).get(os.path.dirname(config_path), {})
    check(config_volume.get("readOnly") is True and mounts(init).get(os.path.dirname(config_path), {}).get("sourceVolume") == config_volume.get("sourceVolume"),
          p + "rolerelay mounts the volume rolerelay-init writes the configuration to, read-only")
    volumes = {v["name"] for v in task["volumes"]}
    sidecar_volumes = {m["sourceVolume"] for m in sidecar["mountPoints"]}
    apps = [c for name, c in containers.items() if name not in ("rolerelay", "rolerelay-init")]
    for name, client in clients.items():
        directory = client["directory"]
        mount = mounts(sidecar).get(directory, {})
        volume = mount.get("sourceVolume")
        check(volume in volumes and mount.get("readOnly") is False
              and volume != mounts(sidecar).get(effective.get("outputs", {}).get("directory"), {}).get("sourceVolume"),
              f"{p}rolerelay mounts a task volume of its own at the directory of client {name}, {directory}")
        check(mounts(init).get(directory, {}).get("sourceVolume") == volume and re.search(rf"chown 65532:65532 [^&]*{re.escape(directory)}(\s|$)", command),
              f"{p}rolerelay-init hands the volume of client {name} to rolerelay's user (chown 65532:65532 {directory})")
        users = [c for c in apps if volume in {m["sourceVolume"] for m in c.get("mountPoints", [])}]
        check(len(users) == 1, f"{p}one application mounts the volume of client {name}: " + (", ".join(c["name"] for c in users) or "none"))
        if len(users) != 1:
            continue
        app = users[0]
        own = mounts(app).get(client["app_directory"], {})
        check(own.get("sourceVolume") == volume and own.get("readOnly") is True,
              f"{p}{app['name']} mounts the volume of client {name} read-only at {client['app_directory']}")
        shared = sorted({m["sourceVolume"] for m in app["mountPoints"]} & sidecar_volumes)
        check(shared == [volume], f"{p}{app['name']} mounts no other volume of rolerelay's (no other client's, not the top level): {shared}")
        app_env = {e["name"]: e["value"] for e in app.get("environment", [])}
        check(app_env.get("AWS_CONFIG_FILE") == os.path.join(client["app_directory"], "config") and app_env.get("AWS_PROFILE") in client["roles"]
              and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in app_env,
              f"{p}{app['name']} uses the config-file profile of a role of client {name}, in its own directory")
        check(app_env.get("AWS_REGION") and app_env.get("AWS_REGION") == app_env.get("AWS_DEFAULT_REGION"),
              f"{p}{app['name']} sets AWS_REGION and AWS_DEFAULT_REGION")
        check({"containerName": "rolerelay", "condition": "HEALTHY"} in app.get("dependsOn", []), f"{p}{app['name']} dependsOn rolerelay HEALTHY")
    check(len(apps) == len(clients), f"{p}every application container is a client's ({len(apps)} containers, {len(clients)} clients)")
    check(all("logConfiguration" in c for c in task["containerDefinitions"]), p + "every container has a log configuration")


def ecs_and_iam(namespace, account, binary):
    from moto import mock_aws
    import boto3

    with open(os.path.join(ROOT, "deploy", "ecs", "task-definition.json")) as f:
        task = json.load(f)
    with open(os.path.join(ROOT, "deploy", "ecs", "task-definition-two-apps.json")) as f:
        two_apps = json.load(f)
    with mock_aws():
        # botocore validates every parameter against the ECS API model before moto sees it.
        ecs = boto3.client("ecs", region_name="us-east-1")
        for name, definition in [("task-definition.json", task), ("task-definition-two-apps.json", two_apps)]:
            try:
                registered = ecs.register_task_definition(**definition)["taskDefinition"]
                check(registered["networkMode"] == "awsvpc", f"ECS {name} registers (awsvpc)")
            except Exception as e:  # noqa: BLE001 - any refusal is the failure to report
                check(False, f"ECS {name} registers: {e}")
        ecs_clients(two_apps, binary)
        containers = {c["name"]: c for c in task["containerDefinitions"]}
        sidecar, app = containers["rolerelay"], containers["app"]
        check(sidecar["healthCheck"]["command"][1:] == ["/rolerelay", "healthcheck"],
              "ECS health check runs rolerelay healthcheck (/servingz: not failed by an STS outage alone)")
        check({"containerName": "rolerelay", "condition": "HEALTHY"} in app.get("dependsOn", []), "the app dependsOn rolerelay HEALTHY")
        env = {e["name"]: e["value"] for e in app["environment"]}
        check("AWS_CONFIG_FILE" in env and "AWS_PROFILE" in env and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env,
              "the ECS app uses the config-file profile (a task role's RELATIVE_URI shadows FULL_URI)")
        check(all("logConfiguration" in c for c in task["containerDefinitions"]), "every ECS container has a log configuration")

        iam = boto3.client("iam", region_name="us-east-1")
        for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "iam", "*.json"))):
            name = os.path.basename(path)[:-5]
            with open(path) as f:
                text = f.read()
            try:
                doc = json.loads(text)
                if "trust-policy" in name:
                    iam.create_role(RoleName=name[:64], AssumeRolePolicyDocument=text)
                else:
                    iam.create_policy(PolicyName=name, PolicyDocument=text)
                check(doc["Version"] == "2012-10-17", f"IAM {name} is a valid policy document")
            except Exception as e:  # noqa: BLE001
                check(False, f"IAM {name}: {e}")
    trust = json.load(open(os.path.join(ROOT, "deploy", "iam", "account-a-role-trust-policy.json")))
    check(any("sts:ExternalId" in s.get("Condition", {}).get("StringEquals", {}) for s in trust["Statement"]),
          "account A's trust policy requires an ExternalId")

    # The EKS trust policies name the namespace and service account the manifests create.
    irsa = json.load(open(os.path.join(ROOT, "deploy", "iam", "eks-irsa-trust-policy.json")))
    subjects = [v for s in irsa["Statement"] for k, v in s.get("Condition", {}).get("StringEquals", {}).items() if k.endswith(":sub")]
    check(subjects == [f"system:serviceaccount:{namespace}:{account}"], f"the IRSA trust policy trusts {namespace}/{account}")
    pod_identity = json.load(open(os.path.join(ROOT, "deploy", "iam", "eks-pod-identity-trust-policy.json")))
    statement = pod_identity["Statement"][0]
    tags = statement.get("Condition", {}).get("StringEquals", {})
    check(len(pod_identity["Statement"]) == 1 and statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
          and sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
          and tags.get("aws:RequestTag/kubernetes-namespace") == namespace
          and tags.get("aws:RequestTag/kubernetes-service-account") == account,
          f"the EKS Pod Identity trust policy: pods.eks.amazonaws.com, AssumeRole and TagSession, for {namespace}/{account}")


def dockerfile():
    hadolint = os.path.join(os.path.dirname(sys.executable), "hadolint")
    r = run([hadolint, os.path.join(ROOT, "Dockerfile")])
    check(r.returncode == 0, "hadolint Dockerfile" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    check('ENTRYPOINT ["/rolerelay"]' in text and 'CMD ["run"]' in text, "the image's entrypoint and command")
    check(re.search(r"^USER \d+:\d+$", text, re.M) is not None, "the image runs as a numeric non-root user")
    # The build context is what .dockerignore lets through ("*", then "!path" for each kept path):
    # every file the build stage copies from it must be kept, or the build breaks (or, for
    # .cargo/, silently loses the musl build's linker flags).
    ignore = open(os.path.join(ROOT, ".dockerignore")).read().split("\n")
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = [source.rstrip("/") for line in text.splitlines() if line.startswith("COPY ") and "--from=" not in line
              for source in line.split()[1:-1]]
    check("*" in ignore and copied and all(source in kept for source in copied),
          f"the Dockerfile copies only what .dockerignore keeps: {copied} within {sorted(kept)}")


def checkov():
    """The scanner platform teams run, over deploy/ and the Dockerfile: no failure, and every skip
    annotated where it applies, with a reason (a skip without one reads "No comment provided")."""
    exe = os.path.join(os.path.dirname(sys.executable), "checkov")
    if not os.path.exists(exe):
        check(False, f"checkov: {exe} is missing (scripts/test-deps installs it)")
        return
    # --skip-download: the run is offline (no guidelines or policies fetched from a platform).
    runs = {target: subprocess.Popen([exe, flag, target, "--skip-download", "--output", "json"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for flag, target in [("--directory", "deploy"), ("--file", "Dockerfile")]}
    for target, proc in runs.items():
        out, err = proc.communicate()
        try:
            reports = json.loads(out)
        except ValueError:
            check(False, f"checkov {target}: no JSON report (exit {proc.returncode}): {err.strip()[-2000:]}")
            continue
        for report in reports if isinstance(reports, list) else [reports]:
            if "check_type" not in report:  # the summary checkov prints when it found nothing to scan
                check(False, f"checkov {target}: found nothing to scan")
                continue
            summary, results = report["summary"], report["results"]
            failed = [f"\n    {c['check_id']} {c['check_name']}: {c['resource']} in {c['file_path']}:{c['file_line_range'][0]}-{c['file_line_range'][1]}"
                      for c in results["failed_checks"]]
            unexplained = [f"\n    {c['check_id']} on {c['resource']} in {c['file_path']}: skipped without a reason"
                           for c in results["skipped_checks"] if not reason_ok(c["check_result"].get("suppress_comment", ""))]
            check(not failed and not unexplained and not summary["parsing_errors"],
                  f"checkov {report['check_type']}: {summary['passed']} passed, {summary['failed']} failed, "
                  f"{summary['skipped']} skipped (each explained)" + "".join(failed + unexplained)
                  + (f", {summary['parsing_errors']} files it could not parse" if summary["parsing_errors"] else ""))
    # Checked at the source too: a reason with "=" in it breaks checkov's parsing of the annotation.
    for path in glob.glob(os.path.join(ROOT, "deploy", "**", "*.yaml"), recursive=True):
        for doc in yaml.safe_load_all(open(path)):
            for key, value in ((doc or {}).get("metadata", {}).get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check_id, _, reason = str(value).partition("=")
                    check(reason_ok(reason) and "=" not in reason,
                          f"checkov skip {check_id} in {os.path.relpath(path, ROOT)} has a reason (without '=', which checkov splits on)")


def unit_file(path):
    """A systemd unit file as {section: [(key, value), ...]}: keys repeat, and an empty value
    resets a list, so no dict of keys."""
    sections, section = {}, None
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            section.append((key.strip(), value.strip()))
    return sections


def systemd(binary):
    """deploy/systemd: the unit and the example application's unit through systemd-analyze verify
    (with ExecStart pointed at files that exist here), the unit's security rating, and that the
    unit, the example configuration and the application's unit agree with each other and with
    rolerelay. deploy/test/systemd-test runs them under a real systemd."""
    directory = os.path.join(ROOT, "deploy", "systemd")
    unit_path, app_path = os.path.join(directory, "rolerelay.service"), os.path.join(directory, "example-app.service")
    try:
        run(["systemd-analyze", "--version"])
    except FileNotFoundError:
        check(False, "systemd-analyze: not installed (Debian package systemd)")
        return
    with tempfile.TemporaryDirectory() as d:
        # verify wants every command to exist: here, the binary just built and /bin/true stand for
        # /usr/bin/rolerelay and the example's application (systemd-test verifies the installed files).
        for src, old, new in [(unit_path, "/usr/bin/rolerelay", binary), (app_path, "/usr/local/bin/example-app", "/bin/true")]:
            with open(src) as f, open(os.path.join(d, os.path.basename(src)), "w") as g:
                g.write(f.read().replace(old, new))
        r = run(["systemd-analyze", "verify", "rolerelay.service", "example-app.service"], cwd=d)
        findings = (r.stdout + r.stderr).strip()
        # verify exits 0 on an unknown key or section; any line it prints is a finding.
        check(r.returncode == 0 and not findings, "systemd-analyze verify deploy/systemd/rolerelay.service example-app.service: no findings"
              + ("" if r.returncode == 0 and not findings else ":\n" + findings))
    r = run(["systemd-analyze", "security", "--offline=yes", unit_path])
    overall = next((line for line in r.stdout.splitlines() if line.startswith("→ Overall exposure level")), "")
    m = re.search(r": (\d+\.\d+) (\w+)", overall)
    check(r.returncode == 0 and m is not None and m.group(2) in ("SAFE", "OK"),
          "systemd-analyze security --offline=yes deploy/systemd/rolerelay.service: "
          + (f"{m.group(1)} {m.group(2)} (OK or better)" if m else "no rating: " + r.stdout[-500:] + r.stderr))

    unit = unit_file(unit_path)
    service = dict(unit.get("Service", []))
    check(service.get("Type") == "notify" and service.get("WatchdogSec") and service.get("Restart") == "on-failure",
          "rolerelay.service is Type=notify with WatchdogSec= and Restart=on-failure")
    check(service.get("ExecStart") == "/usr/bin/rolerelay run --config /etc/rolerelay/config.yaml",
          "rolerelay.service runs /usr/bin/rolerelay run --config /etc/rolerelay/config.yaml (where scripts/package installs them)")
    want = {"User": "rolerelay", "Group": "rolerelay", "RuntimeDirectory": "rolerelay", "RuntimeDirectoryMode": "0750",
            "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "SystemCallArchitectures": "native", "ProcSubset": "pid", "ProtectProc": "invisible"}
    wrong = [f"{k}={v}" for k, v in want.items() if service.get(k) != v]
    check(not wrong and ("SystemCallFilter", "@system-service") in unit["Service"],
          "rolerelay.service: user and group rolerelay, /run/rolerelay 0750, hardened (ProtectSystem=strict, no capabilities, "
          "SystemCallFilter=@system-service...)" + (": not " + ", ".join(wrong) if wrong else ""))
    # IMDSv2 (169.254.169.254) and STS are reached over the network: no address filter may stop them.
    check(not {"IPAddressDeny", "IPAddressAllow", "PrivateNetwork"} & service.keys(),
          "rolerelay.service filters no IP address (IMDSv2 and STS stay reachable)")

    effective = rolerelay_check(binary, open(os.path.join(directory, "config.yaml")).read(), "deploy/systemd/config.yaml")
    outputs = effective.get("outputs", {})
    out_dir = outputs.get("directory")
    check(out_dir == "/run/" + service.get("RuntimeDirectory", "?"),
          f"the example config writes to {out_dir}, the unit's RuntimeDirectory")
    check(outputs.get("process_command", "").startswith(service.get("ExecStart", "?").split()[0] + " credential-process "),
          "the example config's profiles run the packaged binary's credential-process")
    check(outputs.get("file_mode") == "0640" and not outputs.get("owner"),
          "the example config's files are group-readable (0640) and keep rolerelay's group (no outputs.owner)")
    for key, value in [("server.listen", effective.get("server", {}).get("listen", "")),
                       ("credentials_endpoint.listen", effective.get("credentials_endpoint", {}).get("listen", ""))]:
        check(value.startswith("127.0.0.1:"), f"the example config's {key} is on loopback ({value})")

    app = unit_file(app_path)
    app_unit, app_service = dict(app.get("Unit", [])), dict(app.get("Service", []))
    check(app_unit.get("Requires") == "rolerelay.service" and app_unit.get("After") == "rolerelay.service",
          "example-app.service Requires= and is After= rolerelay.service")
    env = dict(kv.split("=", 1) for k, v in app["Service"] if k == "Environment" for kv in v.split())
    roles = [r["name"] for r in effective.get("roles", [])]
    check(env.get("AWS_CONFIG_FILE") == os.path.join(out_dir or "?", outputs.get("config_file", "?")) and env.get("AWS_PROFILE") in roles,
          f"example-app.service uses the profile of a role ({env.get('AWS_PROFILE')}) in {env.get('AWS_CONFIG_FILE')}")
    check(app_service.get("SupplementaryGroups") == service.get("Group")
          and (app_service.get("DynamicUser") == "yes" or app_service.get("User") not in (None, "root", service.get("User"))),
          "example-app.service runs as its own user, in rolerelay's group")


def workflows():
    """The GitHub workflows, which cannot run here: GitHub's workflow schema (check-jsonschema
    carries it, nothing is downloaded), and what the release workflow must agree with."""
    files = sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.y*ml")))
    names = ", ".join(os.path.relpath(f, ROOT) for f in files)
    exe = os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    if not os.path.exists(exe):
        check(False, f"check-jsonschema: {exe} is missing (scripts/test-deps installs it)")
    elif files:
        r = run([exe, "--builtin-schema", "vendor.github-workflows", "--output-format", "json", *files])
        try:
            report = json.loads(r.stdout)
            # The deepest error of each says what is wrong; the top one dumps the whole job.
            errors = [f"\n    {os.path.relpath(e['filename'], ROOT)} {e.get('best_deep_match', e)['path']}: "
                      + e.get("best_deep_match", e)["message"][:300] for e in report.get("errors", [])]
            errors += [f"\n    {os.path.relpath(e['filename'], ROOT)}: {e['message'][:300]}" for e in report.get("parse_errors", [])]
        except (ValueError, KeyError, TypeError):
            errors = ["\n    " + (r.stdout + r.stderr).strip()[-2000:]]
        check(r.returncode == 0 and not errors,
              f"check-jsonschema --builtin-schema vendor.github-workflows: {names}" + "".join(errors))
    release_path = os.path.join(ROOT, ".github", "workflows", "release.yml")
    check(release_path in files, ".github/workflows/release.yml exists")
    if release_path not in files:
        return
    text = open(release_path).read()
    release = yaml.safe_load(text)
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    trigger = release.get("on", release.get(True, {}))
    check(trigger.get("push", {}).get("tags") == ["v*"], "the release workflow runs on a v* tag")
    steps = [s for job in release["jobs"].values() for s in job.get("steps", [])]
    unpinned = sorted({s["uses"] for s in steps if "uses" in s and not re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", s["uses"])})
    check(not unpinned, "the release workflow pins each action to a major version" + (": not " + ", ".join(unpinned) if unpinned else ""))
    build = next((s["with"] for s in steps if s.get("uses", "").startswith("docker/build-push-action@")), {})
    check(build.get("platforms") == "linux/amd64,linux/arm64" and build.get("file") == "Dockerfile" and build.get("push") is True,
          "the release workflow pushes the Dockerfile's image for linux/amd64 and linux/arm64")
    arches = sorted(i["arch"] for i in release["jobs"]["packages"]["strategy"]["matrix"]["include"])
    check(arches == ["amd64", "arm64"], f"the release workflow packs both architectures: {arches}")
    named = sorted(set(re.findall(r"\b(scripts/[\w.-]+|Dockerfile|Cargo\.toml|CHANGELOG\.md)\b", text)))
    missing = [n for n in named if not os.path.exists(os.path.join(ROOT, n))]
    check(not missing, f"the files the release workflow uses exist ({', '.join(named)})" + (": not " + ", ".join(missing) if missing else ""))


def reason_ok(reason):
    """A reason a reader can weigh: a sentence, not a placeholder."""
    reason = reason.strip().lstrip(":").strip()
    return len(reason) >= 20 and reason != "No comment provided"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    namespace = load(os.path.join(K8S, "namespace.yaml"))["metadata"]["name"]
    account = load(os.path.join(K8S, "serviceaccount.yaml"))["metadata"]["name"]
    kubernetes(os.path.abspath(sys.argv[1]))
    ecs_and_iam(namespace, account, os.path.abspath(sys.argv[1]))
    dockerfile()
    systemd(os.path.abspath(sys.argv[1]))
    workflows()
    checkov()
    print(f"deploy checks: {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
