// Graphile Worker peer benchmark, run by bench/graphile/run.sh on the same
// PostgreSQL as saga-bench so that the README can print the ratio.
//
//   node bench.mjs --conninfo "host=/tmp/x port=5432 user=postgres dbname=postgres" \
//        [--jobs 20000 | --seconds S] [--adders 8] [--concurrency 8]
//        [--paced-seconds 6] [--paced-fraction 0.5] [--warmup N] [--max-seconds 18]
//        [--dbname graphile_bench]
//
// Every flag also reads an environment variable (GW_CONNINFO, GW_JOBS,
// GW_SECONDS, GW_MAX_SECONDS, GW_ADDERS, GW_CONCURRENCY, GW_PACED_SECONDS, GW_PACED_FRACTION,
// GW_WARMUP, GW_DBNAME). --conninfo takes a libpq key=value string or a
// postgres:// URI; the database named there is only used to create and drop
// the benchmark database (default graphile_bench), which holds Graphile's
// schema and is dropped at the end.
//
// One worker pool (worker.mjs, own process, run() with the "batched" preset:
// localQueue size 500, completeJobBatchDelay 0, failJobBatchDelay 0) runs
// throughout. Phases:
//   warm-up  N jobs added with one add_jobs() call and drained, then VACUUM
//            ANALYZE + CHECKPOINT (a queue table analyzed while empty gives
//            Graphile bad plans; the reference measured after such a fill).
//   (a) e2e  --adders connections each add jobs one by one in autocommit with
//            the prepared `select (graphile_worker.add_job('noop', $1::json)).id`
//            until --jobs are added (or for --seconds; with --jobs, adding also
//            stops after --max-seconds, 0 = never, so that a slow disk cannot
//            stretch a run; "jobs" in the JSON is what was really added and
//            "e2e_capped" says whether the cap hit); jobs/s = jobs / (first
//            add -> first 5 ms poll that finds graphile_worker._private_jobs
//            empty; Graphile deletes completed jobs).
//   (b) paced  after a CHECKPOINT, open-loop arrivals at --paced-fraction x the (a) rate for
//            --paced-seconds over the same adders; the payload carries the
//            monotonic µs taken just before the add, the handler records
//            now - t; p50/p99 in ms (nearest rank).
// Progress goes to stderr; the last (only) stdout line is one JSON object.
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import pg from "pg";
import graphileWorker from "graphile-worker";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { runMigrations, Logger } = graphileWorker;

const nowUs = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error("[graphile-bench]", ...a);
const r1 = (x) => (x == null ? null : Math.round(x * 10) / 10);
const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);

// ---- options -------------------------------------------------------------
const FLAGS = {
  conninfo: "GW_CONNINFO",
  jobs: "GW_JOBS",
  seconds: "GW_SECONDS",
  "max-seconds": "GW_MAX_SECONDS",
  adders: "GW_ADDERS",
  concurrency: "GW_CONCURRENCY",
  "paced-seconds": "GW_PACED_SECONDS",
  "paced-fraction": "GW_PACED_FRACTION",
  warmup: "GW_WARMUP",
  dbname: "GW_DBNAME",
};
function parseArgs(argv) {
  const o = {};
  for (const [k, env] of Object.entries(FLAGS)) if (process.env[env]) o[k] = process.env[env];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === "-h" || a === "--help") {
      console.error(
        "usage: bench.mjs --conninfo CONNINFO [--jobs N | --seconds S] [--adders 8] [--concurrency 8]\n" +
          "                 [--paced-seconds 6] [--paced-fraction 0.5] [--warmup N] [--max-seconds 18]\n" +
          "                 [--dbname graphile_bench]",
      );
      process.exit(0);
    }
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    a = a.slice(2);
    let v;
    const eq = a.indexOf("=");
    if (eq >= 0) [a, v] = [a.slice(0, eq), a.slice(eq + 1)];
    else v = argv[++i];
    if (!(a in FLAGS)) throw new Error(`unknown option --${a}`);
    if (v === undefined) throw new Error(`--${a} needs a value`);
    o[a] = v;
  }
  return o;
}
const num = (v, d, name, min = 0) => {
  if (v === undefined || v === "") return d;
  const x = Number(v);
  if (!Number.isFinite(x) || x < min) throw new Error(`bad value for --${name}: ${v}`);
  return x;
};

