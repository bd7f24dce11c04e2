#!/usr/bin/env python3
"""The load, the faults and the checks of ./Deploy/fault (Python 3.11, standard library only).

Deploy/fault starts PostgreSQL, migrates, seeds the demo and starts `itaku serve`; this script
then raises the demo purpose's volume limits, imports a known batch, drives a mixed load while
it kills PostgreSQL's postmaster with SIGKILL and restarts it, checks that the gateway recovers,
stops the gateway, and checks the invariants against the database. Every response is written
to <logs>/responses.jsonl. Exit status: 0 when every check passed, 1 otherwise.
"""

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

TENANT = "acme-retail"
DATASET = "customers"
PURPOSE = "order-support"
BASE = f"/v1/tenants/{TENANT}/datasets/{DATASET}"
BATCH_PREFIX = "FLT"
# Lookup fields of the customers dataset with a value in every row this script imports:
# customer_no (exact), phone, email. Each imported record has exactly this many lookup keys.
KEYS_PER_RECORD = 3
NAMES = [("山田 太郎", "ヤマダ タロウ"), ("佐藤 花子", "サトウ ハナコ"), ("鈴木 一郎", "スズキ イチロウ"),
         ("高橋 美咲", "タカハシ ミサキ"), ("田中 健", "タナカ ケン"), ("伊藤 さくら", "イトウ サクラ")]


def log(message):
    print(f"\033[1mitaku fault:\033[0m {message}", file=sys.stderr, flush=True)


# MARK: Recording


class Recorder:
    """Every request and its outcome, in memory and as JSON lines."""

    def __init__(self, path, origin):
        self.lock = threading.Lock()
        self.records = []
        self.file = open(path, "w", encoding="utf-8")
        self.origin = origin
        self.counter = 0

    def next_id(self, kind):
        with self.lock:
            self.counter += 1
            return f"flt-{kind}-{self.counter}"

    def add(self, record):
        with self.lock:
            self.records.append(record)
            if not self.file.closed:
                self.file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self):
        with self.lock:
            self.file.close()


class Client:
    """One keep-alive HTTP connection (per worker thread) to the gateway; records every call."""

    def __init__(self, url, recorder, timeout=30.0):
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.recorder = recorder
        self.timeout = timeout
        self.conn = None
        self.used = 0

    def _connection(self, timeout):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self.used = 0
        self.conn.timeout = timeout
        if self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def call(self, kind, method, path, headers=None, body=None, meta=None, timeout=None, fresh=False, record=True):
        """Sends one request; returns the record (status None when no HTTP answer came)."""
        timeout = timeout or self.timeout
        request_id = self.recorder.next_id(kind)
        headers = dict(headers or {})
        headers["Itaku-Request-Id"] = request_id
        if isinstance(body, str):
            body = body.encode("utf-8")
        rec = {"id": request_id, "kind": kind, "method": method, "path": path, "status": None}
        rec.update(meta or {})
        if fresh:
            self.close()
        attempt = 0
        while True:
            attempt += 1
            reused = self.conn is not None and self.used > 0
            t0 = time.monotonic()
            rec["t0"] = round(t0 - self.recorder.origin, 4)
            try:
                conn = self._connection(timeout)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.used += 1
                rec["t1"] = round(time.monotonic() - self.recorder.origin, 4)
                rec["status"] = response.status
                rec["request_id_echo"] = response.getheader("Itaku-Request-Id")
                ctype = response.getheader("Content-Type") or ""
                rec["content_type"] = ctype
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                parsed = None
                if "json" in ctype and data:
                    try:
                        parsed = json.loads(data)
                    except ValueError:
                        rec["error"] = "unparseable JSON body"
                if isinstance(parsed, dict):
                    for key in ("code", "access_id", "imported", "withheld"):
                        if key in parsed:
                            rec[key] = parsed[key]
                    if "records" in parsed:
                        rec["records"] = [r.get("record_id") for r in parsed["records"]]
                    if "record_id" in parsed:
                        rec["answered_record"] = parsed["record_id"]
                    if "clean" in parsed:
                        rec["clean"] = parsed["clean"]
                        rec["verify"] = {k: parsed.get(k) for k in ("clean", "entries", "checkpoints")}
                        rec["verify_problems"] = [s for s in parsed.get("streams", []) if s.get("firstProblem")] + parsed.get("unchained", [])
                elif response.status >= 500 or response.status == 200 and kind in ("lookup", "read", "update"):
                    rec["body_head"] = data[:300].decode("utf-8", "replace")
                rec["_body"] = parsed
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self.close()
                # A keep-alive connection the server had closed: one retry on a fresh one.
                if reused and attempt == 1 and kind != "import":
                    rec["retried_after"] = type(error).__name__
                    rec["first_id"] = request_id
                    request_id += "r"
                    headers["Itaku-Request-Id"] = rec["id"] = request_id
                    continue
                rec["t1"] = round(time.monotonic() - self.recorder.origin, 4)
                rec["error"] = type(error).__name__
                break
            except TimeoutError:
                self.close()
                rec["t1"] = round(time.monotonic() - self.recorder.origin, 4)
                rec["error"] = "timeout"
                break
            except OSError as error:
                self.close()
                rec["t1"] = round(time.monotonic() - self.recorder.origin, 4)
                rec["error"] = f"{type(error).__name__}: {error}"
                break
        body_json = rec.pop("_body", None)
        if record:
            self.recorder.add(rec)
        rec["_body"] = body_json
        return rec


