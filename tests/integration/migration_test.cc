// Schema migrations as the saga-coordinator binary applies them.
#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/common/strings.h"
#include "coordinator/storage/pg/pg_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class Migrations : public PgTest {};

constexpr const char* kTables[] = {
    "state_machines", "state_machine_revisions", "executions", "history", "tasks", "timers",
    "settings"};

// version|applied_us rows of saga_schema_version, in order.
std::vector<std::string> AppliedMigrations(const std::string& dsn) {
  SqlResult r = RunSql(dsn,
                       "SELECT version || '|' || name || '|' || applied_us "
                       "FROM saga_schema_version ORDER BY version");
  EXPECT_TRUE(r.ok) << r.error;
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(row[0]);
  return out;
}

TEST_F(Migrations, ApplyToAnEmptyDatabaseThenASecondStartAppliesNothing) {
  const int latest = storage::PgStore::LatestSchemaVersion();
  ASSERT_GE(latest, 1);
  {
    SqlResult none = RunSql(dsn(), "SELECT to_regclass('saga_schema_version') IS NULL");
    ASSERT_TRUE(none.ok) << none.error;
    ASSERT_EQ(none.rows[0][0], "t") << "the test database is not empty";
  }
  auto c = Start();
  ASSERT_TRUE(c);
  EXPECT_THAT(c->Stderr(), HasSubstr(saga::StrCat("(schema version ", latest, ")")));

  SqlResult version = RunSql(dsn(), "SELECT max(version), count(*) FROM saga_schema_version");
  ASSERT_TRUE(version.ok) << version.error;
  EXPECT_EQ(version.rows[0][0], std::to_string(latest));
  EXPECT_EQ(version.rows[0][1], std::to_string(latest)) << "one row per migration";
  for (const char* table : kTables) {
    SqlResult t =
        RunSql(dsn(), saga::StrCat("SELECT to_regclass('public.", table, "') IS NOT NULL"));
    ASSERT_TRUE(t.ok) << t.error;
    EXPECT_EQ(t.rows[0][0], "t") << "table " << table << " missing";
  }
  // The schema works: a state machine can be created through the API.
  auto stub = c->NewStub();
  EXPECT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "m", R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})")));
  const std::vector<std::string> first = AppliedMigrations(dsn());
  ASSERT_EQ(first.size(), static_cast<size_t>(latest));
  EXPECT_EQ(c->Terminate(seconds(15)), 0) << c->Stderr();

  auto again = Start({}, "second start");
  ASSERT_TRUE(again);
  EXPECT_EQ(AppliedMigrations(dsn()), first) << "the second start re-applied a migration";
  SqlResult kept = RunSql(dsn(), "SELECT count(*) FROM state_machines");
  ASSERT_TRUE(kept.ok) << kept.error;
  EXPECT_EQ(kept.rows[0][0], "1") << "data did not survive the second start";
  EXPECT_EQ(again->Terminate(seconds(15)), 0) << again->Stderr();

  // --no-migrate on an up-to-date schema starts normally.
  CoordinatorOptions no_migrate;
  no_migrate.migrate = false;
  auto third = Start(no_migrate, "no-migrate on current schema");
  ASSERT_TRUE(third);
  EXPECT_EQ(AppliedMigrations(dsn()), first);
}

TEST_F(Migrations, NoMigrateOnAnEmptyDatabaseRefusesToStartNamingTheSchemaVersion) {
  const int latest = storage::PgStore::LatestSchemaVersion();
  CoordinatorProcess p({"--listen", "127.0.0.1:0", "--database-url", dsn(), "--no-migrate"},
                       "no-migrate");
  std::optional<int> code = p.WaitExit(seconds(20));
  ASSERT_TRUE(code.has_value()) << "still running; output:\n" << p.Stderr();
  EXPECT_NE(*code, 0);
  const std::string err = p.Stderr();
  EXPECT_THAT(err, Not(HasSubstr("listening on")));
  EXPECT_THAT(err, HasSubstr("schema is at version 0"));
  EXPECT_THAT(err, HasSubstr(saga::StrCat("needs version ", latest)));
  EXPECT_THAT(err, HasSubstr("without --no-migrate"));
  // It changed nothing.
  SqlResult none = RunSql(dsn(), "SELECT to_regclass('saga_schema_version') IS NULL");
  ASSERT_TRUE(none.ok) << none.error;
  EXPECT_EQ(none.rows[0][0], "t");
}

