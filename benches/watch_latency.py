#!/usr/bin/env python3
"""kaq watch's latency: the time from a line appended to a watched log to its alert printed.

    python3 benches/watch_latency.py path/to/kaq [EVENTS]      # default 3000

A gen-audit log of EVENTS events over two hours (../shared/tools/gen-audit, or $GEN_AUDIT) is
watched (`kaq watch --store`, the built-in pack) until the store holds it; then seven `exec`
lines, just after the log's last event in event time (as a live log goes on: every rule's window,
lookback and baseline reach into the history), are appended one at a time and the time until
each one's `exec-into-pod` alert is read from kaq watch's output. Prints the latencies, their median and the
load average. As tests/it/watch.rs does, with any binary (use a release build).
"""
import json, os, subprocess, sys, time, tempfile, shutil, select
if len(sys.argv) < 2:
    sys.exit(__doc__)
kaq, events = os.path.abspath(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "3000"
d = tempfile.mkdtemp()
src = os.path.join(d, "source.log")
here = os.path.dirname(os.path.abspath(__file__))
gen = os.environ.get("GEN_AUDIT", os.path.join(here, "..", "..", "shared", "tools", "gen-audit"))
if not os.path.exists(gen):
    sys.exit(f"watch_latency: gen-audit not found at {gen}; set GEN_AUDIT")
subprocess.run([gen, "--seed", "3", "--events", events, "--start", "2026-11-20T00:00:00Z", "--hours", "2", "--out", src], check=True, capture_output=True)
log = os.path.join(d, "audit.log"); shutil.copy(src, log)
total = sum(1 for _ in open(src))
cfg = os.path.join(d, "cfg"); os.mkdir(cfg)
store = os.path.join(d, "store")
env = dict(os.environ, KAQ_CONFIG_DIR=cfg, RUST_BACKTRACE="0")
p = subprocess.Popen([kaq, "watch", "--no-user-rules", "--format", "json", "--store", store, log], stdout=subprocess.PIPE, stderr=open(os.path.join(d, "err"), "w"), env=env)
# wait for the catch-up: until the store holds the lines
t0 = time.time()
while time.time() - t0 < 300:
    r = subprocess.run([kaq, "query", "| count", "--all-stages", "--store", store, "--format", "json", "-q"], capture_output=True, text=True)
    if r.returncode == 0:
        try:
            if json.loads(r.stdout.splitlines()[0]).get("count", 0) >= total: break
        except Exception: pass
    time.sleep(0.2)
# and until the rules have run over it (a commit's line, said once its rules ran; then two quiet
# seconds)
errf = os.path.join(d, "err")
while "committed" not in open(errf).read() and time.time() - t0 < 600:
    time.sleep(0.1)
last, quiet = None, time.time()
while time.time() - quiet < 2.0 and time.time() - t0 < 600:
    now = os.path.getsize(errf)
    if now != last:
        last, quiet = now, time.time()
    time.sleep(0.1)
os.set_blocking(p.stdout.fileno(), False)
buf = b""
def drain():
    global buf
    try:
        while True:
            c = os.read(p.stdout.fileno(), 65536)
            if not c: break
            buf += c
    except BlockingIOError: pass
drain(); buf = b""
took = []
for n in range(7):
    t = f"2026-11-20T02:00:{10+5*n:02d}.000000Z"; user = f"latency-{n}@example.com"
    line = json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"00000000-0000-4000-8000-{n:012d}", "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/dev/pods/web-1/exec?command=sh", "verb": "create", "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.9.9.9"], "userAgent": "kubectl/v1.30.0", "objectRef": {"resource": "pods", "namespace": "dev", "name": "web-1", "apiVersion": "v1", "subresource": "exec"}, "responseStatus": {"metadata": {}, "code": 101}, "requestReceivedTimestamp": t, "stageTimestamp": t}) + "\n"
    a = time.time()
    with open(log, "a") as f: f.write(line)
    found = False
    while time.time() - a < 60 and not found:
        select.select([p.stdout], [], [], 0.01); drain()
        *lines, buf = buf.split(b"\n")
        for l in lines:
            try: al = json.loads(l)
            except Exception: continue
            if al.get("rule") == "exec-into-pod" and al.get("group", {}).get("user") == user:
                took.append(time.time() - a); found = True
    time.sleep(0.5)
p.send_signal(2); p.wait()
if len(took) < 7:
    sys.exit(f"watch_latency: {7 - len(took)} alerts never came within 60 s; see {d}/err")
if os.environ.get("KAQ_BENCH_SHOW_STDERR"):
    sys.stderr.write(open(os.path.join(d, "err")).read())
ms = sorted(int(x * 1000) for x in took)
print(f"events {total}: latencies ms {ms} median {ms[len(ms)//2]}  load {os.getloadavg()}")
shutil.rmtree(d)
