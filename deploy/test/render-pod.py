#!/usr/bin/env python3
"""Renders the shipped Deployment's pod (and its ConfigMap) for `podman kube play` on this machine.

Usage: render-pod.py STS_URL STATUS_PORT ENDPOINT_PORT [OVERLAY | VARIANT.yaml] > pod.yaml

Without OVERLAY the pod is deploy/kubernetes/deployment.yaml's; with it, the one that
`kubectl kustomize OVERLAY` builds (e.g. deploy/kubernetes-overlays/pre-1.29); with a file, the
Deployment and ConfigMap of that file (e.g. deploy/kubernetes/variants/two-apps.yaml).

What changes, and why:
- images: the locally built ones (no registry is reachable), and no `imagePullPolicy: Always`
  (there is no registry to ask);
- a native sidecar becomes the first regular container: podman 4.3 does not know init containers
  with `restartPolicy: Always` (they would block the pod); rolerelay's probes use numeric ports
  and its port list goes (podman maps no ports on the host's network);
- init containers are of podman's type `always`: podman 4.3 removes a `once` one (its default)
  right after it exits, and may find it still running then and fail the play; this also keeps
  it, with its exit code and log, for the test to read. The pod's restartPolicy is then
  OnFailure (a kept init container would otherwise be restarted as soon as it exits 0);
- `hostNetwork: true` so the pod reaches the local STS emulator; the listen ports are free ones;
- the configuration points at that STS, and every rolerelay container gets static source
  credentials for it (in EKS they come from IRSA or Pod Identity);
- every application container (every container but rolerelay's) runs a busybox script that
  prints the credentials it gets the way the manifest tells it to (the endpoint, or the
  credential_process profile) once, without retrying a profile (its files must exist when the
  application starts), then the files of the directory its token or config file is in.
Everything else (security contexts, volumes, mounts, env) is the shipped pod as it is.
"""

import os
import subprocess
import sys

import yaml

ROOT = __file__.rsplit("/deploy/", 1)[0]
IMAGE = "registry.example.com/rolerelay"

FROM_ENDPOINT = (
    'until wget -q -O /tmp/creds.json --header "Authorization: $(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" '
    '"$AWS_CONTAINER_CREDENTIALS_FULL_URI"; do sleep 1; done; '
    'echo "app got credentials:"; cat /tmp/creds.json; echo; '
)
# The profile's credential_process line, run as an SDK would run it.
FROM_PROFILE = (
    'process=$(sed -n "s/^credential_process = //p" "$AWS_CONFIG_FILE" | head -n 1); '
    'echo "app got credentials:"; sh -c "$process"; echo; '
)


def load(source):
    """The Deployment and the ConfigMap: the shipped files, a variant's file, or what the overlay
    builds."""
    if source is None:
        return (yaml.safe_load(open(f"{ROOT}/deploy/kubernetes/deployment.yaml")),
                yaml.safe_load(open(f"{ROOT}/deploy/kubernetes/configmap.yaml")))
    if os.path.isfile(source):
        built = list(yaml.safe_load_all(open(source)))
    else:
        built = list(yaml.safe_load_all(subprocess.run(["kubectl", "kustomize", source], check=True,
                                                       capture_output=True, text=True).stdout))
    return (next(d for d in built if d["kind"] == "Deployment"), next(d for d in built if d["kind"] == "ConfigMap"))


def local_app(container, endpoint_port):
    """An application container: the busybox image and the script that reports what it gets."""
    container["image"] = "localhost/rolerelay-app:test"
    container.pop("imagePullPolicy", None)
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    for e in container.get("env", []):
        if e["name"] == "AWS_CONTAINER_CREDENTIALS_FULL_URI":
            e["value"] = e["value"].replace(":9911/", f":{endpoint_port}/")
    # The directory the application reads: its own client's, or the shared volume.
    used = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") or env.get("AWS_CONFIG_FILE")
    directory = os.path.dirname(used) if used else "/var/run/rolerelay"
    container["command"] = ["/bin/sh", "-c"]
    container["args"] = [
        (FROM_PROFILE if "AWS_CONFIG_FILE" in env else FROM_ENDPOINT)
        + f'echo "app sees files:"; ls {directory}; sleep 3600'
    ]


def local_rolerelay(container, status_port):
    container["image"] = "localhost/rolerelay:test"
    container.pop("imagePullPolicy", None)
    # With the host's network there is nothing to map (podman refuses port mappings then).
    container.pop("ports", None)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            container[probe]["httpGet"]["port"] = status_port
    container["env"] = container.get("env", []) + [
        {"name": "AWS_ACCESS_KEY_ID", "value": "AKIAPODTESTSOURCE"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "pod-test-source-secret"},
        {"name": "ROLERELAY_LOG_FORMAT", "value": "text"},
    ]


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    sts_url, status_port, endpoint_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    deployment, configmap = load(sys.argv[4] if len(sys.argv) == 5 else None)

    config = yaml.safe_load(configmap["data"]["config.yaml"])
    config.setdefault("sts", {})["endpoint_url"] = sts_url
    config["server"]["listen"] = f"127.0.0.1:{status_port}"
    config["credentials_endpoint"]["listen"] = f"127.0.0.1:{endpoint_port}"
    configmap["data"]["config.yaml"] = yaml.safe_dump(config)

    template = deployment["spec"]["template"]
    spec = template["spec"]
    spec["hostNetwork"] = True
    spec.pop("serviceAccountName", None)
    for sidecar in [c for c in spec.get("initContainers", []) if c.pop("restartPolicy", None) == "Always"]:
        spec["initContainers"].remove(sidecar)
        spec["containers"].insert(0, sidecar)
    if not spec.get("initContainers"):
        spec.pop("initContainers", None)
    for container in spec.get("initContainers", []) + spec["containers"]:
        if container["image"].startswith(IMAGE + ":"):
            local_rolerelay(container, status_port)

    for app in spec["containers"]:
        if app["image"] != "localhost/rolerelay:test":
            local_app(app, endpoint_port)

    annotations = dict(template["metadata"].get("annotations", {}))
    if spec.get("initContainers"):
        annotations["io.podman.annotations.init.container.type"] = "always"
        spec["restartPolicy"] = "OnFailure"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rolerelay-pod-test", "labels": template["metadata"]["labels"], "annotations": annotations},
        "spec": spec,
    }
    yaml.safe_dump_all([configmap, pod], sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