TEST_F(Migrations, ABadHistoryCompressionFlagIsRefusedNamingIt) {
  for (const char* bad : {"-1", "12kb", ""}) {
    CoordinatorProcess p({"--listen", "127.0.0.1:0", "--database-url", dsn(),
                          "--history-compression-from", bad},
                         "bad flag");
    std::optional<int> code = p.WaitExit(seconds(20));
    ASSERT_TRUE(code.has_value()) << "still running; output:\n" << p.Stderr();
    EXPECT_NE(*code, 0);
    EXPECT_THAT(p.Stderr(), HasSubstr("--history-compression-from must be a number of bytes"))
        << bad;
  }
}

TEST_F(Migrations, TwoCoordinatorsStartingAtOnceApplyEachMigrationOnce) {
  CoordinatorProcess a({"--listen", "127.0.0.1:0", "--database-url", dsn()}, "a");
  CoordinatorProcess b({"--listen", "127.0.0.1:0", "--database-url", dsn()}, "b");
  ASSERT_TRUE(a.WaitListening(seconds(20))) << a.Stderr();
  ASSERT_TRUE(b.WaitListening(seconds(20))) << b.Stderr();
  EXPECT_EQ(AppliedMigrations(dsn()).size(),
            static_cast<size_t>(storage::PgStore::LatestSchemaVersion()));
  // They agree on the task-token secret (stored once in settings).
  SqlResult s = RunSql(dsn(), "SELECT count(*) FROM settings WHERE key = 'task_token_secret'");
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.rows[0][0], "1");
}


// Migration 2 turns the one-row-per-event history of version 1 into one row
// per transition: a history written by a version-1 coordinator reads the
// same after the upgrade, in pages either way.
TEST_F(Migrations, AHistoryOfVersionOneReadsTheSameAfterTheUpgradeToBatches) {
  const char* kMachine = R"({"StartAt":"A","States":{
      "A":{"Type":"Pass","Result":{"x":"\u00e9"},"ResultPath":"$.a","Next":"W"},
      "W":{"Type":"Wait","Seconds":1,"Next":"B"},
      "B":{"Type":"Pass","End":true}}})";
  // History rows as readable JSON text, so that SQL can rebuild version 1.
  CoordinatorOptions text_history;
  text_history.extra_args = {"--history-compression-from", "0"};
  auto c = Start(text_history);
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "m", kMachine)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "m", "old", R"({"v":1})", &arn)));
  ASSERT_EQ(WaitFinished(stub.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  auto before = History(stub.get(), arn);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_GE(before->size(), 8u);
  ASSERT_EQ(c->Terminate(seconds(15)), 0) << c->Stderr();

  // The database as a version-1 coordinator left it: one row per event.
  SqlResult down = RunSql(
      dsn(),
      "BEGIN; "
      "CREATE TABLE history_events (execution_id uuid NOT NULL, event_id bigint NOT NULL, "
      "ts_us bigint NOT NULL, frame integer NOT NULL, type text NOT NULL, state_name text, "
      "details text NOT NULL, PRIMARY KEY (execution_id, event_id)); "
      "INSERT INTO history_events SELECT h.execution_id, (ev->>0)::bigint, (ev->>1)::bigint, "
      "(ev->>2)::int, ev->>3, ev->>4, (ev->5)::text "
      "FROM history h, json_array_elements(h.events::json) AS ev; "
      "DROP TABLE history; DELETE FROM saga_schema_version WHERE version >= 2; COMMIT; "
      "SELECT count(*) FROM history_events");
  ASSERT_TRUE(down.ok) << down.error;
  ASSERT_EQ(down.rows.back()[0], std::to_string(before->size()));

  auto up = Start({}, "upgraded");
  ASSERT_TRUE(up);
  EXPECT_EQ(AppliedMigrations(dsn()).size(),
            static_cast<size_t>(storage::PgStore::LatestSchemaVersion()));
  SqlResult rows = RunSql(dsn(), "SELECT count(*) FROM history");
  ASSERT_TRUE(rows.ok) << rows.error;
  EXPECT_EQ(rows.rows[0][0], std::to_string(before->size())) << "one row per old event";
  auto ustub = up->NewStub();
  for (int page : {1, 2, 3, 1000}) {
    SCOPED_TRACE(page);
    auto after = History(ustub.get(), arn, page);
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(Normalize(*after), Normalize(*before));
    auto rev = History(ustub.get(), arn, page, /*reverse=*/true);
    ASSERT_TRUE(rev.ok()) << rev.status();
    std::vector<std::string> want = Normalize(*before);
    std::reverse(want.begin(), want.end());
    EXPECT_EQ(Normalize(*rev), want);
  }
  // And the upgraded database runs new executions.
  std::string arn2;
  ASSERT_TRUE(IsOk(StartExecution(ustub.get(), "m", "new", "{}", &arn2)));
  EXPECT_EQ(WaitFinished(ustub.get(), arn2, seconds(20)).status(), pb::SUCCEEDED);
}

}  // namespace
}  // namespace saga::itest