// ---- libpq conninfo -> node-postgres config ------------------------------
// key = value pairs separated by whitespace; values may be single-quoted;
// backslash escapes the next character (libpq rules).
function parseConninfo(s) {
  const out = {};
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  for (;;) {
    ws();
    if (i >= s.length) return out;
    let key = "";
    while (i < s.length && s[i] !== "=" && !/\s/.test(s[i])) key += s[i++];
    ws();
    if (s[i] !== "=") throw new Error(`conninfo: missing "=" after "${key}"`);
    i++;
    ws();
    let val = "";
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw new Error("conninfo: unterminated quoted value");
        if (s[i] === "\\" && i + 1 < s.length) val += s[++i];
        else if (s[i] === "'") break;
        else val += s[i];
        i++;
      }
      i++;
    } else {
      while (i < s.length && !/\s/.test(s[i])) {
        if (s[i] === "\\" && i + 1 < s.length) i++;
        val += s[i++];
      }
    }
    out[key] = val;
  }
}
function pgConfigFrom(conninfo) {
  let kv;
  if (/^postgres(ql)?:\/\//.test(conninfo)) {
    const parsed = require("pg-connection-string").parse(conninfo);
    kv = {};
    for (const [k, v] of Object.entries(parsed)) if (v != null && typeof v !== "object") kv[k === "database" ? "dbname" : k] = String(v);
  } else kv = parseConninfo(conninfo);
  const cfg = {};
  for (const [k, v] of Object.entries(kv)) {
    switch (k) {
      case "host": // a directory (starts with /) is a unix socket dir in node-postgres too
        cfg.host = v.split(",")[0];
        break;
      case "hostaddr":
        if (!kv.host) cfg.host = v.split(",")[0];
        break;
      case "port":
        cfg.port = parseInt(v.split(",")[0], 10);
        break;
      case "user":
        cfg.user = v;
        break;
      case "password":
        cfg.password = v;
        break;
      case "dbname":
        cfg.database = v;
        break;
      case "application_name":
      case "options":
        cfg[k] = v;
        break;
      case "connect_timeout":
        cfg.connectionTimeoutMillis = 1000 * parseInt(v, 10);
        break;
      case "sslmode":
        if (v === "require") cfg.ssl = { rejectUnauthorized: false };
        else if (v.startsWith("verify")) cfg.ssl = true;
        else cfg.ssl = false; // disable / allow / prefer
        break;
      case "ssl":
        cfg.ssl = v === "true" || v === "1";
        break;
      default:
        log(`conninfo: ignoring ${k}`);
    }
  }
  return cfg;
}

// ---- main ----------------------------------------------------------------
const opts = parseArgs(process.argv.slice(2));
if (!opts.conninfo) {
  console.error("bench.mjs: --conninfo (or GW_CONNINFO) is required");
  process.exit(2);
}
const SECONDS = num(opts.seconds, 0, "seconds");
const MAX_SECONDS = num(opts["max-seconds"], 18, "max-seconds");
const JOBS = Math.round(num(opts.jobs, 20000, "jobs", 1));
const ADDERS = Math.round(num(opts.adders, 8, "adders", 1));
const CONCURRENCY = Math.round(num(opts.concurrency, 8, "concurrency", 1));
const PACED_SECONDS = num(opts["paced-seconds"], 6, "paced-seconds");
const PACED_FRACTION = num(opts["paced-fraction"], 0.5, "paced-fraction");
const WARMUP = Math.round(num(opts.warmup, Math.min(JOBS, 10000), "warmup"));
const DBNAME = opts.dbname || "graphile_bench";
if (!/^[a-z_][a-z0-9_]*$/.test(DBNAME)) throw new Error(`bad --dbname ${DBNAME}`);

const adminCfg = pgConfigFrom(opts.conninfo);
const benchCfg = { ...adminCfg, database: DBNAME };

const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile ${level}] ${message}`);
});

let worker = null; // WorkerChild
let dbCreated = false;
const clients = []; // every pg.Client we open, closed at the end

async function connect(cfg) {
  const c = new pg.Client(cfg);
  c.on("error", (e) => log(`client error: ${e.message}`));
  await c.connect();
  clients.push(c);
  return c;
}

async function dropDb() {
  if (!dbCreated) return;
  const admin = new pg.Client(adminCfg);
  admin.on("error", () => {});
  try {
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${DBNAME} with (force)`);
    } catch {
      await admin.query(`drop database if exists ${DBNAME}`); // PostgreSQL < 13
    }
    dbCreated = false;
  } finally {
    await admin.end().catch(() => {});
  }
}

