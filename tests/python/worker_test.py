#!/usr/bin/python3
"""End to end: a Python worker and a C++ worker serve one execution.

    worker_test.py --coordinator-bin PATH --sagactl PATH --cxx-worker PATH \
                   --pg-conninfo CONNINFO

(or SAGA_COORDINATOR_BIN, SAGACTL, SAGA_CXX_WORKER, SAGA_TEST_PG). Needs the
generated saga.v1 Python code and this directory on PYTHONPATH (run.sh does
that). Creates a database of its own on the PostgreSQL server, starts
saga-coordinator on a free loopback port, the C++ worker (tiny_worker,
serving tiny.echo) and a saga_worker.StreamWorker (py.*), then:

  1. runs a state machine mixing them: py.double (HeartbeatSeconds, with a
     Compensation), tiny.echo, py.refuse (TaskError caught by a Catch), a
     Compensate state (py.undo), py.big (an output over the payload limit,
     which fails the task with States.DataLimitExceeded, as on Step
     Functions), a .waitForTaskToken task (py.notify, completed by
     SendTaskSuccess) and py.polled, taken by a
     long-poll client (GetActivityTask + SendTaskSuccess);
  2. checks the output, the history's workerName per state, and the pushed
     tasks' idempotency keys, traceparents, callback and compensation fields;
  3. restarts the coordinator on the same port while the Python worker runs
     a task without deadlines: the task is delivered again and completes
     once; then another execution: both workers must have reconnected;
  4. stops a worker while its handler runs: the task is given back and
     delivered again, as the same attempt, to another worker;
  5. stops the Python worker and checks it stopped cleanly;
  6. restarts the coordinator serving mutual TLS (certificates made with
     openssl): a Python worker with grpc.ssl_channel_credentials serves an
     execution started by sagactl --tls-ca/--tls-cert/--tls-key; a
     plaintext client and one without a certificate are refused.
Exit 0 on success, 1 with a message on failure. Child processes are killed
and the database dropped in every case.
"""

import argparse
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import grpc

from saga.v1 import saga_pb2 as pb
from saga.v1 import saga_pb2_grpc as pb_grpc
from saga_worker import StreamWorker, TaskError

PY_WORKER = "py-worker"
POLLER = "py-poller"
CXX_WORKER = "tiny"  # tiny_worker's identity

DEFINITION = {
    "Comment": "A Python worker and a C++ worker serving one execution",
    "StartAt": "Double",
    "States": {
        "Double": {"Type": "Task", "Resource": "py.double", "Parameters": {"x.$": "$.x"},
                   "HeartbeatSeconds": 2, "ResultPath": "$.py",
                   "Compensation": {"Resource": "py.undo",
                                    "Parameters": {"doubled.$": "$.Result.doubled"}},
                   "Next": "Echo"},
        "Echo": {"Type": "Task", "Resource": "tiny.echo",
                 "Parameters": {"doubled.$": "$.py.doubled"}, "ResultPath": "$.cxx",
                 "Next": "Refuse"},
        "Refuse": {"Type": "Task", "Resource": "py.refuse", "ResultPath": None,
                   "Catch": [{"ErrorEquals": ["Py.Refused"], "ResultPath": "$.caught",
                              "Next": "RefuseBare"}],
                   "Next": "RefuseBare"},
        # TaskError without a cause (left out of FailTask) and with an empty
        # one: the Catch sees "Cause": null and "Cause": "" (AWS_NOTES.md 8).
        "RefuseBare": {"Type": "Task", "Resource": "py.refuse", "Parameters": {"bare": True},
                       "ResultPath": None,
                       "Catch": [{"ErrorEquals": ["Py.Refused"], "ResultPath": "$.caught_bare",
                                  "Next": "RefuseEmpty"}],
                       "Next": "RefuseEmpty"},
        "RefuseEmpty": {"Type": "Task", "Resource": "py.refuse", "Parameters": {"empty": True},
                        "ResultPath": None,
                        "Catch": [{"ErrorEquals": ["Py.Refused"],
                                   "ResultPath": "$.caught_empty", "Next": "RollBack"}],
                        "Next": "RollBack"},
        "RollBack": {"Type": "Compensate", "ResultPath": "$.rollback", "Next": "Big"},
        "Big": {"Type": "Task", "Resource": "py.big", "ResultPath": "$.big",
                "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.big",
                           "Next": "Notify"}],
                "Next": "Notify"},
        "Notify": {"Type": "Task", "Resource": "py.notify.waitForTaskToken",
                   "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.notified",
                   "Next": "Poll"},
        "Poll": {"Type": "Task", "Resource": "py.polled",
                 "Parameters": {"doubled.$": "$.py.doubled"}, "ResultPath": "$.polled",
                 "End": True},
    },
}

