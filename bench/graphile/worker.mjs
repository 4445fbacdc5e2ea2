// One Graphile Worker pool in its own process, driven by bench.mjs over IPC
// (child_process.fork). Not meant to be run by hand.
//
// Environment (set by bench.mjs):
//   GW_PG_CONFIG    JSON node-postgres client config of the benchmark database
//   GW_CONCURRENCY  concurrentJobs of the pool
//
// The only task is `noop`. Its payload is {t, p}: t = CLOCK_MONOTONIC in µs
// taken by the adder just before the add (process.hrtime.bigint() is
// system-wide on Linux, so readings of the two processes compare directly),
// p = phase label. The handler records now - t (ms) under p.
//
// IPC: -> {ready:true} once the pool LISTENs;
//      <- {cmd:"samples", phase} -> {phase, samples:[ms...], handled}
//      <- {cmd:"stop"}           -> {stopped:true, handled}, then exit 0
import graphileWorker from "graphile-worker";
import pg from "pg";
import { EventEmitter } from "node:events";

const { run, Logger } = graphileWorker;
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

const pgConfig = JSON.parse(process.env.GW_PG_CONFIG || "{}");
const concurrency = parseInt(process.env.GW_CONCURRENCY || "8", 10);

const samples = new Map(); // phase -> number[] (ms)
let handled = 0;

const taskList = {
  noop: async (payload) => {
    handled++;
    if (payload && typeof payload.t === "number") {
      const ms = (nowUs() - payload.t) / 1000;
      const p = payload.p || "?";
      let a = samples.get(p);
      if (!a) samples.set(p, (a = []));
      a.push(ms);
    }
  },
};

// Warnings and errors only, on stderr.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile worker ${level}] ${message}`);
});

async function main() {
  // Graphile's advice for the pool: concurrentJobs + 2, at least 10.
  const pgPool = new pg.Pool({ ...pgConfig, max: Math.max(10, concurrency + 2) });
  // Idle and checked-out clients can both emit errors (Graphile asks for both handlers).
  const onError = (e) => console.error(`[graphile worker] connection error: ${e.message}`);
  pgPool.on("error", onError);
  pgPool.on("connect", (client) => client.on("error", onError));
  const events = new EventEmitter();
  let ready = false;
  events.on("pool:listen:success", () => {
    if (!ready) {
      ready = true;
      process.send({ ready: true });
    }
  });
  const runner = await run({
    pgPool,
    logger,
    events,
    taskList,
    noHandleSignals: true,
    preset: {
      worker: {
        concurrentJobs: concurrency,
        pollInterval: 2000, // library default; new jobs arrive via LISTEN/NOTIFY
        gracefulShutdownAbortTimeout: 2500,
        // The "batched" preset of Graphile's docs/performance.md and perfTest.
        localQueue: { size: 500 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
  process.on("disconnect", () => process.exit(1)); // parent gone: do not linger
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(1));
  process.on("message", async (m) => {
    if (m.cmd === "samples") {
      process.send({ phase: m.phase, samples: samples.get(m.phase) || [], handled });
      samples.delete(m.phase);
    } else if (m.cmd === "stop") {
      await runner.stop();
      await pgPool.end();
      process.send({ stopped: true, handled }, () => process.exit(0));
    }
  });
  await runner.promise;
}

main().catch((e) => {
  console.error("[graphile worker]", e);
  process.exit(1);
});