class WorkerChild {
  constructor() {
    this.proc = fork(path.join(here, "worker.mjs"), [], {
      env: { ...process.env, GW_PG_CONFIG: JSON.stringify(benchCfg), GW_CONCURRENCY: String(CONCURRENCY) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.waiters = [];
    this.proc.on("message", (m) => {
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w(m);
    });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
    this.died = this.exited.then((c) => {
      throw new Error(`worker process exited (${c})`);
    });
    this.died.catch(() => {});
  }
  next(pred) {
    const p = new Promise((resolve) => {
      const w = (m) => (pred(m) ? resolve(m) : this.waiters.push(w));
      this.waiters.push(w);
    });
    return Promise.race([p, this.died]);
  }
  ready() {
    return this.next((m) => m.ready);
  }
  async samples(phase) {
    const p = this.next((m) => m.phase === phase);
    this.proc.send({ cmd: "samples", phase });
    return (await p).samples;
  }
  async stop() {
    this.died = this.exited; // a clean exit is expected now
    this.proc.send({ cmd: "stop" });
    await this.exited;
  }
}

function stats(arr) {
  if (!arr.length) return { n: 0, p50: null, p99: null };
  const s = Float64Array.from(arr).sort();
  const q = (f) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(f * s.length) - 1))];
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] };
}

