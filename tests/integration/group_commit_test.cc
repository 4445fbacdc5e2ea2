// Group commit in storage::PgStore: concurrent CreateExecution and
// WriteIfVersion calls share statements and commits, yet each applies or
// fails on its own, exactly as if it ran alone.
#include <libpq-fe.h>
#include <pthread.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <lz4.h>
#include <zlib.h>

#include "coordinator/common/strings.h"
#include "coordinator/storage/pg/pg_store.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using storage::ExecutionRecord;
using storage::PgStore;
using storage::TaskRecord;
using storage::Writes;

// Events stored in the history (one row per transition, events as a JSON array).
constexpr char kEventCount[] =
    "SELECT count(*) FROM history, json_array_elements(events::json) AS ev";

class GroupCommit : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    // History rows as JSON text: these tests count events with SQL (the
    // compressed forms have their own test below).
    storage::PgStoreOptions text_history;
    text_history.compress_history_from = 0;
    auto s = PgStore::Open(dsn(), 16, text_history);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    ASSERT_TRUE(store_->Migrate().ok());
  }

  static std::string Uuid(int i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", i);
    return buf;
  }
  static engine::Event Ev(int64_t id, const std::string& state) {
    engine::Event e;
    e.id = id;
    e.timestamp_us = 1000 + id;
    e.type = engine::EventType::kTaskStateEntered;
    e.state_name = state;
    e.details = json::Value(json::Object{{"n", json::Value(id)}});
    return e;
  }
  static ExecutionRecord Row(int i, const std::string& name) {
    ExecutionRecord r;
    r.execution_id = Uuid(i);
    r.state_machine = "m";
    r.name = name;
    r.revision = 1;
    r.start_us = 1;
    r.input = "{}";
    return r;
  }
  // The first transition: event 1 and task 1 (runnable).
  static Writes First(const std::string& id) {
    Writes w;
    w.events = {Ev(1, "T")};
    TaskRecord t;
    t.execution_id = id;
    t.task_id = 1;
    t.activity = "a";
    t.state_name = "T";
    t.input = "{}";
    t.attempt = 1;
    w.new_tasks = {t};
    return w;
  }
  // Transition k (k >= 1) on version k: closes task k, opens task k+1 and
  // starts it, records event k+1.
  static Writes Next(const std::string& id, int64_t k) {
    Writes w;
    w.events = {Ev(k + 1, "T")};
    w.deleted_tasks = {k};
    TaskRecord t;
    t.execution_id = id;
    t.task_id = k + 1;
    t.activity = "a";
    t.state_name = "T";
    t.input = "{}";
    t.attempt = 1;
    t.started_us = 5;
    t.worker = "w";
    w.new_tasks = {t};
    return w;
  }
  std::string One(const std::string& sql) {
    SqlResult r = RunSql(dsn(), sql);
    EXPECT_TRUE(r.ok) << r.error;
    return r.ok && !r.rows.empty() ? r.rows[0][0] : "";
  }

  std::unique_ptr<PgStore> store_;
};

