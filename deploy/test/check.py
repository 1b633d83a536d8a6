#!/usr/bin/env python3
"""Checks the shipped deployment files: schemas, the tools' own validators, and that the pieces
agree with each other and with rolerelay itself.

Usage: check.py ROLERELAY_BINARY   (run with the test virtualenv's python: PyYAML, moto, boto3)
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


def kubernetes(binary):
    files = sorted(glob.glob(os.path.join(K8S, "*.yaml")) + glob.glob(os.path.join(K8S, "variants", "*.yaml")))
    core = [f for f in files if load(f)["apiVersion"] in ("v1", "apps/v1", "batch/v1")]
    r = run([os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"), "--strict", "--quiet", *core])
    check(r.returncode == 0, "kubernetes-validate --strict: " + ", ".join(os.path.relpath(f, ROOT) for f in core)
          + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))

    kustomization = load(os.path.join(K8S, "kustomization.yaml"))
    for resource in kustomization["resources"]:
        check(os.path.exists(os.path.join(K8S, resource)), f"kustomization resource {resource} exists")
    listed = {os.path.basename(f) for f in files if not f.endswith("kustomization.yaml") and "/variants/" not in f}
    check(listed == set(kustomization["resources"]), "every manifest is listed in the kustomization")

    deployment = load(os.path.join(K8S, "deployment.yaml"))
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "rolerelay")
    check(sidecar.get("restartPolicy") == "Always", "rolerelay is a native sidecar (init container, restartPolicy: Always)")
    check(sidecar["image"] in [i["name"] for i in kustomization["images"]], "the kustomization sets the sidecar's image")
    for probe, path in [("startupProbe", "/readyz"), ("readinessProbe", "/servingz"), ("livenessProbe", "/healthz")]:
        check(sidecar.get(probe, {}).get("httpGet", {}).get("path") == path, f"sidecar {probe} on {path}")
    check(spec["securityContext"].get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(spec["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile RuntimeDefault")
    for c in spec["initContainers"] + spec["containers"]:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"], f"container {c['name']} hardened")
        check("requests" in c.get("resources", {}) and "limits" in c.get("resources", {}), f"container {c['name']} has requests and limits")
    volumes = {v["name"]: v for v in spec["volumes"]}
    shared = next(m["name"] for m in sidecar["volumeMounts"] if m["mountPath"] == "/var/run/rolerelay")
    check(volumes[shared].get("emptyDir", {}).get("medium") == "Memory", "the shared volume is an in-memory emptyDir")
    check(pod["metadata"]["annotations"].get("prometheus.io/scrape") == "true", "prometheus scrape annotations")

    # The ConfigMap's configuration is valid for rolerelay itself, and the app points at it.
    configmap = load(os.path.join(K8S, "configmap.yaml"))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(configmap["data"]["config.yaml"])
    r = run([binary, "check", "--config", f.name])
    os.unlink(f.name)
    check(r.returncode == 0, "rolerelay check accepts the ConfigMap's config.yaml" + ("" if r.returncode == 0 else ": " + r.stderr))
    effective = json.loads(r.stdout) if r.returncode == 0 else {}
    app = next(c for c in spec["containers"] if c["name"] == "app")
    env = {e["name"]: e.get("value") for e in app.get("env", [])}
    uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    listen = effective.get("credentials_endpoint", {}).get("listen", "?")
    roles = [r["name"] for r in effective.get("roles", [])]
    m = re.fullmatch(r"http://([^/]+)/v1/credentials/([A-Za-z0-9_-]+)", uri)
    check(bool(m) and m.group(1) == listen and m.group(2) in roles, f"the app's endpoint URI {uri} matches {listen} and a role")
    token = os.path.join(effective.get("outputs", {}).get("directory", "?"), effective.get("credentials_endpoint", {}).get("token_file", "?"))
    check(env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") == token, f"the app's token file is {token}")
    metrics_port = int(effective.get("server", {}).get("listen", ":0").rsplit(":", 1)[1])
    check(sidecar["ports"][0]["containerPort"] == metrics_port, "the metrics port matches server.listen")

    monitor = load(os.path.join(K8S, "podmonitor.yaml"))
    selector = monitor["spec"]["selector"]["matchLabels"]
    check(selector.items() <= pod["metadata"]["labels"].items(), "the PodMonitor selects the pod")
    ports = {p["name"] for c in spec["initContainers"] + spec["containers"] for p in c.get("ports", [])}
    check(all(e["port"] in ports for e in monitor["spec"]["podMetricsEndpoints"]), "the PodMonitor's port exists")

    rule = load(os.path.join(K8S, "prometheusrule.yaml"))
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


def ecs_and_iam():
    from moto import mock_aws
    import boto3

    with open(os.path.join(ROOT, "deploy", "ecs", "task-definition.json")) as f:
        task = json.load(f)
    with mock_aws():
        # botocore validates every parameter against the ECS API model before moto sees it.
        ecs = boto3.client("ecs", region_name="us-east-1")
        try:
            registered = ecs.register_task_definition(**task)["taskDefinition"]
            check(registered["networkMode"] == "awsvpc", "ECS task definition registers (awsvpc)")
        except Exception as e:  # noqa: BLE001 - any refusal is the failure to report
            check(False, f"ECS task definition registers: {e}")
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


def dockerfile():
    hadolint = os.path.join(os.path.dirname(sys.executable), "hadolint")
    r = run([hadolint, os.path.join(ROOT, "Dockerfile")])
    check(r.returncode == 0, "hadolint Dockerfile" + ("" if r.returncode == 0 else ": " + r.stdout + r.stderr))
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    check('ENTRYPOINT ["/rolerelay"]' in text and 'CMD ["run"]' in text, "the image's entrypoint and command")
    check(re.search(r"^USER \d+:\d+$", text, re.M) is not None, "the image runs as a numeric non-root user")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    kubernetes(os.path.abspath(sys.argv[1]))
    ecs_and_iam()
    dockerfile()
    print(f"deploy checks: {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