async function main() {
  const tStart = Date.now();
  const admin = await connect(adminCfg);
  const serverVersion = (await admin.query("show server_version")).rows[0].server_version;
  await admin.query(`drop database if exists ${DBNAME}`);
  await admin.query(`create database ${DBNAME}`);
  dbCreated = true;
  const versions = {
    graphile_worker: require("graphile-worker/package.json").version,
    pg: require("pg/package.json").version,
    node: process.version,
    postgres: serverVersion,
  };
  log(
    `graphile-worker ${versions.graphile_worker}, pg ${versions.pg}, node ${versions.node}, ` +
      `PostgreSQL ${serverVersion}; database ${DBNAME}; ` +
      (SECONDS ? `${SECONDS}s` : `${JOBS} jobs`) +
      `, adders=${ADDERS} concurrency=${CONCURRENCY} preset=batched`,
  );

  const db = await connect(benchCfg);
  await runMigrations({ pgPool: makePool(), logger: quietLogger });
  await migrationPool.end();
  migrationPool = null;
  const queued = async () =>
    (await db.query("select count(*)::int as n from graphile_worker._private_jobs")).rows[0].n;
  const waitEmpty = async (timeoutMs = 120000) => {
    const t0 = Date.now();
    for (;;) {
      if ((await queued()) === 0) return nowUs();
      if (Date.now() - t0 > timeoutMs) throw new Error("queue did not drain in time");
      await sleep(5);
    }
  };
  const maintenance = async () => {
    await db.query("vacuum analyze graphile_worker._private_jobs, graphile_worker._private_tasks");
    await db.query("checkpoint");
  };

  worker = new WorkerChild();
  await worker.ready();

  if (WARMUP > 0) {
    const t0 = nowUs();
    await db.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row('noop', json_build_object('w', i), null, null, null, null, null, null)::graphile_worker.job_spec
         from generate_series(1, $1::int) i))`,
      [WARMUP],
    );
    await waitEmpty();
    await worker.samples("warmup"); // nothing recorded, just a round trip
    log(`warm-up: ${WARMUP} jobs added in one add_jobs() call and drained in ${r2((nowUs() - t0) / 1e6)} s`);
  }
  await maintenance();
  await sleep(300);

  const adders = [];
  for (let k = 0; k < ADDERS; k++) {
    const c = await connect(benchCfg);
    adders.push((payload) =>
      c.query({
        name: "gw_add_job",
        text: "select (graphile_worker.add_job('noop', $1::json)).id",
        values: [JSON.stringify(payload)],
      }),
    );
  }

  // (a) end to end
  let added = 0;
  const t0 = nowUs();
  const limit = SECONDS || MAX_SECONDS;
  const deadline = limit ? t0 + limit * 1e6 : Infinity;
  await Promise.all(
    adders.map(async (add) => {
      for (;;) {
        if (nowUs() >= deadline || (!SECONDS && added >= JOBS)) return;
        added++;
        await add({ t: nowUs(), p: "e2e" });
      }
    }),
  );
  const tAdded = nowUs();
  const tDone = await waitEmpty();
  const jobs = added;
  const capped = !SECONDS && jobs < JOBS;
  if (capped) log(`(a) e2e: adding stopped after --max-seconds ${MAX_SECONDS} with ${jobs} of ${JOBS} jobs added`);
  const e2eLat = stats(await worker.samples("e2e"));
  if (e2eLat.n !== jobs) throw new Error(`e2e: worker ran ${e2eLat.n} jobs, ${jobs} were added`);
  const e2eRate = (jobs * 1e6) / (tDone - t0);
  log(
    `(a) e2e: ${jobs} jobs in ${r2((tDone - t0) / 1e6)} s = ${r1(e2eRate)} jobs/s ` +
      `(adds alone ${r1((jobs * 1e6) / (tAdded - t0))}/s, drained ${r1((tDone - tAdded) / 1000)} ms after the last add; ` +
      `add->start at saturation p50 ${r2(e2eLat.p50)} ms p99 ${r2(e2eLat.p99)} ms)`,
  );
  await sleep(300);

  // (b) paced latency, open loop; it starts a checkpoint cycle, as the
  // coordinator's latency phase does (the WAL segments written so far are
  // recycled as the next ones instead of being created during the phase)
  await db.query("checkpoint");
  const rate = e2eRate * PACED_FRACTION;
  const total = Math.max(1, Math.round(rate * PACED_SECONDS));
  let next = 0;
  let late = 0;
  const p0 = nowUs() + 20000;
  await Promise.all(
    adders.map(async (add) => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const wait = (p0 + (i * 1e6) / rate - nowUs()) / 1000;
        if (wait > 1) await sleep(wait);
        else if (wait < -5) late++;
        await add({ t: nowUs(), p: "paced" });
      }
    }),
  );
  const pAdded = nowUs();
  await waitEmpty();
  const lat = stats(await worker.samples("paced"));
  if (lat.n !== total) throw new Error(`paced: worker ran ${lat.n} jobs, ${total} were added`);
  const achieved = (total * 1e6) / (pAdded - p0);
  log(
    `(b) paced: ${total} jobs at ${r1(rate)}/s target, ${r1(achieved)}/s achieved, ${late} adds >5 ms late; ` +
      `add->start p50 ${r2(lat.p50)} ms p90 ${r2(lat.p90)} ms p99 ${r2(lat.p99)} ms max ${r2(lat.max)} ms`,
  );

  await worker.stop();
  worker = null;
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  await dropDb();
  log(`done in ${r1((Date.now() - tStart) / 1000)} s`);

  const out = {
    graphile_e2e_jobs_per_sec: r1(e2eRate),
    graphile_latency_ms_p50: r2(lat.p50),
    graphile_latency_ms_p99: r2(lat.p99),
    paced_rate: r1(rate),
    jobs,
    versions,
    graphile_e2e_latency_ms_p50: r2(e2eLat.p50),
    graphile_e2e_latency_ms_p99: r2(e2eLat.p99),
    e2e_seconds: r2((tDone - t0) / 1e6),
    e2e_capped: capped,
    paced_achieved_rate: r1(achieved),
    paced_jobs: total,
    paced_adds_late: late,
    adders: ADDERS,
    concurrency: CONCURRENCY,
    preset: "batched",
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

// runMigrations gets its own small pool, ended right after.
let migrationPool = null;
function makePool() {
  migrationPool = new pg.Pool({ ...benchCfg, max: 2 });
  const onError = (e) => log(`migration connection error: ${e.message}`);
  migrationPool.on("error", onError);
  migrationPool.on("connect", (client) => client.on("error", onError));
  return migrationPool;
}

async function cleanup() {
  if (worker) worker.proc.kill("SIGTERM");
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  if (migrationPool) await migrationPool.end().catch(() => {});
  await dropDb().catch((e) => log(`could not drop database ${DBNAME}: ${e.message}`));
}

let stopping = false;
for (const [sig, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
]) {
  process.on(sig, () => {
    if (stopping) process.exit(code);
    stopping = true;
    log(`${sig}: cleaning up`);
    const t = setTimeout(() => process.exit(code), 5000);
    cleanup().finally(() => {
      clearTimeout(t);
      process.exit(code);
    });
  });
}

main()
  .then(async () => {
    if (migrationPool) await migrationPool.end().catch(() => {});
  })
  .catch(async (e) => {
    console.error("[graphile-bench] error:", e && e.stack ? e.stack : e);
    await cleanup();
    process.exit(1);
  });
