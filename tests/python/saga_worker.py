"""A Saga Coordinator worker in Python, over the WorkerStream protocol.

This module is the reference implementation of the worker protocol outside
C++ (worker-sdk/README.md describes the protocol). It needs only the code
that protoc generates from proto/saga/v1/saga.proto and grpcio:

    protoc --python_out=GEN --grpc_out=GEN \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
        -I proto saga/v1/saga.proto
    PYTHONPATH=GEN:tests/python python3 my_worker.py

Usage:

    from saga_worker import StreamWorker, TaskError

    def charge(payload, task):
        if payload["amount"] > 1000:
            raise TaskError("Payment.Declined", "over the limit")
        return {"charged": payload["amount"], "key": task.idempotency_key}

    worker = StreamWorker("127.0.0.1:7233", "payments-1",
                          {"payments.charge": charge}, concurrency=4)
    worker.start()
    ...
    worker.stop()

A handler gets the task's input (parsed JSON) and a Task; it returns a
JSON-serialisable result or raises TaskError(error, cause), which the state's
Retry and Catch match. While it runs, the worker sends heartbeats (every third
of HeartbeatSeconds); `task.cancelled` is set once the coordinator says the
task is no longer open (execution stopped or finished, attempt timed out), and
a long handler should check it.

What the worker does on the stream, in order:
  1. register {identity, activities, max_concurrency, initial_credits}; the
     coordinator answers `registered`.
  2. The coordinator pushes `task` messages, never more than the credits
     granted: `initial_credits` at first, +1 per `credit` message.
  3. Each task runs in a thread pool; its result goes back as `complete` or
     `fail` with a fresh request_id, answered by an `ack` with that id.
     Once the ack is final, the worker grants one credit.
  4. On a broken stream it reconnects with jittered exponential backoff,
     registers again (asking for fewer credits while handlers still run) and
     sends again every result that was not acknowledged.
  5. stop() takes no more tasks, lets running handlers finish for a grace
     period, gives the rest back (`release`), then half-closes the stream.
"""

import json
import logging
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from saga.v1 import saga_pb2 as pb
from saga.v1 import saga_pb2_grpc as pb_grpc

log = logging.getLogger("saga_worker")

# google.rpc.Code values found in WorkerAck.code.
OK = 0
INVALID_ARGUMENT = 3
NOT_FOUND = 5
FAILED_PRECONDITION = 9  # the task is no longer open (stale token)
ABORTED = 10
INTERNAL = 13
UNAVAILABLE = 14
# The coordinator could not store the message now (database down): send again.
RETRY_LATER = {ABORTED, INTERNAL, UNAVAILABLE}


class _ProtocolError(Exception):
    pass


class TaskError(Exception):
    """A task failure, matched by the state's Retry and Catch (ErrorEquals)."""

    def __init__(self, error=None, cause=None):
        super().__init__(f"{error}: {cause}")
        self.error = error  # None: left out (a Catch then sees "Error": null)
        self.cause = cause  # None: left out; "" is sent as an empty cause


class Task:
    """A pushed task as a handler sees it (fields as in saga.v1.PushedTask)."""

    def __init__(self, worker, pushed):
        self._worker = worker
        self.token = pushed.task_token
        self.activity = pushed.activity
        self.input_json = pushed.input
        self.execution_arn = pushed.execution_arn
        self.state_name = pushed.state_name
        self.attempt = pushed.attempt  # 0 for the first try
        # The same for every delivery of this attempt: key side effects on it.
        self.idempotency_key = pushed.idempotency_key
        self.traceparent = pushed.traceparent
        self.timeout_seconds = pushed.timeout_seconds  # 0: none
        self.heartbeat_seconds = pushed.heartbeat_seconds  # 0: none
        self.deadline_unix_ms = pushed.deadline_unix_ms  # 0: none
        # .waitForTaskToken: returning only acknowledges the dispatch; the
        # state completes when someone calls SendTaskSuccess with the token.
        self.callback = pushed.callback
        # A compensating transaction undoing the Task `compensated_state`.
        self.compensation = pushed.compensation
        self.compensated_state = pushed.compensated_state
        self.compensated_idempotency_key = pushed.compensated_idempotency_key
        self.scheduled_unix_us = pushed.scheduled_unix_us
        # Set when the coordinator says the task is no longer open, or when
        # stop() gave the task back: the handler should return.
        self.cancelled = threading.Event()
        # Set when the coordinator answered this task's result; `result_code`
        # is that answer (0 accepted, 9 stale: timed out, retried, finished).
        self.settled = threading.Event()
        self.result_code = None

    def heartbeat(self):
        """Sends a heartbeat now; False once the task is cancelled (the answer
        arrives asynchronously: `cancelled` is set when it says so)."""
        if not self.cancelled.is_set():
            self._worker._send_heartbeat(self)
        return not self.cancelled.is_set()