PAIR_DEFINITION = {
    "StartAt": "Double",
    "States": {
        "Double": {"Type": "Task", "Resource": "py.double", "ResultPath": "$.py",
                   "Next": "Echo"},
        "Echo": {"Type": "Task", "Resource": "tiny.echo", "InputPath": "$.py",
                 "ResultPath": "$.cxx", "End": True},
    },
}

HOLD_DEFINITION = {
    "StartAt": "Hold",
    "States": {"Hold": {"Type": "Task", "Resource": "py.hold", "End": True}},
}

SLOW_DEFINITION = {
    "StartAt": "Slow",
    "States": {"Slow": {"Type": "Task", "Resource": "py.slow", "End": True}},
}

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    print(f"worker_test: {message}", file=sys.stderr, flush=True)


# --- Processes and the database ------------------------------------------------

def with_dbname(conninfo, dbname):
    if re.search(r"(^|\s)dbname=\S+", conninfo):
        return re.sub(r"(^|\s)dbname=\S+", rf"\1dbname={dbname}", conninfo)
    return f"{conninfo} dbname={dbname}"


def psql(conninfo, sql):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise Failure(f"psql {sql!r}: {r.stderr.strip()}")


class Coordinator:
    """A saga-coordinator process; its standard error is kept for reports."""

    def __init__(self, binary, dsn, listen, label, extra=()):
        self.label = label
        self.lines = []
        self.address = None
        self._listening = threading.Event()
        self.proc = subprocess.Popen([binary, "--listen", listen, "--database-url", dsn, *extra],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"saga-coordinator: listening on (\S+)", line)
            if m and self.address is None:
                self.address = m.group(1)
                self._listening.set()
        self._listening.set()  # exited: wake the waiter

    def wait_listening(self, timeout):
        self._listening.wait(timeout)
        if self.address is None:
            self.kill()
            raise Failure(f"{self.label} did not start listening within {timeout} s; "
                          f"its output:\n" + "\n".join(self.lines))
        return self.address

    def terminate(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(5)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Sagactl:
    def __init__(self, binary, address, flags=()):
        self.binary = binary
        self.address = address
        self.flags = list(flags)  # more connection flags (--tls-ca ...)

    def __call__(self, *args, timeout=60, watch=()):
        """Runs sagactl and returns its JSON output. Fails early when a
        process in `watch` (name, Popen) exits while sagactl runs."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([self.binary, "--address", self.address, *self.flags, *args],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
            deadline = time.monotonic() + timeout
            try:
                while True:
                    try:
                        proc.wait(0.5)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    for name, p in watch:
                        if p.poll() is not None:
                            raise Failure(f"{name} exited ({p.returncode}) during sagactl "
                                          f"{args[0]}")
                    if time.monotonic() > deadline:
                        err.seek(0)
                        raise Failure(f"sagactl {' '.join(args)}: no answer within {timeout} s;"
                                      f" its standard error so far:\n{err.read()}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            out.seek(0)
            err.seek(0)
            if proc.returncode != 0:
                raise Failure(f"sagactl {' '.join(args)} exited {proc.returncode}: "
                              f"{err.read().strip()}")
            return json.loads(out.read())


# --- What the Python side does -------------------------------------------------

class PythonSide:
    """The StreamWorker's handlers; they record the tasks they were given."""

    def __init__(self):
        self.tasks = {}  # state name -> Task (the last delivery)
        self.callbacks = queue.Queue()  # Notify's tasks, for the confirmer
        self.holds = []  # py.hold's invocations
        self.hold_started = threading.Event()
        self.hold_release = threading.Event()
        self.lock = threading.Lock()

    def _record(self, task):
        with self.lock:
            self.tasks[task.state_name] = task

    def double(self, payload, task):
        self._record(task)
        if task.heartbeat_seconds:
            # Outlive HeartbeatSeconds: only the automatic heartbeats keep the
            # task from timing out.
            if task.cancelled.wait(task.heartbeat_seconds * 1.5):
                raise TaskError("Py.Cancelled", "the coordinator cancelled the task")
        return {"doubled": 2 * payload["x"]}

    def refuse(self, payload, task):
        self._record(task)
        if payload.get("bare"):
            raise TaskError("Py.Refused")
        if payload.get("empty"):
            raise TaskError("Py.Refused", "")
        raise TaskError("Py.Refused", "refused on purpose")

    def undo(self, payload, task):
        self._record(task)
        return {"undone": payload["doubled"]}

    def hold(self, payload, task):
        """Runs until hold_release is set (across a coordinator restart)."""
        self.holds.append(task)
        self.hold_started.set()
        if not self.hold_release.wait(60):
            raise TaskError("Py.NotReleased", "hold_release was not set within 60 s")
        return {"held": True}

    def big(self, payload, task):
        self._record(task)
        return {"blob": "x" * 300000}  # over the 262,144-byte payload limit

    def notify(self, payload, task):
        self._record(task)
        self.callbacks.put(task)
        return {"dispatched": True}  # only acknowledges the dispatch


def confirm_callbacks(side, stub, errors):
    """Completes the .waitForTaskToken task as a third party would."""
    try:
        task = side.callbacks.get(timeout=90)
        # Wait for the worker's own completion to be acknowledged, so the
        # state is known to be waiting for the token.
        if not task.settled.wait(30):
            raise Failure("the worker's completion of Notify was never acknowledged")
        if task.result_code != 0:
            raise Failure(f"the worker's completion of Notify got code {task.result_code}")
        stub.SendTaskSuccess(pb.SendTaskSuccessRequest(
            task_token=task.token, output=json.dumps({"confirmed": True})), timeout=30)
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"callback confirmer: {e}")