TEST_F(GroupCommit, ConcurrentTransitionsOfManyExecutionsAllApplyWithTheirRows) {
  constexpr int kExecutions = 24, kSteps = 15;
  std::barrier sync(kExecutions);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kExecutions; ++i) {
    threads.emplace_back([&, i] {
      const ExecutionRecord row = Row(i, saga::StrCat("e", i));
      sync.arrive_and_wait();
      if (!store_->CreateExecution(row, First(row.execution_id)).ok()) ++failures;
      for (int64_t k = 1; k <= kSteps; ++k) {
        Writes w = Next(row.execution_id, k);
        if (k == kSteps) {
          w.status = 2;
          w.stop_us = 99;
          w.output = "{\"done\":" + std::to_string(i) + "}";
          w.new_tasks.clear();
        }
        auto applied = store_->WriteIfVersion(row.execution_id, k, w);
        if (!applied.ok() || !*applied) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE status = 2 AND version = 16 "
                "AND last_event_id = 16 AND stop_us = 99"),
            std::to_string(kExecutions));
  EXPECT_EQ(One(kEventCount), std::to_string(kExecutions * 16));
  EXPECT_EQ(One("SELECT count(*) FROM history"), std::to_string(kExecutions * 16))
      << "one history row per transition";
  EXPECT_EQ(One("SELECT count(*) FROM tasks"), "0") << "every task closed";
  EXPECT_EQ(One("SELECT output FROM executions WHERE execution_id = '" + Uuid(7) + "'"),
            "{\"done\":7}");
  const auto stats = store_->batch_stats();
  EXPECT_EQ(stats.items, static_cast<uint64_t>(kExecutions * (kSteps + 1)));
  EXPECT_LE(stats.batches, stats.items);
  std::cout << "group commits: " << stats.batches << " carrying " << stats.items << " writes\n";
}

TEST_F(GroupCommit, OnlyOneOfTwoTransitionsDecidedOnTheSameVersionApplies) {
  constexpr int kExecutions = 12;
  for (int i = 0; i < kExecutions; ++i) {
    const ExecutionRecord row = Row(i, saga::StrCat("e", i));
    ASSERT_TRUE(store_->CreateExecution(row, First(row.execution_id)).ok());
  }
  std::barrier sync(2 * kExecutions);
  std::atomic<int> applied{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kExecutions; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = Uuid(t / 2);
      Writes w = Next(id, 1);
      w.events[0].details = json::Value(json::Object{{"writer", json::Value(int64_t{t % 2})}});
      sync.arrive_and_wait();
      auto r = store_->WriteIfVersion(id, 1, w);
      if (!r.ok()) {
        ++errors;
      } else if (*r) {
        ++applied;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(applied.load(), kExecutions) << "one writer per execution";
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE version = 2"), std::to_string(kExecutions));
  EXPECT_EQ(One(std::string(kEventCount) + " WHERE (ev->>0)::int = 2"), std::to_string(kExecutions))
      << "the loser's events were not written";
  EXPECT_EQ(One("SELECT count(*) FROM tasks WHERE task_id = 2"), std::to_string(kExecutions));
}

TEST_F(GroupCommit, TheSameNameStartedConcurrentlyExistsOnceAndTheOthersAreAlreadyExists) {
  constexpr int kStarts = 16;
  std::barrier sync(kStarts);
  std::atomic<int> ok{0}, exists{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStarts; ++i) {
    threads.emplace_back([&, i] {
      const ExecutionRecord row = Row(i, "same-name");
      sync.arrive_and_wait();
      absl::Status s = store_->CreateExecution(row, First(row.execution_id));
      if (s.ok()) {
        ++ok;
      } else if (s.code() == absl::StatusCode::kAlreadyExists) {
        ++exists;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(exists.load(), kStarts - 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(One("SELECT count(*) FROM executions"), "1");
  EXPECT_EQ(One(kEventCount), "1") << "only the winner's first events";
  EXPECT_EQ(One("SELECT count(*) FROM tasks"), "1");
}

// A start racing one of the same name not yet committed: the group
// commit's statement (a plain insert: no speculative insertion) waits for
// the other on the unique index and fails once it commits; the batch is
// written again with ON CONFLICT and the start is ALREADY_EXISTS, with
// nothing of it written. The same for a name taken by a committed one.
TEST_F(GroupCommit, AStartRacingAnUncommittedOneOfTheSameNameIsAlreadyExists) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> other(PQconnectdb(dsn().c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(other.get()), CONNECTION_OK) << PQerrorMessage(other.get());
  auto exec = [&](const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(other.get(), sql.c_str()), &PQclear);
    const auto st = PQresultStatus(r.get());
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << PQerrorMessage(other.get());
  };
  exec("BEGIN");
  exec("INSERT INTO executions (execution_id, state_machine, name, revision, status, version, "
       "last_event_id, start_us, input) VALUES ('" + Uuid(99) + "', 'm', 'racing', 1, 1, 1, 0, 1, '{}')");
  const auto before = store_->batch_stats();
  absl::Status started;
  std::thread start([&] {
    const ExecutionRecord row = Row(1, "racing");
    started = store_->CreateExecution(row, First(row.execution_id));
  });
  // The start waits on the other transaction's row in the unique index.
  ASSERT_TRUE(WaitUntil([&] {
    return One("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted") == "1";
  }, seconds(10)));
  exec("COMMIT");
  start.join();
  EXPECT_EQ(started.code(), absl::StatusCode::kAlreadyExists) << started;
  EXPECT_EQ(store_->batch_stats().conflict_retries - before.conflict_retries, 1u);
  EXPECT_EQ(One("SELECT string_agg(execution_id::text, ',') FROM executions"), Uuid(99));
  EXPECT_EQ(One("SELECT count(*) FROM history"), "0");
  EXPECT_EQ(One("SELECT count(*) FROM tasks"), "0");
  const ExecutionRecord again = Row(2, "racing");
  EXPECT_EQ(store_->CreateExecution(again, First(again.execution_id)).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->batch_stats().conflict_retries - before.conflict_retries, 2u);
  EXPECT_EQ(One("SELECT count(*) FROM executions"), "1");
}

// A claim decided without a lock (on a cached state, which cannot tell
// whether a task given back was started again) applies only while the task
// row is not started, in a group commit and in the statement of its own
// (a write that also needs a NOTIFY, so not batched) alike.
TEST_F(GroupCommit, AClaimAppliesOnlyWhileItsTaskIsNotStarted) {
  auto claim = [](int64_t event, const std::string& worker, bool batched) {
    Writes w;
    w.events = {Ev(event, "T")};
    w.started = Writes::Started{1, worker, 10 * event, std::nullopt};
    w.notify_timers = !batched;
    return w;
  };
  for (int i = 0; i < 2; ++i) {
    const bool batched = i == 0;
    SCOPED_TRACE(batched ? "group commit" : "own statement");
    const ExecutionRecord row = Row(i, saga::StrCat("claim", i));
    const std::string& id = row.execution_id;
    ASSERT_TRUE(store_->CreateExecution(row, First(id)).ok());
    auto r = store_->WriteIfVersion(id, 1, claim(2, "w1", batched));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(*r) << "the task was runnable";
    // Decided again on version 2 as if the task were runnable: refused.
    r = store_->WriteIfVersion(id, 2, claim(3, "w2", batched));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(*r) << "the task is started";
    const std::string where = saga::StrCat(" WHERE execution_id = '", id, "'");
    EXPECT_EQ(One("SELECT version FROM executions" + where), "2");
    EXPECT_EQ(One("SELECT worker FROM tasks" + where), "w1");
    EXPECT_EQ(One(std::string(kEventCount) + where + " AND (ev->>0)::int = 3"), "0")
        << "the refused claim's event was not written";
    // Given back (the row only): the same claim on the same version applies.
    ASSERT_EQ(One("UPDATE tasks SET started_us = NULL, worker = NULL" + where + " RETURNING 1"), "1");
    r = store_->WriteIfVersion(id, 2, claim(3, "w2", batched));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(*r);
    EXPECT_EQ(One("SELECT worker FROM tasks" + where), "w2");
    EXPECT_EQ(One("SELECT version FROM executions" + where), "3");
  }
}

// One caller's writes for several executions (a worker stream's results
// applied together): written in one statement when nothing else is being
// written, each applying or not on its own, in the caller's order.
TEST_F(GroupCommit, ManyWritesOfOneCallerShareAStatementAndEachAppliesOnItsOwn) {
  constexpr int kExecutions = 10;
  for (int i = 0; i < kExecutions; ++i) {
    const ExecutionRecord row = Row(i, saga::StrCat("many", i));
    ASSERT_TRUE(store_->CreateExecution(row, First(row.execution_id)).ok());
  }
  std::vector<std::string> ids;
  for (int i = 0; i < kExecutions; ++i) ids.push_back(Uuid(i));
  std::vector<Writes> writes;
  std::vector<PgStore::VersionedWrites> many;
  writes.reserve(kExecutions + 3);
  for (int i = 0; i < kExecutions; ++i) writes.push_back(Next(ids[i], 1));
  // Execution 0 a second time, decided on the version the first write
  // changes: refused. Execution 1 at a version it is not at: refused.
  // Execution 2's second step needs its own transaction (a timer): written
  // alone, after the first step of the group.
  writes.push_back(Next(ids[0], 1));
  Writes wrong = Next(ids[1], 1);
  writes.push_back(wrong);
  Writes timed = Next(ids[2], 2);
  storage::TimerRecord timer;
  timer.execution_id = ids[2];
  timer.timer_id = 1;
  timer.fire_at_us = 1;
  timed.new_timers = {timer};
  writes.push_back(timed);
  for (int i = 0; i < kExecutions; ++i) many.push_back({&ids[i], 1, &writes[i]});
  many.push_back({&ids[0], 1, &writes[kExecutions]});
  many.push_back({&ids[1], 7, &writes[kExecutions + 1]});
  many.push_back({&ids[2], 2, &writes[kExecutions + 2]});
  const auto before = store_->batch_stats();
  const auto results = store_->WriteIfVersionMany(many);
  const auto after = store_->batch_stats();
  ASSERT_EQ(results.size(), many.size());
  for (int i = 0; i < kExecutions; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_TRUE(*results[i]) << i;
  }
  ASSERT_TRUE(results[kExecutions].ok());
  EXPECT_FALSE(*results[kExecutions]) << "decided on a version the group's first write changed";
  ASSERT_TRUE(results[kExecutions + 1].ok());
  EXPECT_FALSE(*results[kExecutions + 1]) << "not at that version";
  ASSERT_TRUE(results[kExecutions + 2].ok()) << results[kExecutions + 2].status();
  EXPECT_TRUE(*results[kExecutions + 2]) << "its own transaction, after the group";
  // The first writes of the ten executions in one statement, execution 0's
  // second in the next (one write per execution per statement).
  EXPECT_EQ(after.items - before.items, static_cast<uint64_t>(kExecutions + 2));
  EXPECT_EQ(after.batches - before.batches, 2u);
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE version = 2"), std::to_string(kExecutions - 1));
  EXPECT_EQ(One("SELECT version FROM executions WHERE execution_id = '" + ids[2] + "'"), "3");
  EXPECT_EQ(One("SELECT count(*) FROM timers"), "1");
  EXPECT_EQ(One(std::string(kEventCount) + " WHERE (ev->>0)::int = 2"), std::to_string(kExecutions))
      << "one event 2 per execution: the refused writes' events were not written";
}

// A written batch's continuations run on their own thread (saga-committed)
// while the committer writes the next batch, and continuations run in the
// order their batches were written. Execution 0's continuation is held
// here (a real one must not block; this one stands for a slow one):
// execution 1's write still reaches the table meanwhile, but its
// continuation waits for execution 0's, and execution 2's for both.
TEST_F(GroupCommit, TheNextBatchIsWrittenWhileTheLastOnesContinuationsRunInWriteOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    const ExecutionRecord row = Row(i, saga::StrCat("pipelined", i));
    ASSERT_TRUE(store_->CreateExecution(row, First(row.execution_id)).ok());
    ids.push_back(row.execution_id);
  }
  std::vector<Writes> writes;
  for (int i = 0; i < 3; ++i) writes.push_back(Next(ids[i], 1));
  std::mutex mu;
  std::condition_variable cv;
  bool held = false, release = false;
  std::vector<int> order;
  std::vector<std::string> threads;
  auto done = [&](int i) {
    return [&, i](absl::StatusOr<bool> r) {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      std::unique_lock<std::mutex> g(mu);
      EXPECT_TRUE(r.ok() && *r) << i;
      order.push_back(i);
      threads.push_back(name);
      if (i == 0) {
        held = true;
        cv.notify_all();
        ASSERT_TRUE(cv.wait_for(g, std::chrono::seconds(30), [&] { return release; }));
      }
      cv.notify_all();
    };
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  ASSERT_TRUE(store_->WriteIfVersionAsync(&ids[0], 1, &writes[0], done(0)));
  {
    std::unique_lock<std::mutex> g(mu);
    ASSERT_TRUE(cv.wait_until(g, deadline, [&] { return held; }));
  }
  ASSERT_TRUE(store_->WriteIfVersionAsync(&ids[1], 1, &writes[1], done(1)));
  // Written while execution 0's continuation is held (polled with a deadline).
  while (One("SELECT version FROM executions WHERE execution_id = '" + ids[1] + "'") != "2") {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the next batch was not written";
    std::this_thread::yield();
  }
  ASSERT_TRUE(store_->WriteIfVersionAsync(&ids[2], 1, &writes[2], done(2)));
  {
    std::unique_lock<std::mutex> g(mu);
    EXPECT_EQ(order, std::vector<int>{0}) << "no continuation ran past the held one";
    release = true;
    cv.notify_all();
    ASSERT_TRUE(cv.wait_until(g, deadline, [&] { return order.size() == 3; }));
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  for (const std::string& t : threads) EXPECT_EQ(t, "saga-committed");
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE version = 2"), "3");
}

TEST_F(GroupCommit, AWriteThatFailsDoesNotFailTheOthersWrittenWithIt) {
  constexpr int kExecutions = 16;
  for (int i = 0; i < kExecutions; ++i) {
    const ExecutionRecord row = Row(i, saga::StrCat("e", i));
    ASSERT_TRUE(store_->CreateExecution(row, First(row.execution_id)).ok());
  }
  std::barrier sync(kExecutions);
  std::vector<absl::StatusOr<bool>> results(kExecutions, false);
  std::vector<std::thread> threads;
  for (int i = 0; i < kExecutions; ++i) {
    threads.emplace_back([&, i] {
      const std::string id = Uuid(i);
      Writes w = Next(id, 1);
      // Execution 5 writes an event id it already has: a primary key violation.
      if (i == 5) w.events[0].id = 1;
      sync.arrive_and_wait();
      results[i] = store_->WriteIfVersion(id, 1, w);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kExecutions; ++i) {
    if (i == 5) {
      EXPECT_FALSE(results[i].ok()) << "the duplicate event is refused";
    } else {
      ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
      EXPECT_TRUE(*results[i]) << i;
    }
  }
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE version = 2"),
            std::to_string(kExecutions - 1));
  EXPECT_EQ(One("SELECT version FROM executions WHERE execution_id = '" + Uuid(5) + "'"), "1")
      << "nothing of the failed write remains";
  EXPECT_EQ(One("SELECT count(*) FROM tasks WHERE execution_id = '" + Uuid(5) + "' AND task_id = 2"),
            "0");
}


// Payload text reaches the columns exactly as given, whatever JSON it is
// (objects and arrays are embedded in the statement's JSON, scalars quoted).
TEST_F(GroupCommit, EveryShapeOfTheBatchStatementIsValidSql) {
  // A batch leaves out the parts it has no rows for: 28 shapes, prepared
  // when first used, so a typo in a rare one would show only in production.
  const std::vector<std::string> shapes = PgStore::BatchStatementsForTest();
  EXPECT_EQ(shapes.size(), 28u);
  for (size_t i = 0; i < shapes.size(); ++i) {
    SqlResult r = RunSql(dsn(), saga::StrCat("PREPARE shape", i, " AS ", shapes[i]));
    EXPECT_TRUE(r.ok) << shapes[i] << ": " << r.error;
  }
}

TEST_F(GroupCommit, TransitionsWithAndWithoutTaskRowsEachWriteExactlyTheirRows) {
  // Each write alone in its batch, so each takes its own statement shape:
  // a start with a task, a start without one (it finishes at once), a claim
  // of a task, a transition with events only, and one that closes a task.
  const ExecutionRecord a = Row(1, "shape-a"), b = Row(2, "shape-b");
  ASSERT_TRUE(store_->CreateExecution(a, First(a.execution_id)).ok());
  Writes done;
  done.events = {Ev(1, "Done")};
  done.status = 2;
  done.stop_us = 9;
  done.output = "{\"ok\":true}";
  ASSERT_TRUE(store_->CreateExecution(b, done).ok());
  EXPECT_EQ(One("SELECT status || ' ' || stop_us FROM executions WHERE name = 'shape-b'"), "2 9");
  EXPECT_EQ(One("SELECT count(*) FROM tasks"), "1") << "only a's task";

  Writes claim;
  claim.events = {Ev(2, "T")};
  claim.started = Writes::Started{1, "w1", 7, 99};
  auto r = store_->WriteIfVersion(a.execution_id, 1, claim);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  EXPECT_EQ(One("SELECT started_us || ' ' || worker || ' ' || heartbeat_at_us FROM tasks"), "7 w1 99");
  // Claimed once: a second claim of the same task is refused.
  Writes again = claim;
  again.events = {Ev(3, "T")};
  r = store_->WriteIfVersion(a.execution_id, 2, again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r) << "the task is started already";

  Writes events_only;
  events_only.events = {Ev(3, "T")};
  r = store_->WriteIfVersion(a.execution_id, 2, events_only);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  EXPECT_EQ(One("SELECT count(*) FROM tasks WHERE started_us = 7"), "1") << "task row untouched";

  Writes close;
  close.events = {Ev(4, "T")};
  close.deleted_tasks = {1};
  close.status = 2;
  close.stop_us = 11;
  close.output = "{}";
  r = store_->WriteIfVersion(a.execution_id, 3, close);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  EXPECT_EQ(One("SELECT count(*) FROM tasks"), "0");
  EXPECT_EQ(One("SELECT version || ' ' || status || ' ' || last_event_id FROM executions "
                "WHERE name = 'shape-a'"),
            "4 2 4");
  EXPECT_EQ(One(std::string(kEventCount) + " WHERE execution_id = '" + a.execution_id + "'"), "4");
  EXPECT_EQ(One(std::string(kEventCount) + " WHERE execution_id = '" + b.execution_id + "'"), "1");
}

TEST_F(GroupCommit, PayloadsAndDetailsAreStoredExactlyAsTheirText) {
  const std::vector<std::string> texts = {
      R"({ "spaced" : [1, 2.50, "x\"y\u00e9\\"] })", R"("just a string")", "42", "null",
      "[]", R"(["a",{"b":null}])", "true", R"({"nul":"a\u0000b"})"};
  for (size_t i = 0; i < texts.size(); ++i) {
    ExecutionRecord row = Row(static_cast<int>(i), saga::StrCat("p", i));
    row.input = texts[i];
    Writes w = First(row.execution_id);
    w.new_tasks[0].input = texts[i];
    w.events[0].details = json::Value(json::Object{{"text", json::Value(texts[i])}});
    absl::Status created = store_->CreateExecution(row, w);
    ASSERT_TRUE(created.ok()) << texts[i] << ": " << created;
    Writes done = Next(row.execution_id, 1);
    done.new_tasks.clear();
    done.status = 2;
    done.output = texts[i];
    done.error = texts[i];
    auto applied = store_->WriteIfVersion(row.execution_id, 1, done);
    ASSERT_TRUE(applied.ok() && *applied) << texts[i] << ": " << applied.status();
    auto got = store_->GetExecution(row.execution_id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->input, texts[i]);
    EXPECT_EQ(got->output.value_or("<none>"), texts[i]);
    EXPECT_EQ(got->error.value_or("<none>"), texts[i]);
    auto events = store_->History(row.execution_id, 0, 10, false);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[0].details, w.events[0].details) << texts[i];
  }
  EXPECT_EQ(One("SELECT count(*) FROM executions WHERE output = input"),
            std::to_string(texts.size()));
}

// History rows of at least compress_history_from bytes of events JSON that
// compress by a fifth or more are stored packed in events_packed (migration
// 5); the rest stay text, and rows raw-deflated in events_z by schema
// version 3 and LZ4-compressed in events_lz4 by version 4 are still read.
// Every row reads back the same, in pages both ways.
TEST_F(GroupCommit, LargeHistoryRowsAreStoredCompressedAndAllRowsReadBackTheSame) {
  storage::PgStoreOptions deflating;
  deflating.compress_history_from = 256;
  auto opened = PgStore::Open(dsn(), 4, deflating);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<PgStore> store = *std::move(opened);
  // A document repeated across a transition's events, as in real histories.
  std::string doc = R"({"order":"o-1","note":"caf\u00e9 \"quoted\"","items":[)";
  for (int i = 0; i < 30; ++i) {
    doc += saga::StrCat(i ? "," : "", R"({"sku":"s-)", i, R"(","n":)", i, "}");
  }
  doc += "]}";
  auto parsed = json::Parse(doc);
  ASSERT_TRUE(parsed.ok());
  // Text that compresses by less than a fifth: random printable characters.
  std::mt19937 rng(7);
  std::string noise;
  for (int i = 0; i < 700; ++i) {
    char c = static_cast<char>(33 + rng() % 94);
    noise.push_back(c == '"' || c == '\\' ? 'q' : c);
  }
  auto with = [](engine::Event e, json::Value details) {
    e.details = std::move(details);
    return e;
  };
  const ExecutionRecord row = Row(1, "z");
  const std::string id = row.execution_id;
  std::vector<Writes> writes;
  writes.push_back(First(id));                                // event 1: small, text
  writes.push_back(Next(id, 1));                              // events 2-4: compressed
  writes.back().events = {with(Ev(2, "T"), *parsed), with(Ev(3, "T"), *parsed),
                          with(Ev(4, "Next"), *parsed)};
  writes.push_back(Next(id, 2));                              // event 5: small, text
  writes.back().events = {Ev(5, "T")};
  writes.push_back(Next(id, 3));                              // event 6: large, text
  writes.back().events = {with(Ev(6, "T"), json::Value(noise))};
  ASSERT_TRUE(store->CreateExecution(row, writes[0]).ok());
  for (int64_t k = 1; k < static_cast<int64_t>(writes.size()); ++k) {
    auto applied = store->WriteIfVersion(id, k, writes[k]);
    ASSERT_TRUE(applied.ok() && *applied) << k << ": " << applied.status();
  }
  EXPECT_EQ(One("SELECT string_agg(first_event_id || ':' || (events_packed IS NOT NULL), ',' "
                "ORDER BY first_event_id) FROM history"),
            "1:false,2:true,5:false,6:false");
  EXPECT_EQ(One("SELECT count(*) FROM history WHERE events_z IS NOT NULL OR events_lz4 IS NOT NULL "
                "OR (events IS NULL) = (events_packed IS NULL)"),
            "0");
  auto hex_of = [](const std::string& bin) {
    std::string hex;
    for (unsigned char c : bin) {
      hex.push_back("0123456789abcdef"[c >> 4]);
      hex.push_back("0123456789abcdef"[c & 15]);
    }
    return hex;
  };
  // Row 1 as schema version 4 wrote it: the length, then an LZ4 block.
  {
    const std::string text = One("SELECT events FROM history WHERE first_event_id = 1");
    ASSERT_FALSE(text.empty());
    std::string out(4 + LZ4_compressBound(static_cast<int>(text.size())), '\0');
    for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
    const int k = LZ4_compress_default(text.data(), out.data() + 4, static_cast<int>(text.size()),
                                       static_cast<int>(out.size() - 4));
    ASSERT_GT(k, 0);
    out.resize(4 + k);
    ASSERT_EQ(One("UPDATE history SET events = NULL, events_lz4 = '\\x" + hex_of(out) +
                  "' WHERE first_event_id = 1 RETURNING 1"),
              "1");
  }
  // Row 5 as schema version 3 wrote it: raw deflate in events_z.
  {
    const std::string text = One("SELECT events FROM history WHERE first_event_id = 5");
    ASSERT_FALSE(text.empty());
    z_stream z{};
    ASSERT_EQ(deflateInit2(&z, 1, Z_DEFLATED, -12, 4, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(text.size())), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    ASSERT_EQ(One("UPDATE history SET events = NULL, events_z = '\\x" + hex_of(out) +
                  "' WHERE first_event_id = 5 RETURNING 1"),
              "1");
  }
  std::vector<engine::Event> want;
  for (const auto& w : writes) want.insert(want.end(), w.events.begin(), w.events.end());
  auto same = [](const engine::Event& a, const engine::Event& b) {
    return a.id == b.id && a.timestamp_us == b.timestamp_us && a.type == b.type &&
           a.state_name == b.state_name && a.details == b.details;
  };
  for (bool reverse : {false, true}) {
    for (int page : {1, 2, 3, 100}) {
      SCOPED_TRACE(saga::StrCat(reverse ? "reverse" : "forward", " pages of ", page));
      std::vector<engine::Event> got;
      int64_t cursor = reverse ? INT64_MAX : 0;
      while (got.size() < want.size() + 1) {
        auto p = store->History(id, cursor, page, reverse);
        ASSERT_TRUE(p.ok()) << p.status();
        if (p->empty()) break;
        got.insert(got.end(), p->begin(), p->end());
        cursor = p->back().id;
      }
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        const auto& w = want[reverse ? want.size() - 1 - i : i];
        EXPECT_TRUE(same(got[i], w)) << "event " << w.id;
      }
    }
  }
  // The compressed rows are read the same by a store that writes text.
  auto text_reader = store_->History(id, 0, 100, false);
  ASSERT_TRUE(text_reader.ok()) << text_reader.status();
  EXPECT_EQ(text_reader->size(), want.size());
  // A damaged compressed row (any form) is a DataLoss error, not a crash.
  ASSERT_EQ(One("UPDATE history SET events_packed = '\\x0128b52ffd00ff01' "
                "WHERE first_event_id = 2 RETURNING 1"),
            "1");
  auto damaged = store->History(id, 0, 100, false);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  ASSERT_EQ(One("UPDATE history SET events_packed = NULL, events_lz4 = '\\x0a00000000ff01' "
                "WHERE first_event_id = 2 RETURNING 1"),
            "1");
  damaged = store->History(id, 0, 100, false);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  ASSERT_EQ(One("UPDATE history SET events_lz4 = NULL, events_z = '\\x00ff01' "
                "WHERE first_event_id = 2 RETURNING 1"),
            "1");
  damaged = store->History(id, 0, 100, false);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
}

}  // namespace
}  // namespace saga::itest
