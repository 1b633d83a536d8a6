#!/usr/bin/env python3
"""rolerelay soak: one long run of refreshes, reloads and endpoint requests together, sampling the
process's RSS, open file descriptors and threads, to show they stay flat (no leak). Reuses
bench/run.py's moto and sidecar. Prints the samples and the verdict and writes the "Soak" section
of bench/RESULTS.md. Not a pass/fail test and not run in CI.

Usage: bench/soak.py [--binary PATH] [--roles N] [--refreshes N] [--reloads N] [--batch N]
                     [--requests N] [--limit SECONDS] [--no-write]
"""

import argparse
import http.client
import os
import re
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: moto, the sidecar, /proc readers)

START, END = "<!-- soak -->", "<!-- /soak -->"
NAME = "soak"


def proc_sample(pid):
    """(RSS KiB, open fds, threads, what the fds are) of pid, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed between the listing and the link
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return rss, sum(kinds.values()), threads, " ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


class Soak:
    def __init__(self, args, bench):
        self.args, self.bench = args, bench
        self.ports = (run.free_port(), run.free_port())
        self.extra = "refresh:\n  max_interval: 1s\n  jitter: 0\n"
        self.deadline = None
        self.stop = threading.Event()
        self.reloads = 0            # reloads applied (seen in /metrics)
        self.reload_errors = 0
        self.requests = {}          # endpoint answers by status code
        self.failures = []          # what went wrong in a driver, reported at the end

    def metric(self, text, pattern):
        return sum(float(v) for v in re.findall(pattern, text))

    def steady_refreshes(self, text):
        """Successful refreshes of the steady roles r0..r<roles-1> (a removed role's series go)."""
        found = re.findall(r'rolerelay_refresh_total\{result="success",role="r(\d+)"\} (\S+)', text)
        return sum(float(v) for n, v in found if int(n) < self.args.roles)

    def reloads_seen(self):
        text = run.get(self.status + "/metrics")[1]
        return self.metric(text, r'rolerelay_config_reloads_total\{result="success"\} (\S+)'), \
            self.metric(text, r'rolerelay_config_reloads_total\{result="error"\} (\S+)')

    # Reloads: the odd ones add `batch` roles after the steady ones, the even ones remove them.
    def reloader(self):
        steady, batch = self.args.roles, self.args.batch
        pace = self.args.pace / max(self.args.reloads, 1)
        for i in range(self.args.reloads):
            if self.stop.is_set():
                return
            began = time.time()
            numbers = range(steady + batch) if i % 2 == 0 else range(steady)
            before = self.reloads_seen()[0]
            self.bench.write_config(NAME, numbers, self.extra, self.ports)
            # Wait for this one to be applied (the watch takes bursts within 300 ms as one change).
            while self.reloads_seen()[0] <= before:
                if self.stop.is_set():
                    return
                if time.time() > began + 10:
                    self.failures.append(f"reload {i + 1} not applied within 10 s")
                    return
                time.sleep(0.02)
            self.reloads = i + 1
            self.reload_errors = self.reloads_seen()[1]
            time.sleep(max(0.0, began + pace - time.time()))

    # Endpoint requests, paced over the run, on keep-alive connections renewed every 100 requests
    # (so connections are accepted and closed too); one in 50 asks for a role that comes and goes.
    def requester(self, token):
        port, total = self.ports[1], self.args.requests
        steady, batch = self.args.roles, self.args.batch
        began, conn = time.time(), None
        for i in range(total):
            if self.stop.is_set():
                break
            if i % 100 == 0:
                if conn:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                ahead = began + self.args.pace * i / total - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            role = f"r{steady + i % batch}" if i % 50 == 49 else f"r{i % steady}"
            try:
                conn.request("GET", f"/v1/credentials/{role}", headers={"Authorization": token})
                resp = conn.getresponse()
                resp.read()
                code = resp.status
            except OSError as e:
                code = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            self.requests[code] = self.requests.get(code, 0) + 1
        if conn:
            conn.close()

    def run(self):
        a = self.args
        self.proc, self.status, _, token_path = self.bench.sidecar(a.roles, self.extra, NAME, self.ports)
        pid = self.proc.pid
        if not self.bench.wait_ready(self.status, 60):
            sys.exit("the sidecar did not become ready within 60 s")
        token = open(token_path).read().strip()
        started = time.time()
        self.deadline = started + a.limit
        drivers = [threading.Thread(target=self.reloader), threading.Thread(target=self.requester, args=(token,))]
        for d in drivers:
            d.start()
        samples, refreshes0 = [], self.steady_refreshes(run.get(self.status + "/metrics")[1])
        next_at = started
        try:
            while True:
                now = time.time()
                if self.proc.poll() is not None:
                    self.failures.append(f"the sidecar exited ({self.proc.returncode})")
                    break
                rss, fds, threads, kinds = proc_sample(pid)
                refreshes = self.steady_refreshes(run.get(self.status + "/metrics")[1]) - refreshes0
                served = sum(self.requests.values())
                samples.append((now - started, rss, fds, threads, refreshes, self.reloads, served, kinds))
                print(f"{now - started:7.1f} s  RSS {rss / 1024:6.2f} MiB  fds {fds:3d}  threads {threads:2d}  "
                      f"refreshes {refreshes:6.0f}  reloads {self.reloads:4d}  requests {served:6d}  ({kinds})", flush=True)
                done = refreshes >= a.refreshes and not any(d.is_alive() for d in drivers)
                if done or now >= self.deadline:
                    if not done:
                        self.failures.append(f"stopped at the {a.limit:.0f} s limit before every count was reached")
                    break
                next_at += a.interval
                time.sleep(max(0.0, next_at - time.time()))
        finally:
            self.stop.set()
            for d in drivers:
                d.join(15)
            self.proc.terminate()
            self.proc.wait()
        return samples


def verdict(samples, warmup):
    """Per measure: (first tenth's mean, last tenth's mean, change, flat, min, max) over the samples
    after warm-up. The min and max are there to read the mean by: fds and threads are instantaneous
    counts (connections in flight, a write's temporary file), so a leak raises the floor while
    load only scatters the samples above it."""
    kept = [s for s in samples if s[0] >= warmup]
    tenth = max(1, len(kept) // 10)
    result = {}
    for column, label in ((1, "RSS (KiB)"), (2, "open fds"), (3, "threads")):
        first = statistics.mean(s[column] for s in kept[:tenth])
        last = statistics.mean(s[column] for s in kept[-tenth:])
        change = (last - first) / first
        values = [s[column] for s in kept]
        result[label] = (first, last, change, abs(change) <= 0.10, min(values), max(values))
    return kept, tenth, result


def section(args, samples, kept, tenth, result, soak, took):
    last = samples[-1]
    codes = ", ".join(f"{n} × {c}" for c, n in sorted(soak.requests.items(), key=lambda kv: str(kv[0])))
    lines = [
        START,
        f"Measured by `bench/soak.py` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, shared with "
        f"other builds: noisy), release binary `{os.path.relpath(args.binary, run.ROOT)}`, local moto STS.",
        "",
        f"- **Load**: {args.roles} steady roles with `refresh.max_interval: 1s` (jitter 0); "
        f"{last[4]:.0f} successful refreshes of them (goal {args.refreshes}); {last[5]} reloads "
        f"(goal {args.reloads}) that alternately add and remove {args.batch} roles by renaming a new "
        f"config file over the old one, each waited for in `/metrics`, {soak.reload_errors:.0f} failed; "
        f"{last[6]} endpoint requests (goal {args.requests}) on keep-alive connections renewed every 100, "
        f"one in 50 for a role that comes and goes ({codes}). {took:.0f} s in all.",
        f"- **Sampling**: `/proc/<pid>/status` (`VmRSS`, `Threads`) and `/proc/<pid>/fd` every "
        f"{args.interval:g} s: {len(samples)} samples; the first {args.warmup:g} s are warm-up; of the "
        f"{len(kept)} after it, the mean of the last tenth ({tenth} samples) is compared with the first tenth's.",
    ]
    if soak.failures:
        lines.append("- **Incomplete**: " + "; ".join(soak.failures) + ".")
    lines += ["", "| measure (after warm-up) | first tenth | last tenth | change | flat (within 10 %) | min–max |",
              "|---|---|---|---|---|---|"]
    for label, (first, last_mean, change, flat, low, high) in result.items():
        lines.append(f"| {label} | {first:.1f} | {last_mean:.1f} | {change * 100:+.1f} % | "
                     f"{'yes' if flat else '**no**'} | {low}–{high} |")
    lines += ["", "<details><summary>Samples</summary>", "",
              "| t (s) | RSS (MiB) | fds | fds by kind | threads | refreshes | reloads | requests |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {t:.0f} | {rss / 1024:.2f} | {fds} | {kinds} | {th} | {r:.0f} | {rl} | {rq} |"
              for t, rss, fds, th, r, rl, rq, kinds in samples]
    lines += ["", "</details>", END]
    return "\n".join(lines)


def write_results(path, block):
    """Replaces the generated block of the "Soak" section, or appends the section. It sits under
    `<!-- analysis -->`, which bench/run.py keeps when it rewrites the table above."""
    text = open(path).read() if os.path.exists(path) else "<!-- analysis -->\n"
    if START in text and END in text:
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Soak\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(run.ROOT, "target", "release", "rolerelay"))
    parser.add_argument("--results", default=os.path.join(run.ROOT, "bench", "RESULTS.md"))
    parser.add_argument("--roles", type=int, default=100, help="steady roles, each refreshed every second")
    parser.add_argument("--refreshes", type=int, default=10_000, help="successful refreshes of the steady roles")
    parser.add_argument("--reloads", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="roles each reload adds or removes")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--pace", type=float, default=100, help="seconds over which reloads and requests are spread")
    parser.add_argument("--interval", type=float, default=2, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of samples left out of the verdict")
    parser.add_argument("--limit", type=float, default=300, help="seconds after which the run stops regardless")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    bench = run.Bench(args)
    soak = Soak(args, bench)
    began = time.time()
    try:
        samples = soak.run()
    finally:
        bench.close()
    took = time.time() - began
    kept, tenth, result = verdict(samples, args.warmup)
    print()
    for label, (first, last, change, flat, low, high) in result.items():
        print(f"{label:<10} first tenth {first:9.1f}  last tenth {last:9.1f}  {change * 100:+6.1f} %  "
              f"{'flat' if flat else 'NOT FLAT':<8}  (min {low}, max {high})")
    print(f"endpoint answers: {soak.requests}; reload errors: {soak.reload_errors:.0f}")
    for failure in soak.failures:
        print(f"incomplete: {failure}")
    if not args.no_write:
        write_results(args.results, section(args, samples, kept, tenth, result, soak, took))
        print(f"written: {os.path.relpath(args.results, run.ROOT)} (the Soak section)")


if __name__ == "__main__":
    main()