def long_poll(stub, polled, errors):
    """A worker without a stream: GetActivityTask, then SendTaskSuccess."""
    try:
        t = stub.GetActivityTask(pb.GetActivityTaskRequest(
            activity="py.polled", worker_name=POLLER, wait_seconds=60), timeout=70)
        if not t.task_token:
            raise Failure("GetActivityTask(py.polled) returned no task within 60 s")
        polled.append(t)
        payload = json.loads(t.input)
        stub.SendTaskSuccess(pb.SendTaskSuccessRequest(
            task_token=t.task_token,
            output=json.dumps({"polled_by": POLLER, "doubled": payload["doubled"]})), timeout=30)
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"long poll: {e}")


# --- Checks ------------------------------------------------------------------

def check_task_ids(task, scheduled, execution_uuid):
    """idempotency_key is '<execution uuid>/<task id>' with the task id of the
    state's ActivityScheduled (or CompensationScheduled) event; traceparent is
    '00-<uuid hex>-<task id, 16 hex>-01'."""
    m = re.fullmatch(rf"({UUID})/(\d+)", task.idempotency_key)
    check(m, f"{task.state_name}: idempotency_key {task.idempotency_key!r} is not UUID/TASKID")
    uuid, task_id = m.group(1), int(m.group(2))
    check(uuid == execution_uuid,
          f"{task.state_name}: idempotency_key {task.idempotency_key!r} names another "
          f"execution than {execution_uuid}")
    check(task_id == scheduled[task.state_name],
          f"{task.state_name}: idempotency_key task id {task_id}, history says "
          f"{scheduled[task.state_name]}")
    want = f"00-{uuid.replace('-', '')}-{task_id:016x}-01"
    check(task.traceparent == want,
          f"{task.state_name}: traceparent {task.traceparent!r}, expected {want!r}")


