#!/usr/bin/env python3
"""rolerelay benchmarks: measured side by side, in one run, against the manual recipe and the
physical floor, on this machine, against a local moto STS. Prints a table and writes
bench/RESULTS.md. Not a pass/fail test: the goals are reported, met or not.

Usage: bench/run.py [--smoke] [--binary PATH] [--ceiling PATH] [--sts PATH] [--shipped PATH] [--storm-1000]
  --smoke       a few seconds of each, to check the benchmark itself runs (CI)
  --shipped     the shipped build (static musl): its size and idle RSS too
  --storm-1000  the restart storm with 1,000 processes too (about 8 GiB of RSS)
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import fleet
from fleet import rss_kib, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    return fleet.free_ports(1)[0]


def get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


# moto picks the service a request is for from its Authorization header's credential scope; an
# unsigned POST goes to S3 (and fails there since moto 5.2). The header names STS; moto checks no
# signature.
STS_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIABENCHSOURCE/20260101/us-east-1/sts/aws4_request, "
            "SignedHeaders=host, Signature=0")


def timed(cmd, env, runs):
    """Median wall time of `runs` runs of cmd, in seconds (each must succeed)."""
    return timed_each([(cmd, env)], runs)[0]


def timed_each(commands, runs):
    """Median wall times of `runs` rounds of each (cmd, env) in `commands`, in seconds, run in turn
    within each round so that a machine getting busier or warmer weighs on all of them alike."""
    times = [[] for _ in commands]
    for _ in range(runs):
        for (cmd, env), seen in zip(commands, times):
            start = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, shell=isinstance(cmd, str))
            seen.append(time.perf_counter() - start)
            if r.returncode != 0:
                sys.exit(f"failed: {cmd}\n{r.stderr.decode()}")
    return [statistics.median(seen) for seen in times]


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="rolerelay-bench-")
        self.sts_port = free_port()
        self.sts = f"http://127.0.0.1:{self.sts_port}"
        self.moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.sts_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.sts_port)
        self.env = {
            "PATH": os.environ["PATH"], "HOME": self.work, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_ACCESS_KEY_ID": "AKIABENCHSOURCE", "AWS_SECRET_ACCESS_KEY": "bench-source-secret",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "ROLERELAY_LOG_LEVEL": "warn",
        }
        self.rows = []

    def close(self):
        self.moto.terminate()
        shutil.rmtree(self.work, ignore_errors=True)

    def row(self, what, value, baseline, ratio, goal, met):
        self.rows.append((what, value, baseline, ratio, goal, "yes" if met else "**no**"))
        print(f"{what:<44} {value:>18} {baseline:>22} {ratio:>9} {goal:>22} {'met' if met else 'MISSED'}", flush=True)

    def sidecar(self, roles, extra="", name="run", ports=None, binary=None):
        """Starts `run` with `roles` roles; returns (process, status URL, endpoint URL, token path)."""
        ports = ports or (free_port(), free_port())
        self.write_config(name, range(roles), extra, ports)
        proc = subprocess.Popen([binary or self.args.binary, "run", "--config", os.path.join(self.work, f"{name}.yaml")],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status, endpoint = ports
        token = os.path.join(self.work, name, "token")
        return proc, f"http://127.0.0.1:{status}", f"http://127.0.0.1:{endpoint}", token

    def write_config(self, name, numbers, extra, ports):
        """Writes `<name>.yaml` with roles r<n> for each n, by renaming a whole file over it, as an
        editor or a ConfigMap update does, so a running sidecar never reads half a file."""
        status, endpoint = ports
        lines = [f"sts:\n  endpoint_url: {self.sts}\n{extra}",
                 f"outputs:\n  directory: {os.path.join(self.work, name)}\nserver:\n  listen: 127.0.0.1:{status}\n",
                 f"credentials_endpoint:\n  listen: 127.0.0.1:{endpoint}\nroles:\n"]
        lines += [f"  - name: r{i}\n    role_arn: arn:aws:iam::111111111111:role/R{i}\n" for i in numbers]
        config = os.path.join(self.work, f"{name}.yaml")
        with open(config + ".new", "w") as f:
            f.write("".join(lines))
        os.replace(config + ".new", config)

    def wait_ready(self, url, limit=600):
        end = time.time() + limit
        while time.time() < end:
            if get(url + "/readyz")[0] == 200:
                return True
            time.sleep(0.01)
        return False

    # 1. Time to first credentials.
    def first_credentials(self):
        runs = 5 if self.args.smoke else 30
        body = ("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2FR"
                "&RoleSessionName=bench&DurationSeconds=3600")
        floor_cmd = ["curl", "-s", "-o", "/dev/null", "-f", "-X", "POST", "-H", f"Authorization: {STS_AUTH}",
                     "--data", body, self.sts]
        out = os.path.join(self.work, "once")
        cmd = [self.args.binary, "once", "--role-arn", "arn:aws:iam::111111111111:role/R", "--role-name", "r",
               "--sts-endpoint-url", self.sts, "--output-dir", out]
        # No SSL_CERT_* in the environment: rolerelay reads the distribution's CA bundle alone. With
        # SSL_CERT_DIR set, the SDK's loader also reads every file of /etc/ssl/certs (~150 on a
        # Debian host), as it did by default before.
        with_dir = dict(self.env, SSL_CERT_DIR="/etc/ssl/certs")
        self.floor, once, once_dir = timed_each([(floor_cmd, self.env), (cmd, self.env), (cmd, with_dir)], runs)
        recipe = timed(
            f"aws sts assume-role --endpoint-url {self.sts} --role-arn arn:aws:iam::111111111111:role/R "
            f"--role-session-name bench > {self.work}/assumed.json && "
            f"jq -r '.Credentials | \"AWS_ACCESS_KEY_ID=\\(.AccessKeyId)\\nAWS_SECRET_ACCESS_KEY=\\(.SecretAccessKey)"
            f"\\nAWS_SESSION_TOKEN=\\(.SessionToken)\"' {self.work}/assumed.json > {self.work}/recipe.env",
            self.env, max(3, runs // 3))
        ms = lambda s: f"{s * 1000:.1f} ms"
        self.row("time to first credentials vs floor", ms(once), f"curl {ms(self.floor)}", f"{once / self.floor:.3f}x",
                 "<= 1.25x the floor", once <= 1.25 * self.floor)
        self.row("  the same with SSL_CERT_DIR=/etc/ssl/certs", ms(once_dir), f"curl {ms(self.floor)}",
                 f"{once_dir / self.floor:.3f}x", "(measured)", True)
        self.row("time to first credentials vs recipe", ms(once), f"aws+jq {ms(recipe)}", f"{recipe / once:.0f}x faster",
                 ">= 30x faster", recipe / once >= 30)

    # 2. CPU per refresh.
    def refresh_cost(self):
        roles, window = 100, (4 if self.args.smoke else 20)
        proc, status, _, _ = self.sidecar(roles, "refresh:\n  max_interval: 1s\n  jitter: 0\n", "refresh")
        self.wait_ready(status)
        time.sleep(1)
        def refreshes():
            text = get(status + "/metrics")[1]
            return sum(float(v) for v in re.findall(r'rolerelay_refresh_total\{result="success",role="[^"]+"\} (\S+)', text))
        cpu0, n0 = cpu_seconds(proc.pid), refreshes()
        time.sleep(window)
        cpu1, n1 = cpu_seconds(proc.pid), refreshes()
        proc.terminate(); proc.wait()
        per = (cpu1 - cpu0) / max(n1 - n0, 1)
        self.row("CPU per refresh (100 roles, every 1s)", f"{per * 1e3:.2f} ms", f"{n1 - n0:.0f} refreshes", "", "(measured)", True)

    # 3. Idle footprint: the build measured throughout, and the shipped one when given.
    def idle(self):
        self.idle_rss = {}
        for roles in (1, 100):
            self.idle_rss[roles], cpu = self.idle_one(roles, self.args.binary)
            mib = self.idle_rss[roles] / 1024
            if roles == 1:
                self.row("idle RSS, 1 role", f"{mib:.1f} MiB", "", "", "<= 7 MiB", mib <= 7)
            else:
                self.row("idle RSS, 100 roles", f"{mib:.1f} MiB", "", "", "(measured)", True)
            self.row(f"idle CPU, {roles} role(s)", f"{cpu * 100:.2f} %", "", "", "0 % (no polling)", cpu < 0.005)
        if self.args.shipped:
            rss, _ = self.idle_one(1, self.args.shipped)
            self.row("idle RSS, 1 role, shipped build", f"{rss / 1024:.1f} MiB", "static musl", "", "<= 7 MiB",
                     rss / 1024 <= 7)

    def idle_one(self, roles, binary):
        """RSS (KiB) once ready and settled, and the share of a CPU used while idle."""
        window = 3 if self.args.smoke else 10
        proc, status, _, _ = self.sidecar(roles, "", f"idle{roles}", binary=binary)
        self.wait_ready(status)
        time.sleep(1)
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(window)
        cpu = (cpu_seconds(proc.pid) - cpu0) / window
        rss = rss_kib(proc.pid)
        proc.terminate(); proc.wait()
        return rss, cpu

    # 4. Endpoint throughput and latency against a minimal hyper server.
    def endpoint(self):
        if not shutil.which("wrk"):
            print("wrk is missing: skipping the endpoint benchmark")
            return
        # Rounds of one run each, in turn: on a shared machine the ceiling alone moves by a
        # quarter between runs minutes apart, so each round's ratio is taken, then the median.
        duration, rounds = ("2s", 1) if self.args.smoke else ("5s", 5)
        proc, status, endpoint, token_path = self.sidecar(1, "", "endpoint")
        self.wait_ready(status)
        token = open(token_path).read()
        port = free_port()
        ceiling = subprocess.Popen([self.args.ceiling, f"127.0.0.1:{port}"])
        wait_port(port)
        ours, theirs = [], []
        try:
            for _ in range(rounds):
                ours.append(self.wrk(f"{endpoint}/v1/credentials/r0", duration, token))
                # The same request (with its Authorization header), so only the answering differs.
                theirs.append(self.wrk(f"http://127.0.0.1:{port}/v1/credentials/r0", duration, token))
        finally:
            proc.terminate(); proc.wait()
            ceiling.terminate(); ceiling.wait()
        median = lambda key, runs: statistics.median(r[key] for r in runs)
        ratio = statistics.median(o["rps"] / t["rps"] for o, t in zip(ours, theirs))
        self.row("endpoint requests/s (wrk, 1 thread, 16 conn)", f"{median('rps', ours):.0f}/s",
                 f"hyper {median('rps', theirs):.0f}/s", f"{ratio:.3f}x", ">= 0.8x the ceiling", ratio >= 0.8)
        p99 = median("p99", ours), median("p99", theirs)
        self.row("endpoint p99 latency", f"{p99[0]:.2f} ms", f"hyper {p99[1]:.2f} ms",
                 f"{p99[0] / p99[1]:.2f}x", "(measured)", True)

    def wrk(self, url, duration, token):
        cmd = ["wrk", "-t1", "-c16", "-d", duration, "--latency", url]
        if token:
            cmd[1:1] = ["-H", f"Authorization: {token}"]
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
        if "Non-2xx" in out:
            sys.exit(f"non-2xx answers from {url}:\n{out}")
        return {"rps": rps, "p99": float(p99.group(1)) * scale}

    def moto_capacity(self, calls, concurrency):
        """Seconds moto takes to answer `calls` AssumeRole from `concurrency` keep-alive clients."""
        import http.client
        import threading
        body = ("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2FR{}"
                "&RoleSessionName=bench&DurationSeconds=3600")
        left = list(range(calls))
        lock = threading.Lock()
        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", self.sts_port)
            while True:
                with lock:
                    if not left:
                        return
                    i = left.pop()
                conn.request("POST", "/", body.format(i), {"Content-Type": "application/x-www-form-urlencoded",
                                                           "Authorization": STS_AUTH})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    sys.exit(f"moto answered AssumeRole with HTTP {response.status}")
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start

    # 5. Scale.
    def scale(self):
        roles = 100 if self.args.smoke else 1000
        concurrency = 16
        moto = self.moto_capacity(roles, concurrency)
        start = time.perf_counter()
        proc, status, _, _ = self.sidecar(roles, "", "scale")
        ready = self.wait_ready(status)
        took = time.perf_counter() - start
        time.sleep(1)
        rss = rss_kib(proc.pid)
        proc.terminate(); proc.wait()
        bound = 2 * roles * self.floor / concurrency
        self.row(f"{roles} roles: time until all ready", f"{took:.2f} s", f"2x bound {bound:.2f} s",
                 f"{took / bound:.2f}x", "<= 2 x (N x floor / 16)", ready and took <= bound)
        self.row(f"  moto answering {roles} AssumeRole alone", f"{took:.2f} s", f"moto {moto:.2f} s",
                 f"{took / moto:.2f}x", "(the emulator's ceiling)", True)
        per_role = (rss - self.idle_rss.get(1, rss)) / (roles - 1)
        self.row(f"{roles} roles: RSS per added role", f"{per_role:.1f} KiB", f"total {rss / 1024:.1f} MiB", "",
                 "<= 4 KiB", per_role <= 4)

    # 6. Fleet scale, against the STS stand-in (bench/sts.rs), where moto would be the limit.
    def many_roles(self):
        fleet.check_stand_in(self.args.sts)
        n, latency = (200, "5ms") if self.args.smoke else (10000, "5ms")
        # The shipped pod's volume is an in-memory emptyDir and the systemd unit's /run is a
        # tmpfs: that is where the files usually go. On a disk, each file's fsync adds its wait.
        tmpfs = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        r = fleet.roles(self.args.binary, self.args.sts, n, latency, base=tmpfs)
        where = "files on tmpfs" if tmpfs else "files on disk"
        self.row(f"{n} roles, STS 5 ms, {where}: time until all ready", f"{r['took']:.2f} s",
                 f"bound {r['bound']:.2f} s", f"{r['took'] / r['bound']:.2f}x", "<= 1.25x (N x latency / 16)",
                 r["took"] <= 1.25 * r["bound"])
        if shutil.which("wrk"):
            rps = fleet.stand_in_capacity(self.args.sts, latency, seconds=1 if self.args.smoke else 5)
            alone = n / rps
            self.row(f"  the stand-in answering {n} alone (wrk, 16 conn)", f"{r['took']:.2f} s", f"stand-in {alone:.2f} s",
                     f"{r['took'] / alone:.2f}x", "(the stand-in's ceiling)", True)
        if tmpfs:
            disk = fleet.roles(self.args.binary, self.args.sts, n, latency)
            self.row("  the same, files on disk (fsync)", f"{disk['took']:.2f} s", f"bound {disk['bound']:.2f} s",
                     f"{disk['took'] / disk['bound']:.2f}x", "(measured)", True)
        self.row(f"{n} roles: RSS per added role", f"{r['per_role_kib']:.1f} KiB",
                 f"total {r['rss_kib_all'] / 1024:.1f} MiB", "", "<= 8 KiB", r["per_role_kib"] <= 8)

    def storms(self):
        sizes = [(20, 10)] if self.args.smoke else [(300, 50)] + ([(1000, 50)] if self.args.storm_1000 else [])
        self.storm_results = []
        for n, rate in sizes:
            result = fleet.storm(self.args.binary, self.args.sts, n, rate, rate)
            s = fleet.summary(result)
            self.storm_results.append((n, result))
            last = f"{s['last_ready']:.1f} s" if s["all_ready"] else f"{sum(t is not None for t in result['ready'])}/{n} ready"
            self.row(f"storm: {n} processes, quota {rate}/s: last ready", last, f"ideal {s['ideal']:.1f} s",
                     f"{s['last_ready'] / s['ideal']:.2f}x" if s["all_ready"] else "", "<= 2x the ideal",
                     s["all_ready"] and s["last_ready"] <= 2 * s["ideal"])
            self.row("  STS calls (throttled)", f"{s['calls']} ({s['throttled']})", f"{n} processes",
                     f"{s['calls_per_process']:.2f}/process", "<= 2 per process", s["calls_per_process"] <= 2)
            self.row("  processes that stopped", str(s["stopped"]), "", "", "none", s["stopped"] == 0)
        if not self.args.smoke:
            try:
                fleet.plot([(f"{n} processes", r) for n, r in self.storm_results], os.path.join(ROOT, "bench", "storm.png"))
            except ImportError:
                print("matplotlib is missing: no bench/storm.png (bench/run installs it)")

    # 7. Size.
    def size(self):
        size = os.path.getsize(self.args.binary) / 1e6
        self.row("release binary (stripped)", f"{size:.2f} MB", os.path.basename(self.args.binary), "", "<= 5 MB", size <= 5)
        if self.args.shipped:
            size = os.path.getsize(self.args.shipped) / 1e6
            self.row("shipped binary (stripped)", f"{size:.2f} MB", "static musl", "", "<= 5 MB", size <= 5)

    def results(self):
        cpu = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
        lines = [
            "# Benchmark results", "",
            f"Measured by `bench/run.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores "
            f"({cpu.group(1).strip() if cpu else platform.machine()}), {platform.system()} {platform.release()}, "
            f"against a local moto server; medians of repeated runs. Binary: `{os.path.relpath(self.args.binary, ROOT)}`"
            + (f"; shipped build: `{os.path.relpath(self.args.shipped, ROOT)}`." if self.args.shipped else "."),
            "", "| measure | rolerelay | baseline | ratio | goal | met |", "|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rolerelay"))
    parser.add_argument("--ceiling", default=os.path.join(ROOT, "target", "release", "examples", "ceiling"))
    parser.add_argument("--sts", default=os.path.join(ROOT, "target", "release", "examples", "sts"))
    parser.add_argument("--storm-1000", action="store_true")
    parser.add_argument("--shipped", help="the shipped build (static musl, as the Dockerfile builds it): "
                        "its size and idle RSS are measured too")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    args = parser.parse_args()
    bench = Bench(args)
    print(f"{'measure':<44} {'rolerelay':>18} {'baseline':>22} {'ratio':>9} {'goal':>22}")
    try:
        bench.first_credentials()
        bench.refresh_cost()
        bench.idle()
        bench.endpoint()
        bench.scale()
        bench.many_roles()
        bench.storms()
        bench.size()
    finally:
        bench.close()
    if not args.smoke:
        # The table is replaced; the analysis written under it by hand is kept.
        analysis = ""
        if os.path.exists(args.results):
            text = open(args.results).read()
            if "<!-- analysis -->" in text:
                analysis = "\n" + text[text.index("<!-- analysis -->"):]
        with open(args.results, "w") as f:
            f.write(bench.results() + analysis)
        print(f"written: {os.path.relpath(args.results, ROOT)}")


if __name__ == "__main__":
    main()
