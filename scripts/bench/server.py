#!/usr/bin/env python3
"""Model server vs model in each backend: throughput and memory under 1, 4 and 16 clients.

For each mode it starts a throwaway PostgreSQL 15 (as the postgres OS user) with the extension
and --model: "server" preloads qwen3_embed (one model server process), "backend" does not (each
session loads its own copy). Then, for each client count, that many sessions (one psql each,
driven through its stdin) each embed --calls short inputs, one statement per call, all at once
after a warm-up call per session; the two modes' clusters run side by side and take turns at each
client count. Printed per mode and client count: calls/s, input tokens/s,
mean latency per call, and, measured while those sessions are still connected, the total private
memory (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of every process of the
cluster, the model server included. Needs root (runs the server as postgres) and the extension
installed (cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config).

Example:
  python3 scripts/bench/server.py --model fixtures/generated/tiny/model-q8_0.gguf --threads 2
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
WORDS = ("the of and to in is was for on that with as by at from his her an which or be are this "
         "had not but what all were when we there can more one time so if about many then them "
         "these some would other into has two like him see could no than been who its now find "
         "down day did get come made may part over new sound take only little work know place "
         "year live me back give most very after thing our just name good sentence man think").split()


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw).stdout


class Cluster:
    def __init__(self, root, port, conf):
        self.dir = root
        self.port = port
        os.makedirs(root, exist_ok=True)
        shutil.chown(root, "postgres", "postgres")
        self.data = os.path.join(root, "data")
        sh("sudo", "-u", "postgres", f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
           "--auth=trust", "--locale=C.UTF-8", "-E", "UTF8")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        sh("sudo", "-u", "postgres", f"{PG_BIN}/pg_ctl", "-D", self.data, "-l",
           os.path.join(root, "server.log"), "-w", "-o",
           f"-p {port} -k {root} -c listen_addresses=''", "start")

    def psql_args(self):
        return ["psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres", "-X", "-qAt",
                "-v", "ON_ERROR_STOP=1"]

    def sql(self, q):
        return sh(*self.psql_args(), "-c", q).strip()

    def stop(self):
        subprocess.run(["sudo", "-u", "postgres", f"{PG_BIN}/pg_ctl", "-D", self.data, "-m",
                        "fast", "-w", "stop"], capture_output=True)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def private_mib(self):
        """Total private memory of the postmaster and all its descendants."""
        pids, todo = [], [self.postmaster_pid()]
        while todo:
            p = todo.pop()
            pids.append(p)
            try:
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        total = 0
        for p in pids:
            try:
                with open(f"/proc/{p}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Private_Clean:", "Private_Dirty:")):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024, len(pids)


class Session:
    """One psql process; each query is one line on stdin, its result one line on stdout."""

    def __init__(self, cluster):
        self.p = subprocess.Popen(cluster.psql_args(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  bufsize=1)

    def query(self, q):
        self.p.stdin.write(q.replace("\n", " ") + ";\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"psql ended: {self.p.stderr.read()}")
        return line.strip()

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def texts(n, rng, words):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) for _ in range(n)]


def quote(t):
    return "'" + t.replace("'", "''") + "'"


def start(mode, args, port):
    conf = [f"qwen3_embed.model_path = '{os.path.realpath(args.model)}'",
            f"qwen3_embed.threads = {args.threads}",
            f"qwen3_embed.server_threads = {args.threads}",
            "max_connections = 64"]
    if mode == "server":
        conf.append("shared_preload_libraries = 'qwen3_embed'")
    root = tempfile.mkdtemp(prefix=f"qwen3-bench-{mode}-")
    os.chmod(root, 0o755)
    c = Cluster(root, port, conf)
    c.sql("CREATE EXTENSION qwen3_embed CASCADE")
    c.sql("SELECT vector_dims(qwen3_embed('warm up the server'))")
    return c


def run(mode, c, clients, args, rng):
    """One measurement: `clients` sessions at once, `args.calls` calls each."""
    sessions = [Session(c) for _ in range(clients)]
    work = [texts(args.calls, rng, args.words) for _ in range(clients)]
    for s in sessions:  # each session loads (backend mode) or reaches the server first
        s.query("SELECT vector_dims(qwen3_embed('warm up this session'))")
    tokens = sum(int(sessions[0].query(f"SELECT qwen3_token_count({quote(t)})")) for w in work for t in w)
    errors = []
    barrier = threading.Barrier(clients + 1)

    def client(s, w):
        barrier.wait()
        try:
            for t in w:
                s.query(f"SELECT vector_dims(qwen3_embed({quote(t)}))")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(s, w)) for s, w in zip(sessions, work)]
    for t in threads:
        t.start()
    barrier.wait()
    begin = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - begin
    mem, procs = c.private_mib()
    for s in sessions:
        s.close()
    if errors:
        raise errors[0]
    calls = clients * args.calls
    print(f"  {mode:8} {clients:3} clients: {calls / wall:8.2f} calls/s {tokens / wall:9.1f} tok/s "
          f"{1000 * wall / args.calls:8.1f} ms/call {mem:9.0f} MiB private ({procs} processes)", flush=True)
    return calls / wall, tokens / wall, mem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    ap.add_argument("--calls", type=int, default=25, help="calls per client")
    ap.add_argument("--modes", default="backend,server")
    ap.add_argument("--words", type=lambda s: tuple(int(x) for x in s.split(",")), default=(12, 48),
                    help="MIN,MAX words per input (e.g. 4,8 for short search queries)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=28900)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the server runs as the postgres OS user)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"model {args.model}, {args.threads} threads, {args.calls} calls per client of "
          f"{args.words[0]}-{args.words[1]} words, CPU {cpu}, "
          f"{os.cpu_count()} cores", flush=True)
    modes = args.modes.split(",")
    clusters = {}
    by = {}
    try:
        for i, mode in enumerate(modes):
            clusters[mode] = start(mode, args, args.port + i)
        # Modes alternate at each client count, so a change in the machine's load hits both.
        for n in args.clients:
            for mode in modes:
                by[(mode, n)] = run(mode, clusters[mode], n, args, random.Random(args.seed + n))
        if "server" in clusters:
            print("  server stats (requests, batches, mean batch size, tokens/s of compute):",
                  clusters["server"].sql("SELECT requests, batches, round(mean_batch_size::numeric, 2), "
                                         "round(tokens_per_second::numeric) FROM qwen3_embed_server_stats()"))
    finally:
        for c in clusters.values():
            c.stop()
            shutil.rmtree(c.dir, ignore_errors=True)
    print()
    print("| clients | backend calls/s | server calls/s | server/backend | backend private MiB | server private MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.clients:
        b, s = by.get(("backend", n)), by.get(("server", n))
        if b and s:
            print(f"| {n} | {b[0]:.2f} | {s[0]:.2f} | {s[0] / b[0]:.2f}x | {b[2]:.0f} | {s[2]:.0f} |")


if __name__ == "__main__":
    main()