def scheduled_task_ids(events):
    ids = {}
    for e in events:
        if e["type"] in ("ActivityScheduled", "CompensationScheduled"):
            ids[e["stateName"]] = e["taskId"]
    return ids


def check_workers(events, expected):
    """Every ActivityStarted/CompensationStarted names the expected worker."""
    seen = {}
    for e in events:
        if e["type"] in ("ActivityStarted", "CompensationStarted"):
            seen.setdefault(e["stateName"], []).append(e.get("workerName"))
    for state, worker in expected.items():
        check(seen.get(state), f"no ActivityStarted event for {state}: {seen}")
        check(all(w == worker for w in seen[state]),
              f"{state} was started by {seen[state]}, expected {worker}")


def run_main_execution(ctl, side, stub, watch):
    errors, polled = [], []
    threads = [threading.Thread(target=long_poll, args=(stub, polled, errors), daemon=True),
               threading.Thread(target=confirm_callbacks, args=(side, stub, errors), daemon=True)]
    for t in threads:
        t.start()
    ctl("create-state-machine", "--name", "Mixed", "--definition", write_temp(DEFINITION))
    result = ctl("start-execution", "--state-machine", "Mixed", "--name", "mixed-1",
                 "--input", json.dumps({"x": 21}), "--wait", timeout=120, watch=watch)
    for t in threads:
        t.join(5)
    check(not errors, "; ".join(errors))
    check(result["status"] == "SUCCEEDED",
          f"execution ended {result['status']}: {result.get('error')} {result.get('cause')}")
    out = result["output"]
    check(out.get("py") == {"doubled": 42}, f"Python result missing: {out}")
    check(out.get("cxx") == {"echo": {"doubled": 42}, "attempt": 0}, f"C++ result missing: {out}")
    check(out.get("caught") == {"Error": "Py.Refused", "Cause": "refused on purpose"},
          f"caught TaskError missing: {out}")
    check(out.get("caught_bare") == {"Error": "Py.Refused", "Cause": None},
          f"a TaskError without a cause: {out.get('caught_bare')!r}")
    check(out.get("caught_empty") == {"Error": "Py.Refused", "Cause": ""},
          f"a TaskError with an empty cause: {out.get('caught_empty')!r}")
    check(out.get("rollback") == [{"state": "Double", "status": "COMPENSATED"}],
          f"compensation missing: {out}")
    check(out.get("big", {}).get("Error") == "States.DataLimitExceeded",
          f"an oversized output did not fail the task: {out.get('big')}")
    check(out.get("notified") == {"confirmed": True}, f"callback result missing: {out}")
    check(out.get("polled") == {"polled_by": POLLER, "doubled": 42}, f"long-poll result: {out}")

    events = ctl("get-execution-history", result["executionId"])["events"]
    check_workers(events, {"Double": PY_WORKER, "Echo": CXX_WORKER, "Refuse": PY_WORKER,
                           "RefuseBare": PY_WORKER, "RefuseEmpty": PY_WORKER, "RollBack": PY_WORKER, "Big": PY_WORKER, "Notify": PY_WORKER,
                           "Poll": POLLER})
    failed = [e for e in events if e["type"] == "ActivityFailed" and e["stateName"] == "Refuse"]
    check(failed and failed[0].get("error") == "Py.Refused" and
          failed[0].get("cause") == "refused on purpose", f"ActivityFailed of Refuse: {failed}")
    timeouts = [e for e in events if e["type"] == "ActivityTimedOut"]
    check(not timeouts, f"a task timed out (heartbeats not sent?): {timeouts}")

    # The pushed tasks' fields.
    scheduled = scheduled_task_ids(events)
    tasks = side.tasks
    double = tasks["Double"]
    m = re.fullmatch(rf"({UUID})/\d+", double.idempotency_key)
    check(m, f"Double: idempotency_key {double.idempotency_key!r} is not UUID/TASKID")
    execution_uuid = m.group(1)
    for name in ("Double", "Refuse", "RollBack", "Notify"):
        check_task_ids(tasks[name], scheduled, execution_uuid)
    check(double.heartbeat_seconds == 2 and double.timeout_seconds == 0 and
          double.deadline_unix_ms == 0 and double.attempt == 0,
          "Double: heartbeat_seconds/timeout_seconds/deadline/attempt "
          f"{double.heartbeat_seconds}/{double.timeout_seconds}/{double.deadline_unix_ms}/"
          f"{double.attempt}")
    check(double.execution_arn == result["executionId"] and double.activity == "py.double",
          f"Double: execution_arn {double.execution_arn!r} activity {double.activity!r}")
    check(not double.callback and not double.compensation, "Double: callback/compensation set")
    undo = tasks["RollBack"]
    check(undo.compensation and undo.compensated_state == "Double" and
          undo.compensated_idempotency_key == double.idempotency_key and
          undo.activity == "py.undo" and not undo.callback,
          f"RollBack: compensation={undo.compensation} compensated_state="
          f"{undo.compensated_state!r} compensated_idempotency_key="
          f"{undo.compensated_idempotency_key!r} activity={undo.activity!r}")
    notify = tasks["Notify"]
    check(notify.callback and notify.activity == "py.notify" and not notify.compensation,
          f"Notify: callback={notify.callback} activity={notify.activity!r}")
    check(json.loads(notify.input_json) == {"token": notify.token},
          "Notify: $$.Task.Token differs from the pushed task_token")

    # The long-poll response carries the same fields.
    (t,) = polled
    m = re.fullmatch(rf"({UUID})/(\d+)", t.idempotency_key)
    check(m and m.group(1) == execution_uuid and int(m.group(2)) == scheduled["Poll"],
          f"GetActivityTask: idempotency_key {t.idempotency_key!r}")
    want = f"00-{execution_uuid.replace('-', '')}-{scheduled['Poll']:016x}-01"
    check(t.traceparent == want, f"GetActivityTask: traceparent {t.traceparent!r}, want {want!r}")
    check(t.state_name == "Poll" and t.execution_arn == result["executionId"] and
          not t.callback and not t.compensation and t.attempt == 0,
          f"GetActivityTask: {t}")
    return result


