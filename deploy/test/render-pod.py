#!/usr/bin/env python3
"""Renders the shipped Deployment's pod (and its ConfigMap) for `podman kube play` on this machine.

Usage: render-pod.py STS_URL STATUS_PORT ENDPOINT_PORT > pod.yaml

What changes, and why:
- images: the locally built ones (no registry is reachable), and no `imagePullPolicy: Always`
  (there is no registry to ask);
- the native sidecar becomes the first regular container: podman 4.3 does not know init containers
  with `restartPolicy: Always` (they would block the pod); its probes use numeric ports and its
  port list goes (podman maps no ports on the host's network);
- `hostNetwork: true` so the pod reaches the local STS emulator; the listen ports are free ones;
- the configuration points at that STS, and the sidecar gets static source credentials for it
  (in EKS they come from IRSA or Pod Identity);
- the application runs a busybox script that fetches its credentials from the endpoint.
Everything else (security contexts, volumes, mounts, env) is the shipped pod as it is.
"""

import sys

import yaml

ROOT = __file__.rsplit("/deploy/", 1)[0]


def main():
    sts_url, status_port, endpoint_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    deployment = yaml.safe_load(open(f"{ROOT}/deploy/kubernetes/deployment.yaml"))
    configmap = yaml.safe_load(open(f"{ROOT}/deploy/kubernetes/configmap.yaml"))

    config = yaml.safe_load(configmap["data"]["config.yaml"])
    config.setdefault("sts", {})["endpoint_url"] = sts_url
    config["server"]["listen"] = f"127.0.0.1:{status_port}"
    config["credentials_endpoint"]["listen"] = f"127.0.0.1:{endpoint_port}"
    configmap["data"]["config.yaml"] = yaml.safe_dump(config)

    template = deployment["spec"]["template"]
    spec = template["spec"]
    spec["hostNetwork"] = True
    spec.pop("serviceAccountName", None)
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "rolerelay")
    spec["initContainers"].remove(sidecar)
    if not spec["initContainers"]:
        del spec["initContainers"]
    sidecar.pop("restartPolicy")
    sidecar["image"] = "localhost/rolerelay:test"
    sidecar.pop("imagePullPolicy", None)
    # With the host's network there is nothing to map (podman refuses port mappings then).
    sidecar.pop("ports", None)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        sidecar[probe]["httpGet"]["port"] = status_port
    sidecar["env"] += [
        {"name": "AWS_ACCESS_KEY_ID", "value": "AKIAPODTESTSOURCE"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "pod-test-source-secret"},
        {"name": "ROLERELAY_LOG_FORMAT", "value": "text"},
    ]

    app = next(c for c in spec["containers"] if c["name"] == "app")
    app["image"] = "localhost/rolerelay-app:test"
    app.pop("imagePullPolicy", None)
    for e in app["env"]:
        if e["name"] == "AWS_CONTAINER_CREDENTIALS_FULL_URI":
            e["value"] = e["value"].replace(":9911/", f":{endpoint_port}/")
    app["command"] = ["/bin/sh", "-c"]
    app["args"] = [
        'until wget -q -O /tmp/creds.json --header "Authorization: $(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" '
        '"$AWS_CONTAINER_CREDENTIALS_FULL_URI"; do sleep 1; done; '
        'echo "app got credentials:"; cat /tmp/creds.json; echo; '
        'echo "app sees files:"; ls /var/run/rolerelay; sleep 3600'
    ]
    spec["containers"].insert(0, sidecar)

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rolerelay-pod-test", "labels": template["metadata"]["labels"],
                     "annotations": template["metadata"].get("annotations", {})},
        "spec": spec,
    }
    yaml.safe_dump_all([configmap, pod], sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