# MARK: Data


def batch_rows(batch, count):
    rows = []
    for i in range(count):
        name, kana = NAMES[(batch + i) % len(NAMES)]
        rows.append({
            "customer_no": f"{BATCH_PREFIX}{batch:04d}-{i:05d}",
            "name": name,
            "name_kana": kana,
            "phone": f"020-{batch:04d}-{i:04d}",
            "email": f"flt{batch}.{i}@example.jp",
            "postal_code": "100-0001",
            "address": f"東京都千代田区千代田1-{batch}-{i}",
            "birth_date": f"19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        })
    return rows


def csv_text(rows):
    columns = list(rows[0].keys())
    return ",".join(columns) + "\n" + "".join(",".join(row[c] for c in columns) + "\n" for row in rows)


# MARK: PostgreSQL


class Cluster:
    def __init__(self, args):
        self.args = args
        self.data = os.path.join(args.state, "pg")
        self.run = os.path.join(args.state, "run")

    def as_pg_user(self, command):
        if os.geteuid() == 0:
            return ["runuser", "-u", self.args.pg_user, "--"] + command
        return command

    def psql(self, sql):
        """Rows of a query run as the superuser itaku_owner (fields split on \\x1f)."""
        command = self.as_pg_user([os.path.join(self.args.pg_bin, "psql"), "-h", self.run, "-U", "itaku_owner", "-d", "itaku",
                                   "-X", "-A", "-t", "-q", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        done = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()[:500]}")
        return [line.split("\x1f") for line in done.stdout.splitlines() if line != ""]

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def processes(self):
        """Processes running in the data folder: the postmaster and its children, or what is left of them."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/cwd") == self.data:
                    found.append(int(entry))
            except OSError:
                continue
        return found

    def start(self):
        env = dict(os.environ, ITAKU_STATE_DIRECTORY=self.args.state)
        return subprocess.run([os.path.join(self.args.root, "Deploy", "db"), "start"], env=env, capture_output=True,
                              text=True, timeout=240)


def process_alive(pid):
    """Alive and not a zombie (the service is Deploy/fault's child, reaped only at the end)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


# MARK: The run


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.origin = time.monotonic()
        self.recorder = Recorder(os.path.join(args.logs, "responses.jsonl"), self.origin)
        self.cluster = Cluster(args)
        self.env = self.read_env(os.path.join(args.state, "demo.env"))
        with open(os.path.join(args.logs, "token-a0002")) as f:
            self.token_a2 = f.read().strip()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.phones = []          # phones known to be imported: the lookup pool
        self.batches = {}         # batch number -> {"rows": n, "id": request id, "status": ...}
        self.import_started = None  # monotonic time the import in flight started, or None
        self.chaos = []           # what the fault thread did
        self.failures = []        # (check, detail)
        self.notes = []
        self.hung_workers = []

    @staticmethod
    def read_env(path):
        values = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if "=" not in line:
                    continue
                key, value = line.split("=", 1)
                if value.startswith("'") and value.endswith("'"):
                    value = value[1:-1].replace("'\\''", "'")
                values[key] = value
        return values

    def fail(self, check, detail):
        self.failures.append((check, detail))

    def now(self):
        return round(time.monotonic() - self.origin, 3)

    # Requests

    def agent_headers(self, agent, case):
        token = self.env["ITAKU_AGENT_TOKEN"] if agent == "A0001" else self.token_a2
        return {"Authorization": f"Bearer {self.env['ITAKU_INTEGRATION_KEY']}", "Itaku-Agent": token,
                "Itaku-Purpose": PURPOSE, "Itaku-Case": case}

    def lookup(self, client, agent, case, phone, fields=None, kind="lookup", probe=None):
        body = {"by": "phone", "value": phone}
        if fields:
            body["fields"] = fields
        headers = self.agent_headers(agent, case)
        headers["Content-Type"] = "application/json"
        return client.call(kind, "POST", f"{BASE}/lookup", headers, json.dumps(body, ensure_ascii=False),
                           {"agent": agent, "case": case, "probe": probe})

    def read(self, client, agent, case, record_id, kind="read", probe=None):
        return client.call(kind, "GET", f"{BASE}/records/{record_id}", self.agent_headers(agent, case), None,
                           {"agent": agent, "case": case, "record": record_id, "probe": probe})

    def update(self, client, agent, case, record_id, token):
        fields = {"address": f"東京都千代田区丸の内{token}"}
        roll = self.rng.random()
        if roll < 0.5:
            fields["postal_code"] = f"100-{self.rng.randrange(10000):04d}"
        if roll < 0.3:
            fields["email"] = f"{token.lower()}@example.jp"
        headers = self.agent_headers(agent, case)
        headers["Content-Type"] = "application/json"
        return client.call("update", "PATCH", f"{BASE}/records/{record_id}", headers,
                           json.dumps({"fields": fields}, ensure_ascii=False),
                           {"agent": agent, "case": case, "record": record_id, "values": fields})

    def import_batch(self, client, batch, count, kind="import"):
        rows = batch_rows(batch, count)
        headers = {"Authorization": f"Bearer {self.env['ITAKU_CLIENT_ADMIN_KEY']}", "Content-Type": "text/csv"}
        with self.lock:
            self.batches[batch] = {"rows": count, "id": None, "status": None}
            self.import_started = time.monotonic()
        rec = client.call(kind, "POST", f"{BASE}/imports", headers, csv_text(rows), {"batch": batch, "rows": count},
                          timeout=180, fresh=True)
        with self.lock:
            self.import_started = None
            self.batches[batch].update(id=rec["id"], status=rec["status"], error=rec.get("error"))
            if rec["status"] == 201:
                self.phones.extend(row["phone"] for row in self.rng.sample(rows, min(50, len(rows))))
        return rec

    # Setup

    def setup(self):
        client = Client(self.args.url, self.recorder)
        admin = {"Authorization": f"Bearer {self.env['ITAKU_CLIENT_ADMIN_KEY']}"}
        got = client.call("setup", "GET", f"/v1/tenants/{TENANT}/purposes/{PURPOSE}", admin)
        if got["status"] != 200:
            raise SystemExit(f"reading the purpose answered {got['status']}")
        definition = got["_body"]["definition"]
        # The demo's limits (60 lookups a minute, 600 records an hour) would turn the load into 429s.
        definition["limits"] = {"records_per_hour": 1_000_000, "lookups_per_minute": 1_000_000}
        etag = f"\"v{got['_body']['version']}\""
        put = client.call("setup", "PUT", f"/v1/tenants/{TENANT}/purposes/{PURPOSE}",
                          dict(admin, **{"Content-Type": "application/json", "If-Match": etag}), json.dumps(definition, ensure_ascii=False))
        if put["status"] != 200:
            raise SystemExit(f"raising the purpose's limits answered {put['status']} {put.get('code')}")
        # The run's case references (CALL-<worker>-<n>, CALL-setup, ...) are not in Itaku's
        # default form: the tenant says which it uses, as a client would.
        operator = {"Authorization": f"Bearer {self.env['ITAKU_OPERATOR_KEY']}", "Content-Type": "application/json"}
        patched = client.call("setup", "PATCH", f"/v1/tenants/{TENANT}", operator,
                              json.dumps({"case_pattern": "CALL-[A-Za-z0-9-]{1,60}"}))
        if patched["status"] != 200:
            raise SystemExit(f"setting the tenant's case pattern answered {patched['status']} {patched.get('code')}")
        seed = self.import_batch(client, 0, self.args.seed_rows, kind="seed-import")
        if seed["status"] != 201:
            raise SystemExit(f"the seed import answered {seed['status']} {seed.get('code')}")
        if not self.args.no_analyze:
            # Without statistics (a fresh cluster that autovacuum has not analysed yet) the planner
            # joins the lookup's tables record by record: one lookup over the 5,500 demo records
            # takes seconds to tens of seconds, and a backend busy in such a query outlives a
            # killed postmaster. --no-analyze leaves it that way, to see it.
            t = time.monotonic()
            self.cluster.psql("ANALYZE itaku.records; ANALYZE itaku.lookup_keys;")
            self.notes.append(f"ANALYZE of records and lookup_keys before the load ({time.monotonic() - t:.2f} s)")
        with self.lock:
            self.phones = [row["phone"] for row in batch_rows(0, self.args.seed_rows)]
            if self.env.get("ITAKU_DEMO_PHONE"):
                self.phones.append(self.env["ITAKU_DEMO_PHONE"])
        # One lookup must work before the faults start.
        first = self.lookup(client, "A0001", "CALL-setup", self.phones[0], kind="setup-lookup")
        if first["status"] != 200 or not first.get("records"):
            raise SystemExit(f"a first lookup answered {first['status']} {first.get('code')}")
        client.close()

    # Workers

    def agent_worker(self, number):
        rng = random.Random(self.args.seed * 1000 + number)
        client = Client(self.args.url, self.recorder)
        agent = "A0001" if number % 2 == 0 else "A0002"
        n = 0
        while not self.stop.is_set():
            n += 1
            case = f"CALL-{number}-{n}"
            with self.lock:
                phone = rng.choice(self.phones)
            if rng.random() < 0.03:
                # A denied lookup (a field outside the purpose): its entry must be committed too.
                self.lookup(client, agent, case, phone, fields=["name", "card_last4"], probe="field_not_allowed")
                continue
            found = self.lookup(client, agent, case, phone)
            ids = found.get("records") or []
            if found["status"] != 200 or not ids:
                if found["status"] in (503, None):
                    time.sleep(0.05)
                continue
            for record_id in ids[:2]:
                if self.stop.is_set():
                    break
                self.read(client, agent, case, record_id)
            if rng.random() < 0.04:
                self.read(client, agent, f"CALL-{number}-{n}-other", ids[0], probe="not_case_bound")
            if rng.random() < 0.5 and not self.stop.is_set():
                self.update(client, agent, case, rng.choice(ids), f"W{number}N{n}")
        client.close()

    def import_worker(self):
        client = Client(self.args.url, self.recorder)
        rng = random.Random(self.args.seed * 7 + 1)
        batch = 0
        while not self.stop.is_set():
            batch += 1
            rec = self.import_batch(client, batch, rng.randint(self.args.min_rows, self.args.max_rows))
            if rec["status"] != 201:
                time.sleep(0.3)
            else:
                time.sleep(rng.uniform(0.05, 0.3))
        client.close()

    def review_worker(self):
        client = Client(self.args.url, self.recorder)
        reviewer = {"Authorization": f"Bearer {self.env['ITAKU_REVIEWER_KEY']}"}
        admin = {"Authorization": f"Bearer {self.env['ITAKU_CLIENT_ADMIN_KEY']}"}
        turn = 0
        while not self.stop.wait(1.0):
            turn += 1
            if turn % 2:
                client.call("search", "GET", "/v1/access-log?limit=20", reviewer)
            else:
                client.call("admin-read", "GET", f"/v1/tenants/{TENANT}/purposes", admin)
        client.close()

    def fault_worker(self, deadline):
        args = self.args
        start = time.monotonic()
        span = max(1.0, (deadline - start) - args.warmup - args.tail)
        interval = span / args.kills
        for k in range(args.kills):
            planned = start + args.warmup + k * interval + self.rng.uniform(0, interval * 0.25)
            if self.stop.wait(max(0.0, planned - time.monotonic())):
                return
            # Aim at an import in flight when there is one soon: that is where all-or-nothing is tested.
            aim = time.monotonic() + 4.0
            while time.monotonic() < aim:
                with self.lock:
                    started = self.import_started
                if started is not None and time.monotonic() - started > 0.1:
                    break
                time.sleep(0.02)
            time.sleep(self.rng.uniform(0.0, 0.3))
            with self.lock:
                in_import = self.import_started is not None
            event = {"kill": k + 1, "import_in_flight": in_import}
            pid = self.cluster.postmaster_pid()
            if pid is None or not process_alive(pid):
                event["error"] = f"no live postmaster (pid file says {pid})"
                self.chaos.append(event)
                self.fail("faults", f"kill {k + 1}: {event['error']}")
                continue
            event["pid"] = pid
            event["killed_at"] = self.now()
            os.kill(pid, signal.SIGKILL)
            log(f"kill {k + 1}: SIGKILL to postmaster {pid} at {event['killed_at']} s"
                + (" (an import in flight)" if in_import else ""))
            time.sleep(args.down + self.rng.uniform(-0.5, 0.5))
            # The backends notice the postmaster's death and exit; a new postmaster cannot attach to
            # the shared memory while they live.
            leftovers_seen = self.cluster.processes()
            waited = time.monotonic()
            # ... and the killed postmaster must be reaped (by init; a zombie still counts as
            # running for pg_ctl and for the new postmaster's lock-file check).
            killed_leftovers = []
            while (self.cluster.processes() or os.path.exists(f"/proc/{pid}")) and time.monotonic() - waited < 40:
                if time.monotonic() - waited > args.leftover_grace and not killed_leftovers:
                    # Backends busy in a long statement notice the postmaster's death only when they
                    # wait; they belong to this run's cluster: end them.
                    killed_leftovers = self.cluster.processes()
                    for leftover in killed_leftovers:
                        try:
                            os.kill(leftover, signal.SIGKILL)
                        except OSError:
                            pass
                time.sleep(0.1)
            if killed_leftovers:
                event["leftovers_killed"] = killed_leftovers
                self.notes.append(f"kill {k + 1}: {len(killed_leftovers)} backend(s) still running {args.leftover_grace:.0f} s "
                                  f"after the postmaster's death were killed")
            event["leftover_processes_after_down"] = len(leftovers_seen)
            event["leftovers_waited_s"] = round(time.monotonic() - waited, 2)
            still = self.cluster.processes() + ([pid] if os.path.exists(f"/proc/{pid}") else [])
            if still:
                event["leftovers_still_running"] = still
            attempts = []
            for attempt in range(5):
                t = time.monotonic()
                done = self.cluster.start()
                attempts.append({"rc": done.returncode, "s": round(time.monotonic() - t, 2),
                                 "stderr": done.stderr.strip()[-300:]})
                if done.returncode == 0:
                    break
                time.sleep(2)
            event["restart_attempts"] = attempts
            event["restarted"] = attempts[-1]["rc"] == 0
            event["restarted_at"] = self.now()
            self.chaos.append(event)
            if event["restarted"]:
                log(f"restart {k + 1}: PostgreSQL back at {event['restarted_at']} s "
                    f"(down {event['restarted_at'] - event['killed_at']:.1f} s, {len(attempts)} attempt(s))")
            else:
                self.fail("faults", f"restart {k + 1} failed: {attempts[-1]['stderr']}")
                log(f"restart {k + 1} FAILED: {attempts[-1]['stderr']}")
                return

    def guarded(self, body):
        """A worker that dies of an error of this script fails the run instead of thinning the load."""
        def run(*arguments):
            try:
                body(*arguments)
            except Exception as error:
                if not self.recorder.file.closed:
                    self.fail("run", f"{threading.current_thread().name} stopped: {type(error).__name__}: {error}")
        return run

    def load(self):
        args = self.args
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=self.guarded(self.agent_worker), args=(i,), name=f"agent-{i}", daemon=True)
                   for i in range(args.workers)]
        threads.append(threading.Thread(target=self.guarded(self.import_worker), name="import", daemon=True))
        threads.append(threading.Thread(target=self.guarded(self.review_worker), name="review", daemon=True))
        fault = threading.Thread(target=self.guarded(self.fault_worker), args=(deadline,), name="faults", daemon=True)
        self.load_started = self.now()
        for thread in threads:
            thread.start()
        fault.start()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if not process_alive(args.serve_pid):
                self.fail("service", f"itaku serve (pid {args.serve_pid}) exited during the load at {self.now()} s")
                break
        fault.join(timeout=300)
        self.stop.set()
        # Requests are bounded by their timeouts (30 s, imports 180 s): a worker still busy after that hangs.
        for thread in threads:
            thread.join(timeout=200)
            if thread.is_alive():
                self.hung_workers.append(thread.name)
        self.load_ended = self.now()
        if self.hung_workers:
            self.fail("hang", f"workers still waiting for an answer after the load: {', '.join(self.hung_workers)}")

    def recovery(self):
        """After the last restart: ready again, and agent calls answer 200 with data."""
        client = Client(self.args.url, self.recorder)
        t = time.monotonic()
        ready = None
        while time.monotonic() - t < 60:
            rec = client.call("post-readyz", "GET", "/readyz", record=False)
            if rec["status"] == 200:
                ready = round(time.monotonic() - t, 2)
                break
            time.sleep(0.5)
        self.ready_after = ready
        if ready is None:
            self.fail("recovery", "/readyz did not answer 200 within 60 s after the load")
        ok = 0
        for i in range(10):
            with self.lock:
                phone = self.rng.choice(self.phones)
            case = f"CALL-post-{i}"
            found = self.lookup(client, "A0001", case, phone, kind="post-lookup")
            if found["status"] == 200 and found.get("records"):
                got = self.read(client, "A0001", case, found["records"][0], kind="post-read")
                if got["status"] == 200:
                    ok += 1
        self.recovered = ok
        if ok != 10:
            self.fail("recovery", f"after recovery only {ok} of 10 lookup-and-read pairs answered 200")
        self.read_back_addresses(client)
        live = client.call("post-livez", "GET", "/livez")
        if live["status"] != 200:
            self.fail("livez", f"/livez answered {live['status']} {live.get('error', '')}")
        self.registry_follows(client)
        verify = client.call("verify", "POST", "/v1/access-log/verify",
                             {"Authorization": f"Bearer {self.env['ITAKU_REVIEWER_KEY']}"}, timeout=120)
        self.http_verify = verify
        if verify["status"] != 200 or verify.get("clean") is not True:
            self.fail("verify", f"POST /v1/access-log/verify answered {verify['status']}, clean={verify.get('clean')}: "
                                f"{json.dumps(verify.get('verify_problems'))[:600]}")
        client.close()

    def read_back_addresses(self, client):
        """The current address of every record an update tried, read back as an agent under a
        case the update was bound to: fields are sealed in the database, so the updates check
        reads them through the gateway. Not recorded: these reads are not part of the load."""
        self.final_addresses = {}
        tried = {}
        for rec in list(self.recorder.records):
            if rec["kind"] == "update":
                tried.setdefault(rec["record"], rec)
        for record_id, rec in tried.items():
            got = client.call("final-read", "GET", f"{BASE}/records/{record_id}",
                              self.agent_headers(rec["agent"], rec["case"]), record=False)
            body = got.get("_body") or {}
            if got["status"] == 200 and body.get("records"):
                self.final_addresses[record_id] = body["records"][0].get("fields", {}).get("address", "")
            else:
                self.fail("updates-durable", f"record {record_id}: reading it back answered {got['status']} {got.get('code')}")

    def registry_follows(self, client):
        """After the restarts the registry must still follow changes made elsewhere (LISTEN/NOTIFY
        re-established): a key issued with the CLI works, and once revoked is refused, within
        5 s each (the periodic full reload, every 30 s, would take longer)."""
        env = dict(os.environ, ITAKU_STATE_DIRECTORY=self.args.state, ITAKU_LOG_LEVEL="warning")

        def cli(*arguments):
            done = subprocess.run([self.args.itaku, "keys", *arguments], env=env, capture_output=True, text=True,
                                  timeout=60, cwd=self.args.root)
            if done.returncode != 0:
                raise RuntimeError(f"itaku keys {arguments[0]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
            return done.stdout

        def wait_for(wanted, key):
            t = time.monotonic()
            while time.monotonic() - t < 5:
                rec = client.call("post-newkey", "GET", "/v1/access-log?limit=1", {"Authorization": f"Bearer {key}"})
                if rec["status"] == wanted:
                    return round(time.monotonic() - t, 2)
                time.sleep(0.2)
            return None

        out = cli("create", "--role", "reviewer", "--label", "fault-run")
        key = next(line.split()[1] for line in out.splitlines() if line.startswith("key:"))
        key_id = next(line.split()[2] for line in out.splitlines() if line.startswith("key id:"))
        took = wait_for(200, key)
        self.registry_seconds = [took]
        if took is None:
            self.fail("registry-follows", "a reviewer key issued with `itaku keys create` after the restarts was not accepted within 5 s")
        cli("revoke", "--id", key_id)
        took = wait_for(401, key)
        self.registry_seconds.append(took)
        if took is None:
            self.fail("registry-follows", "a key revoked with `itaku keys revoke` after the restarts was still accepted 5 s later")

    def stop_service(self):
        pid = self.args.serve_pid
        if not process_alive(pid):
            self.fail("service", "itaku serve was not running at the end of the run")
            return
        os.kill(pid, signal.SIGTERM)
        t = time.monotonic()
        while process_alive(pid) and time.monotonic() - t < 30:
            time.sleep(0.1)
        self.stop_seconds = round(time.monotonic() - t, 2)
        if process_alive(pid):
            self.fail("hang", "itaku serve did not stop within 30 s of SIGTERM")
            os.kill(pid, signal.SIGKILL)

    def cli_verify(self):
        env = dict(os.environ, ITAKU_STATE_DIRECTORY=self.args.state, ITAKU_LOG_LEVEL="warning")
        # The checkpoints the service logged are the anchors: every one must still name its entry.
        anchors = os.path.join(self.args.logs, "serve.log")
        done = subprocess.run([self.args.itaku, "verify-log", "--anchors", anchors], env=env, capture_output=True, text=True,
                              timeout=300, cwd=self.args.root)
        with open(os.path.join(self.args.logs, "verify-log.txt"), "w") as f:
            f.write(done.stdout + done.stderr)
        lines = done.stdout.strip().splitlines()
        self.cli_verify_result = (done.returncode, lines[-1] if lines else done.stderr.strip()[-200:])
        if done.returncode != 0:
            bad = [line for line in lines if "problem" in line or "no chain" in line][:5]
            self.fail("verify", f"itaku verify-log exited {done.returncode}: {self.cli_verify_result[1]}; {bad}")
        read = [line for line in lines if line.startswith("anchors: ")]
        self.anchors = read[0][len("anchors: "):] if read else "none"
        if not read or read[0].startswith("anchors: 0 ") or "not signed" in read[0]:
            self.fail("verify", f"the service's log did not give verify-log its checkpoints as anchors: {self.anchors}")

    # Checks against the database

    def check_database(self):
        records = self.recorder.records
        entries = {}
        for row in self.cluster.psql(
            "SELECT entry_id, operation, decision, reason, coalesce(array_to_string(record_ids, ','), ''), "
            "coalesce(request_id, ''), coalesce(case_ref, ''), coalesce(agent, ''), coalesce(target, '') FROM itaku.access_log"
        ):
            entries[row[0]] = {"op": row[1], "decision": row[2], "reason": row[3],
                               "records": [r for r in row[4].split(",") if r], "request": row[5], "case": row[6],
                               "agent": row[7], "target": row[8]}
        by_request = defaultdict(list)
        for entry_id, entry in entries.items():
            if entry["request"]:
                by_request[entry["request"]].append(entry_id)
        self.entry_count = len(entries)

        # 1. No data without its committed entry; every access_id answered is in the log.
        with_data = 0
        for rec in records:
            kind = {"post-lookup": "lookup", "setup-lookup": "lookup", "post-read": "read"}.get(rec["kind"], rec["kind"])
            carries = rec["status"] == 200 and (
                (kind == "lookup" and rec.get("records")) or kind == "read" or kind == "update")
            if rec.get("records") and rec["status"] != 200:
                self.fail("no-data-without-entry", f"{rec['id']}: status {rec['status']} carried records")
            if carries:
                with_data += 1
                access_id = rec.get("access_id")
                entry = entries.get(access_id)
                if entry is None:
                    self.fail("no-data-without-entry", f"{rec['id']} ({kind} 200 at {rec['t1']} s) answered access_id "
                                                       f"{access_id} which is not in itaku.access_log")
                    continue
                returned = rec.get("records") if kind in ("lookup", "read") else [rec.get("record")]
                problems = []
                if entry["op"] != kind or entry["decision"] != "allow":
                    problems.append(f"entry is {entry['op']}/{entry['decision']}")
                if sorted(entry["records"]) != sorted(returned or []):
                    problems.append(f"entry names records {entry['records']}, the answer {returned}")
                if entry["request"] != rec["id"] or entry["case"] != rec.get("case") or entry["agent"] != rec.get("agent"):
                    problems.append(f"entry request/case/agent {entry['request']}/{entry['case']}/{entry['agent']}")
                if problems:
                    self.fail("entry-matches-answer", f"{rec['id']}: " + "; ".join(problems))
            elif rec.get("access_id") and rec["access_id"] not in entries:
                self.fail("every-decision-logged", f"{rec['id']} ({kind} {rec['status']} {rec.get('code')}) answered "
                                                   f"access_id {rec['access_id']} which is not in itaku.access_log")
        self.with_data = with_data

        # 2. One entry per agent request at most.
        for request_id, ids in by_request.items():
            ops = [entries[i]["op"] for i in ids]
            if len(ids) > 1 and any(op in ("lookup", "read", "update") for op in ops):
                self.fail("one-entry-per-decision", f"request {request_id} has {len(ids)} entries: {ops}")

        # 3. Imports: all or nothing (records, lookup keys, configure entry); 201 means complete.
        counts = {int(r[0][len(BATCH_PREFIX):]): int(r[1]) for r in self.cluster.psql(
            f"SELECT split_part(external_id, '-', 1), count(*) FROM itaku.records WHERE external_id LIKE '{BATCH_PREFIX}%' GROUP BY 1")}
        keys = {int(r[0][len(BATCH_PREFIX):]): int(r[1]) for r in self.cluster.psql(
            "SELECT split_part(r.external_id, '-', 1), count(*) FROM itaku.lookup_keys k JOIN itaku.records r "
            "ON r.tenant_id = k.tenant_id AND r.dataset_id = k.dataset_id AND r.record_id = k.record_id "
            f"WHERE r.external_id LIKE '{BATCH_PREFIX}%' GROUP BY 1")}
        odd_keys = self.cluster.psql(
            "SELECT r.external_id, count(k.record_id) FROM itaku.records r LEFT JOIN itaku.lookup_keys k "
            "ON r.tenant_id = k.tenant_id AND r.dataset_id = k.dataset_id AND r.record_id = k.record_id "
            f"WHERE r.external_id LIKE '{BATCH_PREFIX}%' GROUP BY r.external_id HAVING count(k.record_id) <> {KEYS_PER_RECORD} LIMIT 20")
        if odd_keys:
            self.fail("lookup-keys", f"records without exactly {KEYS_PER_RECORD} lookup keys: {odd_keys}")
        import_entries = Counter(e["request"] for e in entries.values() if e["op"] == "configure" and e["target"] == f"dataset:{DATASET}:import")
        self.imports = Counter()
        for batch, info in sorted(self.batches.items()):
            have = counts.get(batch, 0)
            expected = info["rows"]
            logged = import_entries.get(info["id"], 0)
            label = f"batch {batch} ({expected} rows, answered {info['status'] or info.get('error')}, request {info['id']})"
            if have not in (0, expected):
                self.fail("imports-all-or-nothing", f"{label}: {have} rows in itaku.records")
            if have and keys.get(batch, 0) != expected * KEYS_PER_RECORD:
                self.fail("imports-all-or-nothing", f"{label}: {keys.get(batch, 0)} lookup keys for {have} rows")
            if info["status"] == 201 and have != expected:
                self.fail("imports-durable", f"{label}: answered 201 but {have} rows are in itaku.records")
            if info["status"] not in (201, 503, None):
                self.fail("imports-status", f"{label}: unexpected answer")
            if bool(have) != bool(logged) or logged > 1:
                self.fail("imports-logged", f"{label}: {have} rows but {logged} configure entries")
            self.imports["complete" if have == expected and have else "absent" if not have else "partial"] += 1
            if info["status"] != 201 and have:
                self.imports["complete although not answered 201"] += 1
        unknown = set(counts) - set(self.batches)
        if unknown:
            self.fail("imports-all-or-nothing", f"rows of batches never sent: {sorted(unknown)}")

        # 4. Updates: every 200 is durable, every change landed has its entry (same transaction).
        attempts = defaultdict(list)
        for rec in records:
            if rec["kind"] == "update":
                attempts[rec["record"]].append(rec)
        self.updates_checked = 0
        if attempts:
            current = getattr(self, "final_addresses", {})
            for record_id, tries in attempts.items():
                self.updates_checked += 1
                address = current.get(record_id)
                writer = next((t for t in tries if t["values"]["address"] == address), None)
                ok_times = [t["t0"] for t in tries if t["status"] == 200]
                if writer is None:
                    if ok_times:
                        self.fail("updates-durable", f"record {record_id}: {len(ok_times)} update(s) answered 200 but its "
                                                     f"address is none of them")
                    continue
                if writer["status"] not in (200, 503, None):
                    self.fail("updates-durable", f"record {record_id}: its value came from {writer['id']}, answered {writer['status']}")
                if ok_times and writer.get("t1", 0) < max(ok_times):
                    self.fail("updates-durable", f"record {record_id}: holds the value of {writer['id']} (ended {writer['t1']} s) "
                                                 f"although an update answered 200 started later ({max(ok_times)} s)")
                logged = [entries[i] for i in by_request.get(writer["id"], []) if entries[i]["op"] == "update"]
                if not any(e["decision"] == "allow" for e in logged):
                    self.fail("update-and-entry-together", f"record {record_id}: changed by {writer['id']} (answered "
                                                           f"{writer['status'] or writer.get('error')}) but no allowed update entry has that request id")

        # 5. Statuses: 503 is the only 5xx; no request without an answer; no unexpected status.
        expected = {"lookup": {200, 503}, "read": {200, 503}, "update": {200, 503}, "import": {201, 503},
                    "search": {200, 503}, "admin-read": {200, 503}}
        for rec in records:
            status, kind = rec["status"], rec["kind"]
            if status is None:
                self.fail("answers", f"{rec['id']} ({kind} at {rec['t0']} s): no HTTP answer: {rec.get('error')}")
            elif status >= 500 and status != 503:
                self.fail("no-500", f"{rec['id']} ({kind} at {rec['t0']} s): {status} {rec.get('code')}")
            elif rec.get("probe"):
                if status not in (403, 503) or status == 403 and rec.get("code") != rec["probe"]:
                    self.fail("answers", f"{rec['id']} (probe {rec['probe']}): {status} {rec.get('code')}")
            elif kind in expected and status not in expected[kind]:
                self.fail("answers", f"{rec['id']} ({kind} at {rec['t0']} s): unexpected {status} {rec.get('code')}")
            if status == 503 and rec.get("code") not in ("database_unavailable", "access_log_unavailable"):
                self.fail("answers", f"{rec['id']} ({kind}): 503 with code {rec.get('code')}")

    # Figures

    def report(self, started):
        records = self.recorder.records
        table = defaultdict(Counter)
        for rec in records:
            key = str(rec["status"]) if rec["status"] is not None else f"ERR:{rec.get('error')}"
            if rec["status"] and rec["status"] >= 400 and rec.get("code"):
                key += f" {rec['code']}"
            table[rec["kind"]][key] += 1
        print("\nrequests by kind and status:")
        for kind in sorted(table):
            parts = ", ".join(f"{status}: {n}" for status, n in sorted(table[kind].items()))
            print(f"  {kind:14} {sum(table[kind].values()):6}  {parts}")
        retried = sum(1 for r in records if r.get("retried_after"))
        if retried:
            print(f"  ({retried} requests retried once after a stale keep-alive connection)")
        print(f"answers with record data checked against the log: {getattr(self, 'with_data', 0)} "
              f"(access-log entries in total: {getattr(self, 'entry_count', '?')})")
        print(f"records updated, durability checked: {getattr(self, 'updates_checked', 0)}")
        imports = getattr(self, "imports", Counter())
        print("imports: " + ", ".join(f"{k} {v}" for k, v in sorted(imports.items())) + f" (of {len(self.batches)} batches, seed included)")
        kills = sum(1 for e in self.chaos if "killed_at" in e)
        restarts = sum(1 for e in self.chaos if e.get("restarted"))
        print(f"postmaster kills: {kills}, restarts: {restarts}")
        for e in self.chaos:
            if "killed_at" in e:
                print(f"  kill {e['kill']}: at {e['killed_at']} s{' (import in flight)' if e['import_in_flight'] else ''}, "
                      f"{e['leftover_processes_after_down']} processes left after the pause (gone after {e['leftovers_waited_s']} s), "
                      f"back at {e.get('restarted_at')} s after {len(e['restart_attempts'])} start attempt(s) "
                      f"({', '.join(str(a['s']) + ' s' for a in e['restart_attempts'])})"
                      + (f"; {len(e['leftovers_killed'])} leftover backends killed" if e.get("leftovers_killed") else ""))
        print(f"ready again {getattr(self, 'ready_after', None)} s after the load; lookup-and-read pairs after recovery: "
              f"{getattr(self, 'recovered', 0)}/10")
        if hasattr(self, "registry_seconds"):
            print(f"registry after the restarts: a CLI-issued key accepted after {self.registry_seconds[0]} s, "
                  f"refused after revocation {self.registry_seconds[1] if len(self.registry_seconds) > 1 else None} s")
        verify = getattr(self, "http_verify", None)
        if verify:
            print(f"POST /v1/access-log/verify: {verify['status']} {verify.get('verify')}")
        if hasattr(self, "cli_verify_result"):
            print(f"itaku verify-log: exit {self.cli_verify_result[0]}: {self.cli_verify_result[1]} (anchors: {getattr(self, 'anchors', 'none')})")
        for note in self.notes:
            print(f"note: {note}")
        print(f"seed {self.args.seed}; load {self.args.seconds} s; total {time.monotonic() - started:.1f} s")
        with open(os.path.join(self.args.logs, "faults.json"), "w") as f:
            json.dump({"chaos": self.chaos, "failures": self.failures}, f, ensure_ascii=False, indent=1)
        if self.failures:
            by_check = defaultdict(list)
            for check, detail in self.failures:
                by_check[check].append(detail)
            print(f"\nFAILED: {len(self.failures)} problem(s)")
            for check, details in by_check.items():
                print(f"  {check}: {len(details)}")
                for detail in details[:8]:
                    print(f"    {detail}")
                if len(details) > 8:
                    print(f"    … {len(details) - 8} more (see {self.args.logs}/faults.json)")
        else:
            print("\nPASSED: every check")


class Interrupted(BaseException):
    pass


def interrupted(signum, frame):
    # Once: the report and Deploy/fault's cleanup follow; further signals are ignored.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def main():
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--itaku", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--serve-pid", type=int, required=True)
    parser.add_argument("--pg-user", required=True)
    parser.add_argument("--pg-bin", required=True)
    parser.add_argument("--seconds", type=float, default=70, help="length of the load (default 70)")
    parser.add_argument("--kills", type=int, default=3, help="postmaster kills during the load (default 3)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent agent workers (default 4)")
    parser.add_argument("--down", type=float, default=2.5, help="seconds PostgreSQL stays down after a kill (default 2.5)")
    parser.add_argument("--warmup", type=float, default=8, help="seconds of load before the first kill (default 8)")
    parser.add_argument("--tail", type=float, default=15, help="seconds of load kept after the last kill window (default 15)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--leftover-grace", type=float, default=15,
                        help="seconds a killed postmaster's backends get to exit before they are killed too (default 15)")
    parser.add_argument("--no-analyze", action="store_true", help="do not ANALYZE the records' tables before the load")
    parser.add_argument("--seed-rows", type=int, default=500)
    parser.add_argument("--min-rows", type=int, default=200)
    parser.add_argument("--max-rows", type=int, default=2000)
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    started = time.monotonic()
    run = Run(args)
    code = 1
    try:
        log(f"setting up (seed {args.seed})")
        run.setup()
        log(f"load for {args.seconds:.0f} s: {args.workers} agent workers, imports, searches; {args.kills} postmaster kills")
        run.load()
        log("load done; checking recovery and the log")
        run.recovery()
        run.stop_service()
        run.cli_verify()
        run.check_database()
        code = 1 if run.failures else 0
    except SystemExit as error:
        run.fail("setup", str(error))
        code = 2
    except Exception as error:  # a bug of this script or an unreachable database: report, fail
        run.fail("run", f"{type(error).__name__}: {error}")
        code = 1
    except Interrupted as signal_name:
        run.stop.set()
        run.fail("run", f"interrupted ({signal_name}): the checks did not run")
        code = 130
    finally:
        run.recorder.close()
        run.report(started)
    return code


if __name__ == "__main__":
    sys.exit(main())