def run_give_back(ctl, address):
    """stop() gives a running task back; another worker gets the same attempt."""
    started, redelivered, deliveries = threading.Event(), threading.Event(), []

    def slow(payload, task):
        deliveries.append(task)
        started.set()
        task.cancelled.wait(60)  # runs until stop() gives it back
        return {"finished_by": "py-slow-1"}

    def quick(payload, task):
        deliveries.append(task)
        redelivered.set()
        return {"finished_by": "py-slow-2"}

    ctl("create-state-machine", "--name", "Slow", "--definition", write_temp(SLOW_DEFINITION))
    first = StreamWorker(address, "py-slow-1", {"py.slow": slow}, concurrency=1)
    first.start()
    try:
        arn = ctl("start-execution", "--state-machine", "Slow", "--input", "{}")["executionArn"]
        check(started.wait(30), "py.slow was not delivered to py-slow-1 within 30 s")
    finally:
        first.stop(grace=0.2)
    check(deliveries[0].cancelled.is_set(), "stop() did not cancel the running handler")
    check(first.stats["tasks_released"] == 1 and first.stats["results_refused"] == 0,
          f"py-slow-1 stats after stop: {first.stats}")
    second = StreamWorker(address, "py-slow-2", {"py.slow": quick}, concurrency=1)
    second.start()
    try:
        check(redelivered.wait(30),
              "the given-back task was not delivered to py-slow-2 within 30 s")
        a, b = deliveries
        # Acknowledged: the completion is committed and the execution closed.
        check(b.settled.wait(30) and b.result_code == 0,
              f"py-slow-2's result: code {b.result_code}")
    finally:
        second.stop(grace=5)
    result = ctl("describe-execution", arn)
    check(result["status"] == "SUCCEEDED" and result["output"] == {"finished_by": "py-slow-2"},
          f"given-back task: {result}")
    check(len(deliveries) == 2, f"{len(deliveries)} deliveries of py.slow")
    check(a.idempotency_key == b.idempotency_key and a.token == b.token and
          a.attempt == b.attempt == 0,
          f"redelivery is not the same attempt: {a.idempotency_key} attempt {a.attempt}, "
          f"{b.idempotency_key} attempt {b.attempt}")
    events = ctl("get-execution-history", result["executionId"])["events"]
    workers = [e.get("workerName") for e in events if e["type"] == "ActivityStarted"]
    check(workers == ["py-slow-1", "py-slow-2"], f"ActivityStarted workers: {workers}")


