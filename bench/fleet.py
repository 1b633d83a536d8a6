#!/usr/bin/env python3
"""Fleet-scale benchmarks against the STS stand-in (bench/sts.rs), where moto would be the limit:
a restart storm (N rolerelay processes, one role each, started at once against an STS quota) and
one sidecar with many roles. bench/run.py calls these; run alone for experiments:

  bench/fleet.py storm --n 300 --rate 50 --burst 50 [--binary PATH] [--sts PATH] [--plot FILE]
                       [--compare OTHER_BINARY --label THIS --other-label OTHER]
  bench/fleet.py roles --n 10000 --latency 5ms [--binary PATH] [--sts PATH]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_ports(n):
    """n distinct free loopback ports (held open together while chosen, so none repeats)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_port(port, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listens on {port}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


class StandIn:
    """The STS stand-in on a free port, stopped by close()."""

    def __init__(self, binary, latency="0s", rate=None, burst=None):
        self.port = free_ports(1)[0]
        cmd = [binary, f"127.0.0.1:{self.port}", "--latency", latency]
        if rate:
            cmd += ["--rate", str(rate), "--burst", str(burst or rate)]
        self.proc = subprocess.Popen(cmd)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_port(self.port)

    def stats(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def check_stand_in(sts_binary):
    """botocore, the parser of the AWS CLI and boto3, reads the stand-in's answers as STS's: an
    AssumeRole with its credentials and assumed-role ARN, and above the quota a Throttling error
    that botocore's retry logic counts as a throttle. Exits naming what differs."""
    import boto3
    import botocore.config
    from botocore.exceptions import ClientError
    sts = StandIn(sts_binary, rate=1, burst=1)
    try:
        client = boto3.client("sts", endpoint_url=sts.url, region_name="us-east-1",
                              aws_access_key_id="AKIABENCHSOURCE", aws_secret_access_key="bench-source-secret",
                              config=botocore.config.Config(retries={"total_max_attempts": 1}))
        got = client.assume_role(RoleArn="arn:aws:iam::111111111111:role/path/R", RoleSessionName="check",
                                 DurationSeconds=900)
        credentials, user = got["Credentials"], got["AssumedRoleUser"]
        lifetime = credentials["Expiration"].timestamp() - time.time()
        if not (credentials["AccessKeyId"].startswith("ASIA") and credentials["SecretAccessKey"]
                and credentials["SessionToken"] and 890 < lifetime <= 900
                and user["Arn"] == "arn:aws:sts::111111111111:assumed-role/R/check"):
            sys.exit(f"the stand-in's AssumeRole answer differs from STS's: {got}")
        try:
            client.assume_role(RoleArn="arn:aws:iam::111111111111:role/R", RoleSessionName="check")
            sys.exit("the stand-in did not throttle above its quota")
        except ClientError as e:
            error = e.response["Error"]
            if (error["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) != ("Throttling", 400):
                sys.exit(f"the stand-in's throttle differs from STS's: {e.response}")
        stats = sts.stats()
        if (stats["calls"], stats["successes"], stats["throttled"]) != (2, 1, 1):
            sys.exit(f"the stand-in counted {stats}")
    finally:
        sts.close()


def environment(home):
    return {
        "PATH": os.environ["PATH"], "HOME": home, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_ACCESS_KEY_ID": "AKIABENCHSOURCE", "AWS_SECRET_ACCESS_KEY": "bench-source-secret",
        "AWS_REGION": "us-east-1", "ROLERELAY_LOG_LEVEL": "error",
    }


def storm(binary, sts_binary, n, rate, burst, limit=600):
    """Starts n `rolerelay run` at once, one role each with the shipped defaults, against a quota
    of `rate` requests/s (burst `burst`). Returns when every one is ready (its <role>.json written)
    or after `limit` seconds: the ready times, the stand-in's counts, and the ideal n / rate."""
    work = tempfile.mkdtemp(prefix="rolerelay-storm-")
    sts = StandIn(sts_binary, rate=rate, burst=burst)
    env = environment(work)
    ports = free_ports(2 * n)
    configs = []
    for i in range(n):
        config = os.path.join(work, f"p{i}.yaml")
        with open(config, "w") as f:
            f.write(f"sts:\n  endpoint_url: {sts.url}\noutputs:\n  directory: {work}/p{i}\n"
                    f"server:\n  listen: 127.0.0.1:{ports[2 * i]}\n"
                    f"credentials_endpoint:\n  listen: 127.0.0.1:{ports[2 * i + 1]}\n"
                    f"roles:\n  - name: r\n    role_arn: arn:aws:iam::111111111111:role/R{i}\n")
        configs.append(config)
    files = [os.path.join(work, f"p{i}", "r.json") for i in range(n)]
    procs = []
    ready = [None] * n
    start = time.perf_counter()

    def watch():
        # From the first start on, beside the starting: 300 starts take a second or two here.
        while time.perf_counter() - start < limit and None in ready:
            now = time.perf_counter() - start
            for i, path in enumerate(files):
                if ready[i] is None and os.path.exists(path):
                    ready[i] = now
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    try:
        watcher.start()
        for config in configs:
            procs.append(subprocess.Popen([binary, "run", "--config", config], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        started = time.perf_counter() - start
        watcher.join()
        exited = [i for i, p in enumerate(procs) if p.poll() is not None]
        stats = sts.stats()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        sts.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"n": n, "rate": rate, "burst": burst, "ideal": n / rate, "ready": ready,
            "started": started, "exited": exited, "stats": stats}


# An AssumeRole as the SDK sends it, for wrk (the stand-in reads the action and the role).
WRK_ASSUME_ROLE = """wrk.method = "POST"
wrk.body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2FR1&RoleSessionName=s&DurationSeconds=3600"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIA/20261207/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0"
"""


def stand_in_capacity(sts_binary, latency, concurrency=16, seconds=5):
    """AssumeRole answers per second the stand-in gives `concurrency` keep-alive connections of
    wrk (a client that costs next to nothing): what its `latency` allows in practice."""
    sts = StandIn(sts_binary, latency=latency)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_ASSUME_ROLE)
        script.flush()
        try:
            out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", script.name, sts.url],
                                 capture_output=True, text=True, check=True).stdout
        finally:
            sts.close()
    if "Non-2xx" in out:
        sys.exit(f"the stand-in refused wrk's AssumeRole:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def roles(binary, sts_binary, n, latency, concurrency=16, limit=900, base=None):
    """One sidecar with n roles against the stand-in answering after `latency`, its files under
    `base` (a tmpfs, or the default temporary directory): seconds until all are ready, the bound
    n x latency / concurrency, and the RSS with n roles and with 1."""
    work = tempfile.mkdtemp(prefix="rolerelay-roles-", dir=base)
    sts = StandIn(sts_binary, latency=latency)
    env = environment(work)
    seconds = float(latency.rstrip("ms")) / 1000 if latency.endswith("ms") else float(latency.rstrip("s"))
    result = {"n": n, "bound": n * seconds / concurrency}
    try:
        for count in (1, n):
            status, endpoint = free_ports(2)
            config = os.path.join(work, f"r{count}.yaml")
            with open(config, "w") as f:
                f.write(f"sts:\n  endpoint_url: {sts.url}\noutputs:\n  directory: {work}/r{count}\n"
                        f"server:\n  listen: 127.0.0.1:{status}\n"
                        f"credentials_endpoint:\n  listen: 127.0.0.1:{endpoint}\nroles:\n")
                f.writelines(f"  - name: r{i}\n    role_arn: arn:aws:iam::111111111111:role/R{i}\n"
                             for i in range(count))
            start = time.perf_counter()
            proc = subprocess.Popen([binary, "run", "--config", config], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            took = None
            while time.perf_counter() - start < limit:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{status}/readyz", timeout=5) as r:
                        if r.status == 200:
                            took = time.perf_counter() - start
                            break
                except OSError:
                    pass
                # Every 100 ms: a /readyz with thousands of roles not ready names each, and
                # asking 50 times a second cost the sidecar more CPU than its own start.
                time.sleep(0.1)
            time.sleep(1)
            result[f"rss_kib_{'one' if count == 1 else 'all'}"] = rss_kib(proc.pid)
            proc.terminate()
            proc.wait()
            if count == n:
                result["took"] = took
    finally:
        sts.close()
        shutil.rmtree(work, ignore_errors=True)
    result["per_role_kib"] = (result["rss_kib_all"] - result["rss_kib_one"]) / max(n - 1, 1)
    return result


def summary(result):
    """The storm's figures: last ready, calls per process, throttled calls."""
    ready = [t for t in result["ready"] if t is not None]
    stats = result["stats"]
    return {
        "all_ready": len(ready) == result["n"],
        "last_ready": max(ready) if ready else None,
        "ideal": result["ideal"],
        "calls": stats["calls"],
        "throttled": stats["throttled"],
        "calls_per_process": stats["calls"] / result["n"],
        "stopped": len(result["exited"]),
        "all_started_after": result["started"],
    }


def plot(results, path):
    """Ready processes over time and throttled calls per second, one line per storm."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    for label, result in results:
        ready = sorted(t for t in result["ready"] if t is not None)
        top.step([0] + ready, range(len(ready) + 1), where="post", label=label)
        per_second = result["stats"]["per_second"]
        bottom.plot(range(len(per_second)), [s[2] for s in per_second], drawstyle="steps-post", label=label)
    top.axvline(results[0][1]["ideal"], color="grey", linestyle=":", label="ideal N / R")
    top.set_ylabel("processes ready")
    top.legend()
    bottom.set_ylabel("throttled calls / s")
    bottom.set_xlabel("seconds since the first start (throttles: since the first call)")
    fig.suptitle(f"{results[0][1]['n']} rolerelay processes started at once, STS quota {results[0][1]['rate']}/s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["storm", "roles"])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--burst", type=float, default=50)
    parser.add_argument("--latency", default="5ms")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rolerelay"))
    parser.add_argument("--sts", default=os.path.join(ROOT, "target", "release", "examples", "sts"))
    parser.add_argument("--plot")
    parser.add_argument("--compare", help="another rolerelay binary to storm with, drawn beside")
    parser.add_argument("--label", default="rolerelay")
    parser.add_argument("--other-label", default="compared")
    args = parser.parse_args()
    if args.what == "storm":
        results = [(args.label, storm(args.binary, args.sts, args.n, args.rate, args.burst))]
        if args.compare:
            results.append((args.other_label, storm(args.compare, args.sts, args.n, args.rate, args.burst)))
        for label, result in results:
            print(label, json.dumps(summary(result)))
        if args.plot:
            plot(results, args.plot)
    else:
        print(json.dumps(roles(args.binary, args.sts, args.n, args.latency)))


if __name__ == "__main__":
    main()