class _Running:
    """Book-keeping for a task pushed to this worker and not finished."""

    def __init__(self, task, every):
        self.task = task
        self.every = every  # seconds between automatic heartbeats
        self.next_heartbeat = time.monotonic() + every
        self.released = False  # given back by stop(): its result is dropped


class _Pending:
    """A message waiting for its ack."""

    def __init__(self, msg, durable, on_ack):
        self.msg = msg
        self.durable = durable  # results and give-backs survive reconnects
        self.on_ack = on_ack
        self.resend_at = None


class StreamWorker:
    def __init__(self, address, identity, activities, concurrency=4,
                 cancel_check_seconds=5.0, reconnect_min=0.1, reconnect_max=5.0,
                 credentials=None):
        if not activities:
            raise ValueError("activities: give at least one")
        self.address = address
        self.identity = identity
        self.activities = dict(activities)
        self.concurrency = concurrency
        # Tasks without HeartbeatSeconds are heartbeated this often only to
        # learn early that they were cancelled (None: never).
        self.cancel_check_seconds = cancel_check_seconds
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.stats = {"connections": 0, "tasks_started": 0, "tasks_succeeded": 0,
                      "tasks_failed": 0, "results_refused": 0, "tasks_released": 0,
                      "heartbeats_sent": 0, "redelivered_while_running": 0}

        self._cv = threading.Condition()
        self._running = {}  # task token -> _Running
        self._outbox = {}  # request id -> _Pending
        self._next_request = 1
        self._outgoing = None  # the connected stream's send queue, or None
        self._call = None
        self._started = self._stopping = self._closing = False
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix=f"{identity}-handler")
        # credentials: grpc.ssl_channel_credentials(...) for a coordinator
        # serving TLS (--tls-cert/--tls-key); None: plaintext.
        options = [
            ("grpc.keepalive_time_ms", 10000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            # Keep pinging while idle (gRPC stops after two pings without
            # data), so that a coordinator gone silently is noticed.
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", int(reconnect_min * 1000)),
            # Not grpc.min_reconnect_backoff_ms: gRPC core takes it as the
            # minimum connect timeout, failing handshakes slower than that.
            ("grpc.max_reconnect_backoff_ms", int(reconnect_max * 1000)),
        ]
        self._channel = (grpc.secure_channel(address, credentials, options=options)
                         if credentials is not None else
                         grpc.insecure_channel(address, options=options))
        self._stub = pb_grpc.SagaCoordinatorStub(self._channel)
        self._threads = []

    # --- Life cycle -----------------------------------------------------------

    def start(self):
        """Connects and serves in background threads; returns at once."""
        with self._cv:
            if self._started:
                return
            self._started = True
        for target, name in ((self._connection_loop, "conn"), (self._ticker_loop, "ticker")):
            t = threading.Thread(target=target, name=f"{self.identity}-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def wait_connected(self, timeout):
        """True once registered with a coordinator (within `timeout` s)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._outgoing is not None, timeout)

    @property
    def connected(self):
        with self._cv:
            return self._outgoing is not None

    def stop(self, grace=10.0):
        """Stops taking tasks, waits up to `grace` s for running handlers,
        gives the others back (they see task.cancelled) and closes the stream."""
        with self._cv:
            if not self._started or self._stopping:
                return
            self._stopping = True
            self._cv.wait_for(lambda: not self._running, grace)
            leftovers = [r for r in self._running.values() if not r.released]
            for r in leftovers:
                r.released = True
                r.task.cancelled.set()
        for r in leftovers:
            self._release(r.task.token)
        with self._cv:
            # Results and give-backs reach the coordinator if it is reachable.
            self._cv.wait_for(lambda: self._outgoing is None or not any(
                p.durable for p in self._outbox.values()), 5.0)
            self._closing = True
            outgoing, call = self._outgoing, self._call
            self._cv.notify_all()
        if outgoing is not None:
            outgoing.put(None)  # half-close: the coordinator ends the stream
        conn = self._threads[0]
        conn.join(5.0)
        if conn.is_alive() and call is not None:
            call.cancel()
        for t in self._threads:
            t.join()
        self._pool.shutdown(wait=True)
        self._channel.close()

    def wait_stats(self, predicate, timeout):
        """Waits until predicate(stats) is true; False after `timeout` s."""
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self.stats), timeout)

    def _count(self, name):
        with self._cv:
            self.stats[name] += 1
            self._cv.notify_all()

    # --- Sending --------------------------------------------------------------

    def _send(self, msg, durable=True, on_ack=None):
        """Gives `msg` (complete/fail/heartbeat/release) a request id and sends
        it if connected. Durable messages wait in the outbox until acked."""
        with self._cv:
            request_id = self._next_request
            self._next_request += 1
            getattr(msg, msg.WhichOneof("message")).request_id = request_id
            if not durable and self._outgoing is None:
                return False  # a heartbeat while disconnected: skip it
            self._outbox[request_id] = _Pending(msg, durable, on_ack)
            if self._outgoing is not None:
                self._outgoing.put(msg)
        return True

    def _grant_credit(self):
        with self._cv:
            if self._outgoing is not None and not self._stopping:
                self._outgoing.put(pb.WorkerMessage(credit=pb.GrantCredit(tasks=1)))

    def _release(self, token):
        def on_ack(ack):
            self._count("tasks_released")

        self._send(pb.WorkerMessage(release=pb.ReleaseTask(task_token=token)), on_ack=on_ack)

    def _send_heartbeat(self, task):
        def on_ack(ack):
            if ack.cancelled or ack.code in (FAILED_PRECONDITION, NOT_FOUND):
                task.cancelled.set()

        if self._send(pb.WorkerMessage(heartbeat=pb.HeartbeatTask(task_token=task.token)),
                      durable=False, on_ack=on_ack):
            self._count("heartbeats_sent")

    # --- Receiving ------------------------------------------------------------

    def _on_task(self, pushed):
        task = Task(self, pushed)
        with self._cv:
            if task.token in self._running:
                # Delivered again while our handler still runs it: the stream
                # broke and the coordinator gave the task back.
                action = "keep"
                self.stats["redelivered_while_running"] += 1
            elif self._stopping:
                action = "give back"
            else:
                action = "run"
                if task.heartbeat_seconds:
                    every = max(task.heartbeat_seconds / 3, 0.1)
                else:
                    every = self.cancel_check_seconds or float("inf")
                self._running[task.token] = _Running(task, every)
                self.stats["tasks_started"] += 1
            self._cv.notify_all()
        if action == "keep":
            self._grant_credit()  # keep the running handler; free this delivery's slot
        elif action == "give back":
            self._release(task.token)  # pushed while stopping: not ours to run
        else:
            self._pool.submit(self._execute, task)

    def _on_ack(self, ack):
        with self._cv:
            pending = self._outbox.get(ack.request_id)
            if pending is None:
                return
            if pending.durable and ack.code in RETRY_LATER:
                pending.resend_at = time.monotonic() + 0.2
                self._cv.notify_all()
                return
            del self._outbox[ack.request_id]
            self._cv.notify_all()
        if pending.on_ack is not None:
            pending.on_ack(ack)

    # --- Running handlers -----------------------------------------------------

    def _execute(self, task):
        handler = self.activities.get(task.activity)
        try:
            if handler is None:
                raise TaskError("Saga.NoHandler", f"no handler for activity '{task.activity}'")
            payload = json.loads(task.input_json) if task.input_json else None
            output = json.dumps(handler(payload, task))
            msg = pb.WorkerMessage(complete=pb.CompleteTask(task_token=task.token, output=output))
        except TaskError as e:
            # proto3 optional fields: only what the error has is set.
            given = {k: v for k, v in (("error", e.error), ("cause", e.cause)) if v is not None}
            msg = pb.WorkerMessage(fail=pb.FailTask(task_token=task.token, **given))
        except Exception as e:  # noqa: BLE001 - a handler bug fails the task
            log.exception("%s: handler of %s raised", self.identity, task.activity)
            msg = pb.WorkerMessage(fail=pb.FailTask(task_token=task.token,
                                                    error="Saga.HandlerException",
                                                    cause=f"{type(e).__name__}: {e}"))
        with self._cv:
            running = self._running.pop(task.token, None)
            self._cv.notify_all()
        if running is None or running.released:
            return  # given back by stop(): the coordinator delivers it again
        self._send_result(task, msg)

    def _send_result(self, task, msg):
        succeeded = msg.WhichOneof("message") == "complete"

        def on_ack(ack):
            if succeeded and ack.code == INVALID_ARGUMENT:
                # The output was refused (not JSON): the task would stay
                # open, so fail it instead.
                self._send_result(task, pb.WorkerMessage(fail=pb.FailTask(
                    task_token=task.token, error="Saga.InvalidOutput", cause=ack.message)))
                return
            if ack.code == OK:
                self._count("tasks_succeeded" if succeeded else "tasks_failed")
            else:
                self._count("results_refused")
                log.warning("%s: result for %s refused: code %d %s", self.identity,
                            task.state_name, ack.code, ack.message)
            task.result_code = ack.code
            task.settled.set()
            # The slot is free: one more task. Granted after the final ack,
            # because the coordinator caps credits at max_concurrency minus
            # the tasks it still counts as held by this worker (a result not
            # stored yet still holds its slot there).
            self._grant_credit()

        self._send(msg, on_ack=on_ack)

    # --- Background threads ---------------------------------------------------

    def _ticker_loop(self):
        """Automatic heartbeats, and results the coordinator asked to resend."""
        while True:
            with self._cv:
                if self._closing:
                    return
                now = time.monotonic()
                beat = []
                for r in self._running.values():
                    if not r.released and r.next_heartbeat <= now:
                        beat.append(r.task)
                        r.next_heartbeat = now + r.every
                resend = []
                for p in self._outbox.values():
                    if p.resend_at is not None and p.resend_at <= now:
                        p.resend_at = None
                        resend.append(p.msg)
                if not beat and not resend:
                    wake = [r.next_heartbeat for r in self._running.values() if not r.released]
                    wake += [p.resend_at for p in self._outbox.values()
                             if p.resend_at is not None]
                    self._cv.wait(min([1.0] + [w - now for w in wake]))
                    continue
                outgoing = self._outgoing
            for task in beat:
                self._send_heartbeat(task)
            if outgoing is not None:  # (else they go again on reconnection)
                for m in resend:
                    outgoing.put(m)

    def _connection_loop(self):
        backoff = self.reconnect_min
        while True:
            with self._cv:
                if self._closing:
                    return
                busy = len(self._running)
                initial = 0 if self._stopping else max(0, self.concurrency - busy)
                # Tasks still held (running, or their result not acked yet):
                # every other task started for this identity is redelivered.
                held = [t for t, r in self._running.items() if not r.released]
                for p in self._outbox.values():
                    kind = p.msg.WhichOneof("message")
                    if kind in ("complete", "fail"):
                        held.append(getattr(p.msg, kind).task_token)
            outgoing = queue.Queue()
            outgoing.put(pb.WorkerMessage(register=pb.RegisterWorker(
                identity=self.identity, activities=sorted(self.activities),
                max_concurrency=self.concurrency, initial_credits=initial,
                held_task_tokens=held)))
            call = self._stub.WorkerStream(_messages(outgoing))
            registered = False
            try:
                with self._cv:
                    self._call = call
                first = next(call)
                if first.WhichOneof("message") != "registered":
                    call.cancel()
                    raise _ProtocolError(f"expected registered first, got {first}")
                registered = True
                with self._cv:
                    self._outgoing = outgoing
                    self.stats["connections"] += 1
                    unacked = [p.msg for p in self._outbox.values()]
                    self._cv.notify_all()
                log.info("%s: registered as %s", self.identity, first.registered.worker_id)
                for m in unacked:
                    outgoing.put(m)
                backoff = self.reconnect_min
                for msg in call:
                    kind = msg.WhichOneof("message")
                    if kind == "task":
                        self._on_task(msg.task)
                    elif kind == "ack":
                        self._on_ack(msg.ack)
            except (grpc.RpcError, StopIteration, _ProtocolError) as e:
                code = e.code() if isinstance(e, grpc.RpcError) else None
                if not registered and code not in (grpc.StatusCode.UNAVAILABLE,
                                                   grpc.StatusCode.CANCELLED):
                    # A refused registration (bad activity name...) will not
                    # fix itself: say why and retry at the slowest pace.
                    log.error("%s: registration refused: %s", self.identity, e)
                    backoff = self.reconnect_max
                elif not self._closing:
                    log.info("%s: stream ended: %s", self.identity, e)
            finally:
                outgoing.put(None)  # ends the request iterator
                with self._cv:
                    self._outgoing = None
                    self._call = None
                    # Heartbeats of the broken stream will never be answered.
                    for rid in [rid for rid, p in self._outbox.items() if not p.durable]:
                        del self._outbox[rid]
                    self._cv.notify_all()
            with self._cv:
                if self._closing:
                    return
                # Jittered exponential backoff: uniform in [backoff/2, backoff].
                self._cv.wait_for(lambda: self._closing, random.uniform(backoff / 2, backoff))
            backoff = min(self.reconnect_max, backoff * 2)


def _messages(outgoing):
    """The request stream of one WorkerStream call: the queue until None."""
    while True:
        msg = outgoing.get()
        if msg is None:
            return
        yield msg