_temp_files = []
_temp_dirs = []


def write_temp(obj):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(obj, f)
    f.close()
    _temp_files.append(f.name)
    return f.name


# --- TLS ---------------------------------------------------------------------

TLS_DEFINITION = {"StartAt": "Secure", "States": {
    "Secure": {"Type": "Task", "Resource": "py.secure", "End": True}}}


def make_pki(folder):
    """A CA, a server certificate for 127.0.0.1 and a client certificate of
    that CA, made with the openssl command in `folder`."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*a):
        r = subprocess.run(["openssl", *a], cwd=folder, capture_output=True, text=True)
        check(r.returncode == 0, f"openssl {' '.join(a)}: {r.stderr}")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=saga-python-test-ca")
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=saga-python-{name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                *(["-extfile", "san.ext"] if name == "server" else []))
    return lambda name: os.path.join(folder, name)


def run_over_tls(args, dsn):
    """Step 6; returns the TLS coordinator (the caller kills it; killed here
    when the step fails)."""
    folder = tempfile.mkdtemp(prefix="saga-python-tls-")
    _temp_dirs.append(folder)
    path = make_pki(folder)
    coordinator = Coordinator(args.coordinator_bin, dsn, "127.0.0.1:0", "coordinator (TLS)", extra=[
        "--tls-cert", path("server.pem"), "--tls-key", path("server.key"),
        "--tls-client-ca", path("ca.pem")])
    try:
        run_tls_execution(args, coordinator, path)
    except BaseException:
        coordinator.kill()
        log(f"{coordinator.label} output:\n  " + "\n  ".join(coordinator.lines[-40:]))
        raise
    return coordinator


def run_tls_execution(args, coordinator, path):
    address = coordinator.wait_listening(30)
    check(any("TLS with client certificates" in line for line in coordinator.lines),
          "the coordinator did not say it serves TLS with client certificates")

    def read(name):
        with open(path(name), "rb") as f:
            return f.read()
    worker = StreamWorker(address, "py-tls-worker", {
        "py.secure": lambda payload, task: {"secure": payload, "attempt": task.attempt}},
        credentials=grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"), private_key=read("client.key"),
            certificate_chain=read("client.pem")))
    worker.start()
    try:
        check(worker.wait_connected(20), "the Python worker did not register over TLS within 20 s")
        ctl = Sagactl(args.sagactl, address, ["--tls-ca", path("ca.pem"), "--tls-cert",
                                              path("client.pem"), "--tls-key", path("client.key")])
        ctl("create-state-machine", "--name", "Secure", "--definition", write_temp(TLS_DEFINITION))
        result = ctl("start-execution", "--state-machine", "Secure", "--input",
                     json.dumps({"n": 7}), "--wait", timeout=60,
                     watch=[("saga-coordinator", coordinator.proc)])
        check(result["status"] == "SUCCEEDED" and
              result["output"] == {"secure": {"n": 7}, "attempt": 0},
              f"over TLS: {result['status']} {result.get('output')} {result.get('error')}")
        events = ctl("get-execution-history", result["executionId"])["events"]
        check_workers(events, {"Secure": "py-tls-worker"})
        # Refused: plaintext, and TLS without a client certificate.
        for label, channel in (
                ("plaintext", grpc.insecure_channel(address)),
                ("no client certificate", grpc.secure_channel(
                    address, grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))))):
            try:
                pb_grpc.SagaCoordinatorStub(channel).ListStateMachines(
                    pb.ListStateMachinesRequest(), timeout=10)
                raise Failure(f"a {label} client was let in")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAVAILABLE,
                      f"a {label} client got {e.code()}, not UNAVAILABLE")
            finally:
                channel.close()
        worker.stop(grace=5)
        check(worker.stats["tasks_succeeded"] == 1 and worker.stats["results_refused"] == 0,
              f"the TLS worker's stats: {worker.stats}")
    finally:
        worker.stop(grace=0)


# --- Main --------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator-bin", default=os.environ.get("SAGA_COORDINATOR_BIN"))
    p.add_argument("--sagactl", default=os.environ.get("SAGACTL"))
    p.add_argument("--cxx-worker", default=os.environ.get("SAGA_CXX_WORKER"))
    p.add_argument("--pg-conninfo", default=os.environ.get("SAGA_TEST_PG"))
    a = p.parse_args()
    missing = [f"--{k.replace('_', '-')}" for k, v in vars(a).items() if not v]
    if missing:
        p.error("missing " + ", ".join(missing) + " (or SAGA_COORDINATOR_BIN, SAGACTL, "
                "SAGA_CXX_WORKER, SAGA_TEST_PG)")
    for k in ("coordinator_bin", "sagactl", "cxx_worker"):
        if not os.access(getattr(a, k), os.X_OK):
            p.error(f"--{k.replace('_', '-')}: {getattr(a, k)} is not an executable")
    return a


def main():
    args = parse_args()
    started = time.monotonic()
    dbname = "t_py_" + secrets.token_hex(8)
    coordinator = cxx = worker = side = None
    cxx_log = tempfile.TemporaryFile("w+")
    created_db = False
    try:
        psql(args.pg_conninfo, f"CREATE DATABASE {dbname}")
        created_db = True
        dsn = with_dbname(args.pg_conninfo, dbname)

        coordinator = Coordinator(args.coordinator_bin, dsn, "127.0.0.1:0", "coordinator")
        address = coordinator.wait_listening(30)
        log(f"coordinator listening on {address}")
        cxx = subprocess.Popen([args.cxx_worker, "--address", address], stdin=subprocess.DEVNULL,
                               stdout=cxx_log, stderr=subprocess.STDOUT)
        side = PythonSide()
        worker = StreamWorker(address, PY_WORKER, {
            "py.double": side.double, "py.refuse": side.refuse, "py.undo": side.undo,
            "py.notify": side.notify, "py.hold": side.hold,
            "py.big": side.big}, concurrency=2)
        worker.start()
        check(worker.wait_connected(20), "the Python worker did not register within 20 s")
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.SagaCoordinatorStub(channel)
        ctl = Sagactl(args.sagactl, address)

        # 1-2. One execution across both workers and a long-poll client.
        watch = [("tiny_worker", cxx), ("saga-coordinator", coordinator.proc)]
        run_main_execution(ctl, side, stub, watch)
        check(worker.stats["heartbeats_sent"] >= 2,
              f"the Python worker sent {worker.stats['heartbeats_sent']} heartbeats for a "
              "task that ran 1.5 x HeartbeatSeconds")
        log(f"mixed execution SUCCEEDED ({time.monotonic() - started:.1f} s); "
            f"Python worker stats {worker.stats}")

        # 3. Restart the coordinator on the same port while a handler runs a
        # task without deadlines. Both workers reconnect; the new coordinator
        # delivers the task again (the old one gave it back when the stream
        # ended) and the Python worker keeps its running handler.
        ctl("create-state-machine", "--name", "Hold", "--definition", write_temp(HOLD_DEFINITION))
        hold_arn = ctl("start-execution", "--state-machine", "Hold",
                       "--input", "{}")["executionArn"]
        check(side.hold_started.wait(30), "py.hold did not reach the Python worker within 30 s")
        channel.close()
        code = coordinator.terminate()
        check(code == 0, f"coordinator exited {code} on SIGTERM")
        coordinator = Coordinator(args.coordinator_bin, dsn, address, "coordinator (restarted)")
        coordinator.wait_listening(30)
        check(worker.wait_stats(lambda s: s["redelivered_while_running"] >= 1, 30),
              "py.hold was not delivered again after the restart")
        side.hold_release.set()
        (held,) = side.holds
        check(held.settled.wait(30) and held.result_code == 0,
              f"py.hold's result after the restart: code {held.result_code}")
        result = ctl("describe-execution", hold_arn)
        check(result["status"] == "SUCCEEDED" and result["output"] == {"held": True},
              f"Hold after the restart: {result}")
        events = ctl("get-execution-history", hold_arn)["events"]
        workers = [e.get("workerName") for e in events if e["type"] == "ActivityStarted"]
        check(workers == [PY_WORKER, PY_WORKER], f"Hold's ActivityStarted workers: {workers}")
        ctl("create-state-machine", "--name", "Pair", "--definition", write_temp(PAIR_DEFINITION))
        result = ctl("start-execution", "--state-machine", "Pair", "--input",
                     json.dumps({"x": 5}), "--wait", timeout=90,
                     watch=[("tiny_worker", cxx), ("saga-coordinator", coordinator.proc)])
        check(result["status"] == "SUCCEEDED" and result["output"].get("cxx") ==
              {"echo": {"doubled": 10}, "attempt": 0},
              f"after the restart: {result['status']} {result.get('output')} "
              f"{result.get('error')} {result.get('cause')}")
        events = ctl("get-execution-history", result["executionId"])["events"]
        check_workers(events, {"Double": PY_WORKER, "Echo": CXX_WORKER})
        check(worker.stats["connections"] >= 2,
              f"the Python worker registered {worker.stats['connections']} times")
        log(f"after a coordinator restart both workers served again "
            f"({time.monotonic() - started:.1f} s)")

        # 4. Give-back: a task released by stop() goes to another worker.
        run_give_back(ctl, address)
        log(f"a task given back at stop was redelivered as the same attempt "
            f"({time.monotonic() - started:.1f} s)")

        # 5. A clean stop: nothing to give back, no result refused.
        t0 = time.monotonic()
        worker.stop(grace=5)
        stopped_in = time.monotonic() - t0
        stats, worker = worker.stats, None
        check(stopped_in < 3, f"StreamWorker.stop took {stopped_in:.1f} s")
        check(stats["tasks_released"] == 0 and stats["results_refused"] == 0 and
              # py.big's result is accepted (the coordinator fails the task
              # with States.DataLimitExceeded); py.refuse's three TaskErrors
              # failed.
              stats["tasks_succeeded"] == 6 and stats["tasks_failed"] == 3,
              f"Python worker stats after stop: {stats}")
        check(cxx.poll() is None, f"tiny_worker exited with {cxx.returncode}")

        # 6. The same over mutual TLS.
        code = coordinator.terminate()
        check(code == 0, f"coordinator exited {code} on SIGTERM")
        coordinator = run_over_tls(args, dsn)
        log(f"a Python worker and sagactl over mutual TLS ({time.monotonic() - started:.1f} s)")
        log(f"PASS in {time.monotonic() - started:.1f} s")
        return 0
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        if isinstance(e, Failure):
            log(f"FAIL: {e}")
        else:
            log("FAIL: " + "".join(traceback.format_exception(e)))
        if coordinator is not None:
            log("coordinator output:\n  " + "\n  ".join(coordinator.lines[-40:]))
        cxx_log.seek(0)
        tail = cxx_log.read()[-4000:]
        if tail:
            log("tiny_worker output:\n" + tail)
        return 1
    finally:
        if side is not None:
            side.hold_release.set()  # (a handler left blocked would hold up stop)
        if worker is not None:
            worker.stop(grace=0)
        if cxx is not None and cxx.poll() is None:
            cxx.kill()
            cxx.wait()
        if coordinator is not None:
            coordinator.kill()
        if created_db:
            try:
                psql(args.pg_conninfo, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            except Failure as e:
                log(f"cleanup: {e}")
        for f in _temp_files:
            os.unlink(f)
        for d in _temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
