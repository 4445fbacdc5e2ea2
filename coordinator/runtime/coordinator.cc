#include "coordinator/runtime/coordinator.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/time/clock.h"
#include "coordinator/asl/errors.h"
#include "coordinator/common/json.h"
#include "coordinator/common/strings.h"

namespace saga::runtime {
namespace {

using engine::ExecutionStatus;
using storage::ExecutionRecord;

constexpr char kExecutionArnPrefix[] = "arn:saga:states:::execution:";
constexpr char kStateMachineArnPrefix[] = "arn:saga:states:::stateMachine:";
constexpr int kMaxAttempts = 5;  // retries of a transition that hit a conflict

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

uint64_t NextSeed() {
  static std::atomic<uint64_t> counter{std::random_device{}() * 0x9E3779B97F4A7C15ULL};
  return Rng(counter.fetch_add(1)).Next();
}

// A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds,
// then 74 random bits. Executions started close together get close ids, so
// the B-tree indexes keyed by execution id (executions, history) and
// by default name take inserts at their right edge instead of on random leaf
// pages: with millions of executions stored, that is the difference between
// touching a few hot pages and a full-page image in the WAL for most index
// inserts after every checkpoint.
std::string NewUuid() {
  Rng rng(NextSeed());
  const uint64_t ms = static_cast<uint64_t>(NowUs() / 1000);
  uint64_t a = (ms << 16) | 0x7000ULL | (rng.Next() & 0x0FFFULL);
  uint64_t b = (rng.Next() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    uint8_t byte = static_cast<uint8_t>((i < 8 ? a >> (56 - 8 * i) : b >> (56 - 8 * (i - 8))) & 0xFF);
    s.push_back(kHex[byte >> 4]);
    s.push_back(kHex[byte & 15]);
  }
  return s;
}

bool LooksLikeUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

int StatusCode(ExecutionStatus s) {
  switch (s) {
    case ExecutionStatus::kSucceeded:
      return 2;
    case ExecutionStatus::kFailed:
      return 3;
    case ExecutionStatus::kTimedOut:
      return 4;
    case ExecutionStatus::kAborted:
      return 5;
    default:
      return 1;
  }
}

std::string StripArn(const std::string& name_or_arn) {
  if (name_or_arn.rfind(kStateMachineArnPrefix, 0) == 0) {
    return name_or_arn.substr(sizeof(kStateMachineArnPrefix) - 1);
  }
  return name_or_arn;
}

bool Retryable(const absl::Status& s) { return s.code() == absl::StatusCode::kAborted; }

}  // namespace

std::string Coordinator::ExecutionArn(const std::string& state_machine, const std::string& name) {
  return saga::StrCat(kExecutionArnPrefix, state_machine, ":", name);
}
std::string Coordinator::StateMachineArn(const std::string& name) {
  return saga::StrCat(kStateMachineArnPrefix, name);
}

namespace {

constexpr char kRoleArn[] = "arn:saga:iam:::role/saga-coordinator";

// ExecutionStarted's details that the executions row implies: they are left
// out of the stored event (its history row then carries the input and
// little else) and put back whenever the history is read (ExpandStarted),
// after "input", in the order the engine writes them. A value that differs
// from the implied one is stored as it is.
constexpr std::string_view kImpliedStartKeys[] = {"roleArn", "executionArn", "name",
                                                  "stateMachineArn", "stateMachineName"};

json::Value ImpliedStartDetail(std::string_view key, const std::string& state_machine,
                               const std::string& name) {
  if (key == "roleArn") return json::Value(kRoleArn);
  if (key == "executionArn") return json::Value(Coordinator::ExecutionArn(state_machine, name));
  if (key == "name") return json::Value(name);
  if (key == "stateMachineArn") return json::Value(Coordinator::StateMachineArn(state_machine));
  return json::Value(state_machine);  // stateMachineName
}

void LeanStarted(const std::string& state_machine, const std::string& name,
                 std::vector<engine::Event>* events) {
  for (engine::Event& e : *events) {
    if (e.type != engine::EventType::kExecutionStarted || !e.details.is_object()) continue;
    for (std::string_view key : kImpliedStartKeys) {
      const json::Value* v = e.details.Find(key);
      if (v != nullptr && *v == ImpliedStartDetail(key, state_machine, name)) e.details.Erase(key);
    }
  }
}

// Puts back what LeanStarted left out, wherever the history is read (the
// replay that rebuilds an execution, GetExecutionHistory).
void ExpandStarted(const ExecutionRecord& row, std::vector<engine::Event>* events) {
  for (engine::Event& e : *events) {
    if (e.type != engine::EventType::kExecutionStarted || !e.details.is_object()) continue;
    bool lean = false;
    for (std::string_view key : kImpliedStartKeys) lean = lean || e.details.Find(key) == nullptr;
    if (!lean) continue;
    json::Object full;
    const json::Object& stored = e.details.as_object();
    full.reserve(stored.size() + std::size(kImpliedStartKeys));
    auto add_implied = [&] {
      for (std::string_view key : kImpliedStartKeys) {
        if (const json::Value* v = e.details.Find(key)) {
          full.emplace_back(std::string(key), *v);
        } else {
          full.emplace_back(std::string(key), ImpliedStartDetail(key, row.state_machine, row.name));
        }
      }
    };
    bool added = false;
    for (const json::Member& m : stored) {
      if (std::find(std::begin(kImpliedStartKeys), std::end(kImpliedStartKeys), m.first) !=
          std::end(kImpliedStartKeys)) {
        continue;  // placed by add_implied
      }
      full.push_back(m);
      if (m.first == "input") {
        add_implied();
        added = true;
      }
    }
    if (!added) add_implied();
    e.details = json::Value(std::move(full));
  }
}

}  // namespace

Coordinator::Coordinator(storage::PgStore* store, CoordinatorOptions options)
    : store_(store),
      options_(std::move(options)),
      tokens_(options_.token_secret),
      instance_(NewUuid().substr(24)) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Start() {
  if (!options_.run_background) return;
  timer_thread_ = std::thread([this] { TimerLoop(); });
  listen_thread_ = std::thread([this] { ListenLoop(); });
  notify_thread_ = std::thread([this] { NotifyLoop(); });
  // Work a coordinator that died left un-NOTIFYed: everybody rescans.
  NotifyOthers({"*"}, true);
}

void Coordinator::Shutdown() {
  {
    std::lock_guard<std::mutex> g(wake_mu_);
    stopping_ = true;
    for (auto& [a, p] : pollers_) {
      for (Waiter* w : p.waiters) w->cv.notify_one();
    }
  }
  wake_cv_.notify_all();
  {
    std::lock_guard<std::mutex> g(notify_mu_);
  }
  notify_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
  if (listen_thread_.joinable()) listen_thread_.join();
  if (notify_thread_.joinable()) notify_thread_.join();
}

CoordinatorStats Coordinator::stats() const {
  CoordinatorStats s;
  s.transitions_unlocked = n_unlocked_;
  s.transitions_locked = n_locked_;
  s.unlocked_conflicts = n_conflicts_;
  s.transitions_together = n_batched_;
  s.lease_waits = n_lease_waits_;
  s.tasks_handed_off = n_handed_off_;
  s.tasks_claimed = n_claimed_;
  s.replays = n_replays_;
  s.results_async = n_async_;
  return s;
}

bool Coordinator::stopping() {
  std::lock_guard<std::mutex> g(wake_mu_);
  return stopping_;
}

engine::EngineOptions Coordinator::EngineOpts(const std::string& execution_id) const {
  engine::EngineOptions o;
  o.task_token = [this, execution_id](const engine::ExecutionState&, int64_t task_id) {
    return tokens_.Encode(TaskRef{execution_id, task_id});
  };
  return o;
}

// ---------------------------------------------------------------------------
// State machines

std::vector<asl::ValidationError> Coordinator::Validate(const std::string& definition) {
  return asl::ValidateText(definition);
}

namespace {

absl::Status DefinitionError(const std::vector<asl::ValidationError>& errors) {
  return absl::InvalidArgumentError(asl::ValidationErrorsToJson(errors).Dump());
}

absl::Status CheckNameField(const std::string& field, const std::string& name) {
  std::string why = asl::CheckName(name);
  if (why.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(saga::StrCat(field, ": ", why));
}

}  // namespace

absl::StatusOr<storage::StateMachineRecord> Coordinator::CreateStateMachine(
    const std::string& name, const std::string& definition, int type) {
  if (absl::Status s = CheckNameField("name", name); !s.ok()) return s;
  if (type == 2) {
    return absl::UnimplementedError(
        "type: EXPRESS state machines are not supported yet; create a STANDARD one");
  }
  if (type != 0 && type != 1) return absl::InvalidArgumentError("type: unknown state machine type");
  auto errors = Validate(definition);
  if (!errors.empty()) return DefinitionError(errors);
  return store_->CreateStateMachine(name, 1, definition, NowUs());
}

absl::StatusOr<storage::StateMachineRecord> Coordinator::LatestRevision(const std::string& name) {
  if (auto cached = CachedLatestRevision(name)) return *std::move(cached);
  const int64_t now = NowUs();
  auto rec = store_->GetStateMachine(name, 0);
  if (!rec.ok()) return rec.status();
  std::lock_guard<std::mutex> g(cache_mu_);
  if (latest_.size() > 10000) latest_.clear();
  latest_[name] = {now, *rec};
  return rec;
}

std::optional<storage::StateMachineRecord> Coordinator::CachedLatestRevision(
    const std::string& name) {
  const int64_t now = NowUs();
  std::lock_guard<std::mutex> g(cache_mu_);
  auto it = latest_.find(name);
  if (it != latest_.end() && now - it->second.first < kLatestRevisionTtlUs) return it->second.second;
  return std::nullopt;
}

void Coordinator::ForgetLatest(const std::string& name) {
  std::lock_guard<std::mutex> g(cache_mu_);
  latest_.erase(name);
}

absl::StatusOr<storage::StateMachineRecord> Coordinator::UpdateStateMachine(
    const std::string& name, const std::string& definition) {
  const std::string n = StripArn(name);
  if (absl::Status s = CheckNameField("name", n); !s.ok()) return s;
  auto errors = Validate(definition);
  if (!errors.empty()) return DefinitionError(errors);
  auto r = store_->UpdateStateMachine(n, definition, NowUs());
  ForgetLatest(n);
  return r;
}

absl::StatusOr<storage::StateMachineRecord> Coordinator::DescribeStateMachine(
    const std::string& name_or_arn, int revision) {
  if (revision < 0) return absl::InvalidArgumentError("revision: must not be negative");
  const std::string n = StripArn(name_or_arn);
  if (n.empty()) return absl::InvalidArgumentError("name: must not be empty");
  return store_->GetStateMachine(n, revision);
}

absl::StatusOr<std::vector<storage::StateMachineRecord>> Coordinator::ListStateMachines(
    const std::string& after, int limit) {
  return store_->ListStateMachines(after, std::clamp(limit <= 0 ? 100 : limit, 1, 1000));
}

absl::Status Coordinator::DeleteStateMachine(const std::string& name_or_arn) {
  const std::string n = StripArn(name_or_arn);
  if (n.empty()) return absl::InvalidArgumentError("name: must not be empty");
  absl::Status s = store_->DeleteStateMachine(n);
  ForgetLatest(n);
  return s;
}

absl::StatusOr<std::shared_ptr<const asl::StateMachine>> Coordinator::Machine(
    const std::string& name, int revision,
    const std::function<absl::StatusOr<std::string>()>& definition) {
  {
    std::lock_guard<std::mutex> g(cache_mu_);
    auto it = machines_.find({name, revision});
    if (it != machines_.end()) return it->second;
  }
  auto text = definition();
  if (!text.ok()) return text.status();
  auto m = asl::CompileText(*text);
  if (!m.ok()) {
    return absl::InternalError(
        saga::StrCat("stored definition of ", name, " revision ", revision, " does not compile"));
  }
  std::lock_guard<std::mutex> g(cache_mu_);
  machines_[{name, revision}] = *m;
  return *m;
}

// ---------------------------------------------------------------------------
// The transition path

absl::StatusOr<std::unique_ptr<engine::ExecutionState>> Coordinator::TakeState(
    const ExecutionRecord& row, storage::TransitionTxn& txn) {
  {
    std::lock_guard<std::mutex> g(cache_mu_);
    auto it = cache_.find(row.execution_id);
    if (it != cache_.end()) {
      std::unique_ptr<engine::ExecutionState> st;
      if (it->second.version == row.version) st = std::move(it->second.state);
      lru_.erase(it->second.lru);
      cache_.erase(it);
      if (st) return st;
    }
  }
  // Cache miss or stale (another coordinator advanced it): replay history.
  ++n_replays_;
  // The definition is read in this transaction: a second pooled connection
  // must not be waited for while this one is held.
  auto machine = Machine(row.state_machine, row.revision,
                         [&] { return txn.LoadDefinition(row.state_machine, row.revision); });
  if (!machine.ok()) return machine.status();
  auto events = txn.LoadEvents(0);
  if (!events.ok()) return events.status();
  ExpandStarted(row, &*events);
  auto st = std::make_unique<engine::ExecutionState>();
  st->machine = *machine;
  for (const auto& e : *events) {
    absl::Status s = engine::Apply(st.get(), e);
    if (!s.ok()) return s;
  }
  return st;
}

void Coordinator::PutState(const std::string& id, int64_t version,
                           std::unique_ptr<engine::ExecutionState> state) {
  std::lock_guard<std::mutex> g(cache_mu_);
  if (state->finished()) return;  // nothing will advance it again
  lru_.push_front(id);
  Cached c;
  c.version = version;
  c.state = std::move(state);
  c.lru = lru_.begin();
  cache_[id] = std::move(c);
  while (static_cast<int>(cache_.size()) > options_.max_cached_executions) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
}

storage::Writes Coordinator::ToWrites(const std::string& execution_id,
                                      const std::map<int64_t, int32_t>& tasks_before,
                                      const std::map<int64_t, int32_t>& timers_before,
                                      const engine::ExecutionState& after, engine::Decision& d,
                                      int64_t now) {
  storage::Writes w;
  w.events = std::move(d.events);
  w.status = StatusCode(after.status);
  if (after.finished()) {
    w.stop_us = after.stop_us;
    if (after.status == ExecutionStatus::kSucceeded) w.output = after.output.Dump();
    if (after.has_error) w.error = after.error;
    if (after.has_cause) w.cause = after.cause;
  }
  for (auto& t : d.tasks) {
    if (!after.open_tasks.count(t.task_id)) continue;  // cancelled in the same decision
    storage::TaskRecord r;
    r.execution_id = execution_id;
    r.task_id = t.task_id;
    r.activity = ActivityOf(t.resource);
    r.state_name = t.state_name;
    r.input = t.input.Dump();
    r.attempt = t.attempt;
    r.scheduled_us = now;
    if (t.timeout_seconds) r.timeout_at_us = now + *t.timeout_seconds * 1000000;
    r.heartbeat_seconds = t.heartbeat_seconds;
    if (std::find(w.notify_activities.begin(), w.notify_activities.end(), r.activity) ==
        w.notify_activities.end()) {
      w.notify_activities.push_back(r.activity);
    }
    w.new_tasks.push_back(std::move(r));
  }
  for (const auto& [task, _] : tasks_before) {
    if (!after.open_tasks.count(task)) w.deleted_tasks.push_back(task);
  }
  for (const auto& t : d.timers) {
    if (after.open_timers.count(t.timer_id)) {
      w.new_timers.push_back({execution_id, t.timer_id, t.fire_at_us});
    }
  }
  for (const auto& [timer, _] : timers_before) {
    if (!after.open_timers.count(timer)) w.deleted_timers.push_back(timer);
  }
  return w;
}

namespace {

// The TransitionTxn of the optimistic path: no row is locked, so anything
// that needs a lock sends the transition down the locked path.
class UnlockedTxn : public storage::TransitionTxn {
 public:
  absl::StatusOr<std::vector<engine::Event>> LoadEvents(int64_t) override { return NeedsLock(); }
  absl::StatusOr<std::optional<storage::TaskRecord>> LockTask(int64_t) override {
    return NeedsLock();
  }
  absl::StatusOr<std::string> LoadDefinition(const std::string&, int) override {
    return NeedsLock();
  }
  static absl::Status NeedsLock() { return absl::AbortedError("saga: needs the row lock"); }
};

}  // namespace

absl::StatusOr<storage::Writes> Coordinator::Decide(const ExecutionRecord& row,
                                                    std::unique_ptr<engine::ExecutionState> st,
                                                    storage::TransitionTxn& txn, const CommandFn& make,
                                                    const ExtraFn& extra, Decided* out) {
  const std::string& execution_id = row.execution_id;
  auto cmd = make(*st, txn);
  if (!cmd.ok()) {
    PutState(execution_id, row.version, std::move(st));  // unchanged
    return cmd.status();
  }
  if (!cmd->has_value() && dynamic_cast<UnlockedTxn*>(&txn) != nullptr) {
    // Row writes only (stale-row cleanup, give-back): they copy the locked
    // row's fields, which the unlocked path has not read.
    PutState(execution_id, row.version, std::move(st));
    return UnlockedTxn::NeedsLock();
  }
  const auto tasks_before = st->open_tasks;
  const auto timers_before = st->open_timers;
  const int64_t now = NowUs();
  storage::Writes w;
  if (cmd->has_value()) {
    auto d = engine::Process(st.get(), **cmd, now, NextSeed(), EngineOpts(execution_id));
    if (!d.ok()) {
      if (d.status().code() == absl::StatusCode::kInternal) return d.status();
      PutState(execution_id, row.version, std::move(st));  // refused: unchanged
      return d.status();
    }
    CancelHandOffs(out->handoffs);  // from an earlier try of this transition
    out->handoffs = ReserveHandOffs(execution_id, st.get(), &*d, now);
    w = ToWrites(execution_id, tasks_before, timers_before, *st, *d, now);
    ApplyHandOffs(out->handoffs, now, &w);
  } else {
    w.status = row.status;
    w.stop_us = row.stop_us;
    w.output = row.output;
    w.error = row.error;
    w.cause = row.cause;
  }
  if (extra) extra(*st, &w);
  out->woken = w.notify_activities;
  out->timers = storage::ArmsWakeup(w);
  MarkTimerNotify(&w, now);
  out->new_version = row.version + 1;
  out->done = std::move(st);
  out->writes = w;
  return w;
}

std::unique_ptr<engine::ExecutionState> Coordinator::TakeCached(const std::string& id,
                                                                int64_t* version) {
  std::lock_guard<std::mutex> g(cache_mu_);
  auto it = cache_.find(id);
  if (it == cache_.end()) return nullptr;
  std::unique_ptr<engine::ExecutionState> st = std::move(it->second.state);
  *version = it->second.version;
  lru_.erase(it->second.lru);
  cache_.erase(it);
  return st;
}

bool Coordinator::AcquireLease(const std::string& id, bool wait) {
  LeaseShard& shard = LeaseShardOf(id);
  std::unique_lock<std::mutex> lock(shard.mu);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  if (shard.held.count(id)) ++n_lease_waits_;
  while (shard.held.count(id)) {
    if (!wait) return false;
    ++shard.waiters;
    const bool timed_out = shard.cv.wait_until(lock, deadline) == std::cv_status::timeout;
    --shard.waiters;
    if (timed_out && shard.held.count(id)) return false;
  }
  shard.held.insert(id);
  return true;
}

void Coordinator::ReleaseLease(const std::string& id) {
  LeaseShard& shard = LeaseShardOf(id);
  bool wake;
  {
    std::lock_guard<std::mutex> g(shard.mu);
    shard.held.erase(id);
    wake = shard.waiters > 0;
  }
  if (wake) shard.cv.notify_all();
}

void Coordinator::FinishDecided(const std::string& execution_id, Decided& d) {
  DeliverHandOffs(d.handoffs, *d.done, d.writes);
  PutState(execution_id, d.new_version, std::move(d.done));
  for (const auto& a : d.woken) WakeActivity(a);
  if (d.timers) WakeTimers();
  NotifyOthers(d.woken, false);
}

std::vector<absl::Status> Coordinator::ApplyCommands(const std::vector<CommandSpec>& cmds) {
  std::vector<absl::Status> result(cmds.size());
  // ApplyCommand's fast path for each command whose execution is cached
  // and not leased (by another thread, or by an earlier command of this
  // call), with one group commit for all of them; the others, and those
  // that need the locked path, one by one afterwards in their order.
  struct Prepared {
    size_t i = 0;
    int64_t version = 0;
    Decided d;
  };
  std::vector<Prepared> prepared;
  prepared.reserve(cmds.size());
  std::vector<size_t> one_by_one;
  for (size_t i = 0; i < cmds.size(); ++i) {
    const std::string& id = cmds[i].execution_id;
    if (!AcquireLease(id, /*wait=*/false)) {
      one_by_one.push_back(i);
      continue;
    }
    int64_t version = 0;
    std::unique_ptr<engine::ExecutionState> st = TakeCached(id, &version);
    if (!st) {
      ReleaseLease(id);
      one_by_one.push_back(i);
      continue;
    }
    Prepared p;
    p.i = i;
    p.version = version;
    ExecutionRecord row;
    row.execution_id = id;
    row.version = version;
    UnlockedTxn txn;
    if (!Decide(row, std::move(st), txn, cmds[i].make, nullptr, &p.d).ok()) {
      CancelHandOffs(p.d.handoffs);
      ReleaseLease(id);
      one_by_one.push_back(i);
      continue;
    }
    prepared.push_back(std::move(p));
  }
  if (!prepared.empty()) {
    std::vector<storage::PgStore::VersionedWrites> writes;
    writes.reserve(prepared.size());
    for (Prepared& p : prepared) {
      PushOnCommit(p.d.handoffs, *p.d.done, &p.d.writes);
      writes.push_back({&cmds[p.i].execution_id, p.version, &p.d.writes});
    }
    const auto applied = store_->WriteIfVersionMany(writes);
    for (size_t k = 0; k < prepared.size(); ++k) {
      Prepared& p = prepared[k];
      const std::string& id = cmds[p.i].execution_id;
      if (applied[k].ok() && *applied[k]) {
        ++n_unlocked_;
        if (prepared.size() > 1) ++n_batched_;
        FinishDecided(id, p.d);
        ReleaseLease(id);
        continue;
      }
      ++n_conflicts_;
      CancelHandOffs(p.d.handoffs);
      ReleaseLease(id);
      if (!applied[k].ok() && !Retryable(applied[k].status())) {
        result[p.i] = applied[k].status();
      } else {
        one_by_one.push_back(p.i);  // advanced elsewhere: the locked path replays
      }
    }
  }
  std::sort(one_by_one.begin(), one_by_one.end());
  for (size_t i : one_by_one) {
    result[i] = ApplyCommand(cmds[i].execution_id, cmds[i].make, nullptr, false);
  }
  return result;
}

absl::Status Coordinator::ApplyCommand(const std::string& execution_id, const CommandFn& make,
                                       const ExtraFn& extra, bool skip_locked) {
  // One transition of an execution at a time in this process: a second one
  // (the other branch of a Parallel finishing, a heartbeat) waits for the
  // first and then decides on its cached result, instead of losing the
  // version race and replaying the history under a row lock. Without the
  // lease (waited 5 s, or a scan that must not wait) the locked path below
  // is as safe, only slower.
  const bool leased = AcquireLease(execution_id, !skip_locked);
  if (!leased && skip_locked) return absl::ResourceExhaustedError("execution is busy");
  LeaseGuard lease{this, execution_id, leased};
  auto finish = [&](Decided& d) { FinishDecided(execution_id, d); };
  // Fast path: with the execution's state cached at version v, decide
  // without a lock and write in one statement that applies only if the row
  // is still at v. A cache miss, a refusal, anything that needs a row lock,
  // or another process having advanced the execution: the locked path.
  {
    int64_t version = 0;
    std::unique_ptr<engine::ExecutionState> st = TakeCached(execution_id, &version);
    if (st) {
      Decided d;
      struct CancelOnFailure {
        Coordinator* self;
        std::vector<HandOff>& h;
        ~CancelOnFailure() { self->CancelHandOffs(h); }  // empty after delivery
      } cancel_on_failure{this, d.handoffs};
      ExecutionRecord row;
      row.execution_id = execution_id;
      row.version = version;
      UnlockedTxn txn;
      auto w = Decide(row, std::move(st), txn, make, extra, &d);
      if (w.ok()) {
        PushOnCommit(d.handoffs, *d.done, &*w);
        auto applied = store_->WriteIfVersion(execution_id, version, *w);
        if (applied.ok() && *applied) {
          ++n_unlocked_;
          finish(d);
          return absl::OkStatus();
        }
        ++n_conflicts_;
        if (!applied.ok() && !Retryable(applied.status())) return applied.status();
        // Advanced elsewhere (or not expressible in one statement): the
        // decided state is discarded; the locked path replays.
      }
    }
  }
  absl::Status last;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    Decided d;
    struct CancelOnFailure {
      Coordinator* self;
      std::vector<HandOff>& h;
      ~CancelOnFailure() { self->CancelHandOffs(h); }  // empty after delivery
    } cancel_on_failure{this, d.handoffs};
    last = store_->Transition(
        execution_id,
        [&](const ExecutionRecord& row, storage::TransitionTxn& txn) -> absl::StatusOr<storage::Writes> {
          auto st = TakeState(row, txn);
          if (!st.ok()) return st.status();
          return Decide(row, *std::move(st), txn, make, extra, &d);
        },
        skip_locked);
    if (last.ok()) {
      ++n_locked_;
      finish(d);
      return last;
    }
    if (!Retryable(last)) return last;
  }
  return last;
}

// ---------------------------------------------------------------------------
// Executions

// A start decided and not yet written: StartExecution's state between its
// decision and its write. Its destructor gives back what the start holds if
// it never finishes (reserved hand-offs, the lease).
struct Coordinator::PendingStart {
  Coordinator* self = nullptr;
  std::string sm, name, id;
  json::Value input;
  std::unique_ptr<engine::ExecutionState> st;
  std::vector<HandOff> handoffs;
  storage::Writes w;
  ExecutionRecord row;
  bool leased = false;
  // Set by the group commit's thread (storage::Writes::after_commit).
  bool finished_on_commit = false;
  ~PendingStart() {
    self->CancelHandOffs(handoffs);  // empty after delivery
    if (leased) self->ReleaseLease(id);
  }
};

namespace {
// DecideStart's answer when it would have to read the database.
absl::Status WouldBlock() { return absl::UnavailableError("saga: would block"); }
bool IsWouldBlock(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable && s.message() == "saga: would block";
}
}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator::PendingStart>> Coordinator::DecideStart(
    const std::string& state_machine, const std::string& name_in, const std::string& input_in,
    bool may_block) {
  auto p = std::make_unique<PendingStart>();
  p->self = this;
  p->sm = StripArn(state_machine);
  const std::string& sm = p->sm;
  if (sm.empty()) return absl::InvalidArgumentError("state_machine: must not be empty");
  p->name = name_in.empty() ? NewUuid() : name_in;
  const std::string& name = p->name;
  if (absl::Status s = CheckNameField("name", name); !s.ok()) return s;
  const std::string input_text = input_in.empty() ? "{}" : input_in;
  if (input_text.size() > asl::kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        saga::StrCat("input: larger than ", asl::kMaxPayloadBytes, " bytes"));
  }
  auto input = json::Parse(input_text);
  if (!input.ok()) {
    return absl::InvalidArgumentError(saga::StrCat("input: ", saga::ToStd(input.status().message())));
  }
  p->input = *std::move(input);
  std::optional<storage::StateMachineRecord> cached = CachedLatestRevision(sm);
  if (!cached && !may_block) return WouldBlock();
  auto rec = cached ? absl::StatusOr<storage::StateMachineRecord>(*std::move(cached))
                    : LatestRevision(sm);
  if (!rec.ok()) {
    if (rec.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(saga::StrCat("state_machine: state machine '", sm, "' does not exist"));
    }
    return rec.status();
  }
  auto machine = Machine(sm, rec->revision,
                         [&]() -> absl::StatusOr<std::string> { return rec->definition; });
  if (!machine.ok()) return machine.status();

  p->id = NewUuid();
  const std::string& id = p->id;
  // Held until the new state is cached: the group commit pushes the first
  // tasks before the start's caller hears of its commit, and a result
  // coming back meanwhile must wait for it, not miss the cache and replay
  // the history on the locked path. A new id: never waits.
  p->leased = AcquireLease(id, /*wait=*/false);
  const int64_t now = NowUs();
  p->st = std::make_unique<engine::ExecutionState>();
  p->st->machine = *machine;
  engine::StartCommand start;
  start.input = p->input;
  start.info.execution_id = ExecutionArn(sm, name);
  start.info.name = name;
  start.info.state_machine_id = StateMachineArn(sm);
  start.info.state_machine_name = sm;
  start.info.role_arn = kRoleArn;
  auto d = engine::Process(p->st.get(), start, now, NextSeed(), EngineOpts(id));
  if (!d.ok()) return d.status();
  p->handoffs = ReserveHandOffs(id, p->st.get(), &*d, now);
  storage::Writes& w = p->w;
  w = ToWrites(id, {}, {}, *p->st, *d, now);
  LeanStarted(sm, name, &w.events);
  ApplyHandOffs(p->handoffs, now, &w);
  MarkTimerNotify(&w, now);
  ExecutionRecord& row = p->row;
  row.execution_id = id;
  row.state_machine = sm;
  row.name = name;
  row.revision = rec->revision;
  row.status = w.status;
  row.version = 1;
  row.start_us = now;
  row.input = input_text;
  // Once committed, the group commit's thread pushes the first tasks,
  // caches the state and gives the lease back before it tells the caller:
  // a result coming straight back finds the execution cached and free (a
  // worker stream then applies it without waiting; see
  // ApplyWorkerResultAsync), instead of waiting until the caller runs.
  w.after_commit = [this, q = p.get()] {
    DeliverHandOffs(q->handoffs, *q->st, q->w);
    PutState(q->id, 1, std::move(q->st));
    if (q->leased) ReleaseLease(q->id);
    q->leased = false;
    q->finished_on_commit = true;
  };
  return p;
}

absl::StatusOr<ExecutionRecord> Coordinator::FinishStart(PendingStart& p, const absl::Status& written) {
  if (written.code() == absl::StatusCode::kAlreadyExists) {
    auto existing = store_->FindExecution(p.sm, p.name);
    if (!existing.ok()) return existing.status();
    auto existing_input = json::Parse(existing->input);
    if (existing->status == 1 && existing_input.ok() && *existing_input == p.input) {
      return *existing;  // idempotent retry of the same start
    }
    return absl::AlreadyExistsError(saga::StrCat(
        "name: execution '", p.name, "' of '", p.sm, "' already exists",
        existing->status == 1 ? " with a different input" : " and is closed"));
  }
  if (!written.ok()) return written;
  const storage::Writes& w = p.w;
  if (!p.finished_on_commit) DeliverHandOffs(p.handoffs, *p.st, w);
  for (const auto& a : w.notify_activities) WakeActivity(a);
  if (storage::ArmsWakeup(w)) WakeTimers();
  NotifyOthers(w.notify_activities, false);
  ExecutionRecord row = p.row;
  row.last_event_id = w.events.empty() ? 0 : w.events.back().id;
  row.stop_us = w.stop_us;
  row.output = w.output;
  row.error = w.error;
  row.cause = w.cause;
  if (!p.finished_on_commit) PutState(p.id, 1, std::move(p.st));
  return row;
}

absl::StatusOr<storage::ExecutionRecord> Coordinator::StartExecution(
    const std::string& state_machine, const std::string& name, const std::string& input) {
  auto p = DecideStart(state_machine, name, input, /*may_block=*/true);
  if (!p.ok()) return p.status();
  return FinishStart(**p, store_->CreateExecution((*p)->row, (*p)->w));
}

bool Coordinator::StartExecutionAsync(
    const std::string& state_machine, const std::string& name, const std::string& input,
    std::function<void(absl::StatusOr<storage::ExecutionRecord>)> done,
    const std::function<void(std::function<void()>)>& run_blocking) {
  auto decided = DecideStart(state_machine, name, input, /*may_block=*/false);
  if (!decided.ok()) {
    if (IsWouldBlock(decided.status())) return false;
    done(decided.status());
    return true;
  }
  PendingStart* p = decided->get();
  // Finishes the start, which it then owns, and answers.
  auto finish = [this, done](PendingStart* q, const absl::Status& written) {
    std::unique_ptr<PendingStart> owned(q);
    done(FinishStart(*owned, written));
  };
  const bool queued = store_->CreateExecutionAsync(
      &p->row, &p->w, [p, finish, run_blocking](absl::Status written) {
        if (written.code() == absl::StatusCode::kAlreadyExists) {  // reads the row
          run_blocking([p, finish, written] { finish(p, written); });
          return;
        }
        finish(p, written);
      });
  if (queued) {
    (void)decided->release();  // the continuation owns it
    return true;
  }
  // Timers, say: a transaction of its own, on a thread that may wait.
  run_blocking([this, p = decided->release(), finish] {
    finish(p, store_->CreateExecution(p->row, p->w));
  });
  return true;
}

absl::StatusOr<ExecutionRecord> Coordinator::ResolveExecution(const std::string& arn) {
  if (LooksLikeUuid(arn)) return store_->GetExecution(arn);
  if (arn.rfind(kExecutionArnPrefix, 0) != 0) {
    return absl::InvalidArgumentError(
        saga::StrCat("execution_arn: '", arn, "' is not an execution ARN (", kExecutionArnPrefix,
                     "STATE_MACHINE:NAME)"));
  }
  const std::string rest = arn.substr(sizeof(kExecutionArnPrefix) - 1);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return absl::InvalidArgumentError(saga::StrCat("execution_arn: '", arn, "' is malformed"));
  }
  auto r = store_->FindExecution(rest.substr(0, colon), rest.substr(colon + 1));
  if (r.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(saga::StrCat("execution_arn: execution '", arn, "' does not exist"));
  }
  return r;
}

absl::StatusOr<ExecutionRecord> Coordinator::DescribeExecution(const std::string& arn) {
  return ResolveExecution(arn);
}

absl::StatusOr<std::vector<ExecutionRecord>> Coordinator::ListExecutions(
    const std::string& state_machine, int status, const std::string& page_token, int limit,
    std::string* next_token) {
  const std::string sm = StripArn(state_machine);
  if (sm.empty()) return absl::InvalidArgumentError("state_machine: must not be empty");
  if (status < 0 || status > 5) return absl::InvalidArgumentError("status_filter: unknown status");
  limit = std::clamp(limit <= 0 ? 100 : limit, 1, 1000);
  std::optional<int64_t> before_us;
  std::string before_id;
  if (!page_token.empty()) {
    size_t colon = page_token.find(':');
    char* end = nullptr;
    long long us = colon == std::string::npos ? 0 : std::strtoll(page_token.c_str(), &end, 10);
    if (colon == std::string::npos || end != page_token.c_str() + colon ||
        !LooksLikeUuid(page_token.substr(colon + 1))) {
      return absl::InvalidArgumentError("next_token: not a token from ListExecutions");
    }
    before_us = us;
    before_id = page_token.substr(colon + 1);
  }
  auto r = store_->ListExecutions(sm, status, before_us, before_id, limit);
  if (!r.ok()) return r.status();
  next_token->clear();
  if (static_cast<int>(r->size()) == limit) {
    *next_token = saga::StrCat(r->back().start_us, ":", r->back().execution_id);
  }
  return r;
}

absl::StatusOr<std::vector<engine::Event>> Coordinator::GetExecutionHistory(
    const std::string& arn, const std::string& page_token, int limit, bool reverse,
    std::string* next_token) {
  auto row = ResolveExecution(arn);
  if (!row.ok()) return row.status();
  limit = std::clamp(limit <= 0 ? 100 : limit, 1, 1000);
  int64_t cursor = reverse ? INT64_MAX : 0;
  if (!page_token.empty()) {
    char* end = nullptr;
    cursor = std::strtoll(page_token.c_str(), &end, 10);
    if (end != page_token.c_str() + page_token.size()) {
      return absl::InvalidArgumentError("next_token: not a token from GetExecutionHistory");
    }
  }
  auto events = store_->History(row->execution_id, cursor, limit, reverse);
  if (!events.ok()) return events.status();
  ExpandStarted(*row, &*events);
  next_token->clear();
  if (static_cast<int>(events->size()) == limit) *next_token = saga::StrCat(events->back().id);
  return events;
}

absl::StatusOr<int64_t> Coordinator::StopExecution(const std::string& arn, const std::string& error,
                                                   const std::string& cause, bool compensate) {
  if (error.size() > 256) return absl::InvalidArgumentError("error: longer than 256 characters");
  if (cause.size() > 32768) return absl::InvalidArgumentError("cause: longer than 32768 characters");
  auto row = ResolveExecution(arn);
  if (!row.ok()) return row.status();
  int64_t stopped = 0;
  absl::Status s = ApplyCommand(
      row->execution_id,
      [&](const engine::ExecutionState& st,
          storage::TransitionTxn&) -> absl::StatusOr<std::optional<engine::Command>> {
        if (st.finished()) {
          return absl::FailedPreconditionError(saga::StrCat(
              "execution_arn: execution is not running (", engine::ExecutionStatusName(st.status), ")"));
        }
        engine::StopCommand c;
        if (!error.empty()) c.error = error;
        if (!cause.empty()) c.cause = cause;
        c.compensate = compensate;
        return std::optional<engine::Command>(c);
      },
      [&](const engine::ExecutionState& st, storage::Writes* w) {
        // Rolling back first: the time of the request.
        stopped = st.finished() ? st.stop_us : (w->events.empty() ? 0 : w->events.front().timestamp_us);
      },
      false);
  if (!s.ok()) return s;
  return stopped;
}

absl::StatusOr<int64_t> Coordinator::RedriveExecution(const std::string& arn) {
  auto row = ResolveExecution(arn);
  if (!row.ok()) return row.status();
  int64_t redriven = 0;
  absl::Status s = ApplyCommand(
      row->execution_id,
      [&](const engine::ExecutionState&,
          storage::TransitionTxn&) -> absl::StatusOr<std::optional<engine::Command>> {
        return std::optional<engine::Command>(engine::RedriveCommand{});
      },
      [&](const engine::ExecutionState&, storage::Writes* w) {
        if (!w->events.empty()) redriven = w->events.front().timestamp_us;
      },
      false);
  if (!s.ok()) return s;
  return redriven;
}

// ---------------------------------------------------------------------------
// Activities

std::string ActivityOf(const std::string& resource) {
  const size_t n = sizeof(kWaitForTaskToken) - 1;
  if (resource.size() > n && resource.compare(resource.size() - n, n, kWaitForTaskToken) == 0) {
    return resource.substr(0, resource.size() - n);
  }
  return resource;
}

namespace {

std::string IdempotencyKey(const std::string& execution_id, int64_t task_id) {
  return saga::StrCat(execution_id, "/", task_id);
}

// W3C trace context: the execution is the trace, the task attempt a span.
std::string TraceParent(const std::string& execution_id, int64_t task_id) {
  std::string trace;
  for (char c : execution_id) {
    if (c != '-') trace.push_back(c);
  }
  char span[17];
  snprintf(span, sizeof(span), "%016llx", static_cast<unsigned long long>(task_id));
  return saga::StrCat("00-", trace, "-", span, "-01");
}

}  // namespace

void Coordinator::FillTask(const engine::ExecutionState& st, const storage::TaskRecord& row,
                           ActivityTask* t) {
  t->task_token = tokens_.Encode(TaskRef{row.execution_id, row.task_id});
  t->activity = row.activity;
  t->input = row.input;
  t->execution_arn = st.info.execution_id;
  t->state_name = row.state_name;
  t->attempt = row.attempt;
  t->scheduled_unix_us = row.scheduled_us;
  if (row.timeout_at_us) {
    t->timeout_seconds = (*row.timeout_at_us - row.scheduled_us) / 1000000;
    t->deadline_unix_ms = *row.timeout_at_us / 1000;
  }
  t->heartbeat_seconds = row.heartbeat_seconds;
  t->idempotency_key = IdempotencyKey(row.execution_id, row.task_id);
  t->traceparent = TraceParent(row.execution_id, row.task_id);
  auto it = st.open_tasks.find(row.task_id);
  if (it == st.open_tasks.end()) return;
  const engine::Frame& f = st.frames.at(it->second);
  if (f.state < 0) return;
  const asl::State& state = f.current();
  if (f.stop_rollback || state.type == asl::StateType::kCompensate) {
    t->compensation = true;
    for (const auto& r : st.compensations) {
      if (r.seq != f.compensation_seq) continue;
      t->compensated_state = r.state_name;
      t->compensated_idempotency_key = IdempotencyKey(row.execution_id, r.task_id);
    }
  } else {
    t->callback = ActivityOf(state.resource) != state.resource;
  }
}

std::vector<Coordinator::HandOff> Coordinator::ReserveHandOffs(const std::string& execution_id,
                                                               engine::ExecutionState* st,
                                                               engine::Decision* d, int64_t now) {
  std::vector<HandOff> out;
  for (const auto& t : d->tasks) {
    if (!st->open_tasks.count(t.task_id)) continue;
    Waiter* w = nullptr;
    {
      std::lock_guard<std::mutex> g(wake_mu_);
      if (stopping_) break;
      auto it = pollers_.find(ActivityOf(t.resource));
      if (it == pollers_.end()) continue;
      // Round robin from the waiter after the last one given a task: with
      // credits returned as results arrive, the first stream in the list
      // would otherwise always have one and take every task.
      Pollers& p = it->second;
      const size_t n = p.waiters.size();
      for (size_t k = 0; k < n; ++k) {
        Waiter* c = p.waiters[(p.next + k) % n];
        if ((c->idle || c->persistent) &&
            c->reserved + static_cast<int>(c->mailbox.size()) < c->capacity) {
          ++c->reserved;
          w = c;
          p.next = (p.next + k + 1) % n;
          break;
        }
      }
    }
    if (w == nullptr) continue;
    auto started = engine::Process(st, engine::TaskStartedCommand{t.task_id, w->worker}, now,
                                   NextSeed(), EngineOpts(execution_id));
    if (!started.ok()) {
      std::vector<HandOff> one{HandOff{w, t.task_id}};
      CancelHandOffs(one);
      continue;
    }
    for (auto& e : started->events) d->events.push_back(std::move(e));
    out.push_back(HandOff{w, t.task_id});
  }
  return out;
}

void Coordinator::ApplyHandOffs(const std::vector<HandOff>& h, int64_t now, storage::Writes* w) {
  if (h.empty()) return;
  for (const auto& ho : h) {
    for (auto& r : w->new_tasks) {
      if (r.task_id != ho.task_id) continue;
      r.started_us = now;
      r.worker = ho.waiter->worker;
      if (r.heartbeat_seconds) r.heartbeat_at_us = now + *r.heartbeat_seconds * 1000000;
    }
  }
  // Wake-ups only for activities that still have unstarted tasks.
  std::vector<std::string> keep;
  for (const auto& r : w->new_tasks) {
    if (!r.started_us &&
        std::find(keep.begin(), keep.end(), r.activity) == keep.end()) {
      keep.push_back(r.activity);
    }
  }
  w->notify_activities = std::move(keep);
}

void Coordinator::DeliverHandOffs(std::vector<HandOff>& h, const engine::ExecutionState& st,
                                  const storage::Writes& w) {
  for (const auto& ho : h) {
    ActivityTask task;
    for (const auto& r : w.new_tasks) {
      if (r.task_id == ho.task_id) FillTask(st, r, &task);
    }
    Waiter* waiter = ho.waiter;
    if (waiter->deliver) {
      // Pushed from here. The task uses its credit now (as TakeTasks would);
      // the reservation holds the waiter (Unsubscribe) until it is pushed.
      {
        std::lock_guard<std::mutex> g(wake_mu_);
        --waiter->capacity;
        ++n_handed_off_;
      }
      const bool pushed = waiter->deliver(task);
      std::lock_guard<std::mutex> g(wake_mu_);
      --waiter->reserved;
      if (!pushed) {  // closing: the mailbox, as below (its credit back)
        ++waiter->capacity;
        waiter->mailbox.push_back(std::move(task));
        waiter->cv.notify_all();
      } else if (waiter->unsubscribing) {
        waiter->cv.notify_all();
      }
      continue;
    }
    std::lock_guard<std::mutex> g(wake_mu_);
    waiter->mailbox.push_back(std::move(task));
    ++n_handed_off_;
    --waiter->reserved;
    waiter->cv.notify_all();
  }
  h.clear();
}

void Coordinator::PushOnCommit(std::vector<HandOff>& h, const engine::ExecutionState& st,
                               storage::Writes* w) {
  if (h.empty()) return;
  // On the group commit's thread, while this transition's thread waits for
  // it (so `h`, `st` and `*w` live); that thread's DeliverHandOffs then has
  // nothing left to do.
  w->after_commit = [this, &h, &st, w] { DeliverHandOffs(h, st, *w); };
}

void Coordinator::CancelHandOffs(std::vector<HandOff>& h) {
  if (h.empty()) return;
  {
    std::lock_guard<std::mutex> g(wake_mu_);
    for (const auto& ho : h) {
      --ho.waiter->reserved;
      // A direct-delivery stream's dispatcher does not wait on hand-offs.
      if (!ho.waiter->deliver || ho.waiter->unsubscribing) ho.waiter->cv.notify_all();
    }
  }
  h.clear();
}

std::unique_ptr<Coordinator::Waiter> Coordinator::Subscribe(
    const std::vector<std::string>& activities, const std::string& worker, int credits,
    std::function<bool(const ActivityTask&)> deliver) {
  auto w = std::make_unique<Waiter>();
  w->persistent = true;
  w->deliver = std::move(deliver);
  w->worker = worker;
  w->activities = activities;
  w->capacity = credits;
  std::lock_guard<std::mutex> g(wake_mu_);
  for (const auto& a : activities) pollers_[a].waiters.push_back(w.get());
  return w;
}

std::vector<ActivityTask> Coordinator::Unsubscribe(Waiter* w) {
  std::unique_lock<std::mutex> lock(wake_mu_);
  for (const auto& a : w->activities) {
    auto& v = pollers_[a].waiters;
    v.erase(std::find(v.begin(), v.end(), w));
  }
  w->unsubscribing = true;
  w->cv.wait(lock, [&] { return w->reserved == 0; });  // in-flight hand-offs land
  return std::move(w->mailbox);
}

void Coordinator::AddCredits(Waiter* w, int n, int limit) {
  bool wake;
  {
    std::lock_guard<std::mutex> g(wake_mu_);
    w->capacity = std::min(w->capacity + n, limit);
    // Its dispatcher wakes for credits only when it waits for them (or
    // for the stream's end: n == 0); hand-offs use them without it.
    wake = n == 0 || w->credit_wait;
  }
  if (wake) w->cv.notify_all();
}

absl::StatusOr<std::vector<ActivityTask>> Coordinator::TakeTasks(
    Waiter* w, int wait_ms, const std::function<bool()>& cancelled, uint64_t* scanned) {
  return ClaimTasks(w->activities, w->worker, 0, wait_ms, cancelled, scanned, w);
}

absl::StatusOr<ActivityTask> Coordinator::GetActivityTask(const std::string& activity,
                                                          const std::string& worker, int wait_ms,
                                                          const std::function<bool()>& cancelled) {
  if (activity.empty()) return absl::InvalidArgumentError("activity: must not be empty");
  auto tasks = ClaimTasks({activity}, worker, 1, wait_ms, cancelled);
  if (!tasks.ok()) return tasks.status();
  return tasks->empty() ? ActivityTask{} : std::move(tasks->front());
}

absl::StatusOr<std::vector<ActivityTask>> Coordinator::ClaimTasks(
    const std::vector<std::string>& activities, const std::string& worker, int max_tasks,
    int wait_ms, const std::function<bool()>& cancelled, uint64_t* scanned, Waiter* subscription) {
  using Tasks = std::vector<ActivityTask>;
  if (activities.empty()) return absl::InvalidArgumentError("activities: must not be empty");
  if (worker.size() > 80) return absl::InvalidArgumentError("worker_name: longer than 80 characters");
  wait_ms = std::clamp(wait_ms <= 0 ? 60000 : wait_ms, 1, 60000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  Waiter local;
  Waiter& me = subscription != nullptr ? *subscription : local;
  std::vector<Pollers*> mine;
  {
    std::lock_guard<std::mutex> g(wake_mu_);
    for (const auto& a : activities) {
      Pollers* p = &pollers_[a];
      if (subscription == nullptr) p->waiters.push_back(&me);
      mine.push_back(p);
    }
  }
  if (subscription == nullptr) {
    me.worker = worker;
    me.capacity = std::max(1, max_tasks);
  }
  struct Unregister {
    Coordinator* self;
    Waiter* me;
    std::vector<Pollers*>& mine;
    bool active;
    ~Unregister() {
      if (!active) return;
      std::lock_guard<std::mutex> g(self->wake_mu_);
      for (Pollers* p : mine) p->waiters.erase(std::find(p->waiters.begin(), p->waiters.end(), me));
    }
  } unregister{this, &me, mine, subscription == nullptr};
  // Tasks returned use up a subscription's credits.
  auto take = [&](Tasks t) {
    if (subscription != nullptr) me.capacity -= static_cast<int>(t.size());
    return t;
  };
  auto seq_sum = [&] {
    uint64_t sum = 0;
    for (Pollers* p : mine) sum += p->seq;
    return sum;
  };
  size_t first = 0;  // rotates, so no activity of a stream starves the others
  while (true) {
    uint64_t seq;
    {
      std::lock_guard<std::mutex> g(wake_mu_);
      if (stopping_) return Tasks{};
      seq = seq_sum();
      if (!me.mailbox.empty() && (me.reserved == 0 || me.persistent)) {
        return take(std::move(me.mailbox));
      }
    }
    if (cancelled && cancelled()) return Tasks{};  // e.g. a worker stream that ended
    bool contended = false;
    bool no_credit;
    int credit_seen;  // capacity when no_credit was decided
    {
      std::lock_guard<std::mutex> g(wake_mu_);
      no_credit = me.capacity - me.reserved - static_cast<int>(me.mailbox.size()) <= 0;
      credit_seen = me.capacity;
    }
    const bool skip_scan = no_credit || (scanned != nullptr && *scanned == seq);
    bool any_skipped = false;  // a candidate another poll here was claiming
    for (size_t k = 0; !skip_scan && !no_credit && k < activities.size(); ++k) {
      const std::string& activity = activities[(first + k) % activities.size()];
      auto candidates = store_->RunnableTasks(activity, 16);
      if (!candidates.ok()) return candidates.status();
      size_t skipped = 0;  // candidates other polls of this process are claiming
      for (const auto& c : *candidates) {
        if (subscription != nullptr) {
          std::lock_guard<std::mutex> g(wake_mu_);
          if (me.capacity - me.reserved - static_cast<int>(me.mailbox.size()) <= 0) {
            // Hand-offs took the credits meanwhile: wait as without credit.
            no_credit = true;
            credit_seen = me.capacity;
            break;
          }
          // The claim's credit, reserved while it runs: a transition handing
          // a task off to this stream meanwhile must not count on it too
          // (the stream got two tasks on one credit).
          ++me.reserved;
        }
        struct Unreserve {
          Coordinator* self;
          Waiter* me;
          ~Unreserve() {
            if (me == nullptr) return;
            std::lock_guard<std::mutex> g(self->wake_mu_);
            --me->reserved;
            me->cv.notify_all();  // Unsubscribe waits for reservations to end
          }
        } unreserve{this, subscription};
        // Concurrent polls see the same candidates, oldest first: one that
        // another poll of this process is claiming (its execution row is
        // locked) is skipped here rather than found locked in the database.
        // That poll takes the task, or retries it if the row was locked.
        {
          std::lock_guard<std::mutex> g(claims_mu_);
          if (!claims_.insert(c.execution_id).second) {
            ++skipped;
            continue;
          }
        }
        struct Release {
          Coordinator* self;
          const std::string& id;
          ~Release() {
            std::lock_guard<std::mutex> g(self->claims_mu_);
            self->claims_.erase(id);
          }
        } release{this, c.execution_id};
        ActivityTask task;
        storage::TaskRecord claimed;
        absl::Status s = ApplyCommand(
            c.execution_id,
            [&](const engine::ExecutionState& st,
                storage::TransitionTxn& txn) -> absl::StatusOr<std::optional<engine::Command>> {
              if (dynamic_cast<UnlockedTxn*>(&txn) != nullptr) {
                // Decided on the cached state, without locks: the task row
                // is the candidate just read (a task's row changes only in
                // whether and by whom it is started), and the write applies
                // only if the execution is still at the cached version and
                // the task still not started (WriteIfVersion's claim check);
                // otherwise the locked path below decides again.
                if (!st.open_tasks.count(c.task_id)) {
                  return absl::FailedPreconditionError("task already taken");
                }
                claimed = c;
              } else {
                auto t = txn.LockTask(c.task_id);
                if (!t.ok()) return t.status();
                if (!t->has_value() || (*t)->started_us || !st.open_tasks.count(c.task_id)) {
                  return absl::FailedPreconditionError("task already taken");
                }
                claimed = **t;
              }
              FillTask(st, claimed, &task);
              return std::optional<engine::Command>(engine::TaskStartedCommand{c.task_id, worker});
            },
            [&](const engine::ExecutionState&, storage::Writes* w) {
              const int64_t now = NowUs();
              std::optional<int64_t> hb;
              if (claimed.heartbeat_seconds) hb = now + *claimed.heartbeat_seconds * 1000000;
              w->started = storage::Writes::Started{c.task_id, worker, now, hb};
            },
            /*skip_locked=*/true);
        if (s.ok()) {
          // More runnable tasks than this one and those being claimed: pass
          // the wake-up on to another poll.
          if (candidates->size() > skipped + 1) WakeActivity(activity);
          first = (first + k + 1) % activities.size();
          ++n_claimed_;
          if (task.execution_arn.empty()) {
            auto row = store_->GetExecution(c.execution_id);
            if (row.ok()) task.execution_arn = ExecutionArn(row->state_machine, row->name);
          }
          Tasks out;
          out.push_back(std::move(task));
          std::lock_guard<std::mutex> g(wake_mu_);
          return take(std::move(out));
        }
        if (s.code() == absl::StatusCode::kUnavailable) return s;
        if (s.code() == absl::StatusCode::kResourceExhausted) contended = true;
      }
      if (skipped > 0) any_skipped = true;
    }
    // Skipped candidates (their execution was being claimed by another poll
    // here, maybe for another activity): look again soon, as for locked rows.
    if (any_skipped) contended = true;
    if (scanned != nullptr && !contended && !no_credit) *scanned = seq;  // found nothing as of `seq`
    std::unique_lock<std::mutex> lock(wake_mu_);
    while (true) {
      if (!me.mailbox.empty() && (me.reserved == 0 || me.persistent)) {
        return take(std::move(me.mailbox));  // handed off by transitions
      }
      if (me.reserved > 0 && !me.persistent) {  // hand-offs in flight: this waiter must live
        me.idle = false;
        me.cv.wait(lock);
        continue;
      }
      if (stopping_ || seq_sum() != seq) break;
      if (cancelled && cancelled()) return Tasks{};
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return Tasks{};
      // Locked candidates: look again soon. Otherwise wait for a wake-up,
      // waking every 250 ms only to notice a cancelled call.
      auto slice = contended ? std::chrono::milliseconds(2) : std::chrono::milliseconds(250);
      // Credits that came while scanning (AddCredits did not wake it: it was
      // not waiting for them yet): scan again at once.
      if (no_credit && me.capacity > credit_seen) break;
      me.idle = true;
      me.credit_wait = no_credit;
      const bool timed_out =
          me.cv.wait_until(lock, std::min(deadline, now + slice)) == std::cv_status::timeout;
      me.idle = false;
      me.credit_wait = false;
      if (timed_out && contended) break;
      if (no_credit && me.capacity > credit_seen) break;  // credits came: scan
    }
  }
}

namespace {

absl::Status StaleTask() {
  return absl::FailedPreconditionError(
      "task_token: the task is no longer open (it timed out, was retried, was cancelled or its "
      "execution finished)");
}

}  // namespace

absl::Status Coordinator::SendTaskSuccess(const std::string& token, const std::string& output) {
  auto c = SucceedCommand(token, output, /*from_worker=*/false);
  if (!c.ok()) return c.status();
  return ApplyCommand(c->execution_id, c->make, nullptr, false);
}

namespace {

// A refusal from a CommandFn that writes nothing and is not an error.
absl::Status NoWrite() { return absl::CancelledError("saga: nothing to write"); }
bool IsNoWrite(const absl::Status& s) {
  return s.code() == absl::StatusCode::kCancelled && s.message() == "saga: nothing to write";
}

bool IsCallback(const engine::ExecutionState& st, int64_t task_id) {
  const engine::Frame& f = st.frames.at(st.open_tasks.at(task_id));
  return !f.stop_rollback && f.state >= 0 && f.current().type == asl::StateType::kTask &&
         ActivityOf(f.current().resource) != f.current().resource;
}

}  // namespace

absl::StatusOr<Coordinator::CommandSpec> Coordinator::SucceedCommand(const std::string& token,
                                                                      const std::string& output,
                                                                      bool from_worker) {
  auto ref = tokens_.Decode(token);
  if (!ref.ok()) return ref.status();
  // A worker's result over the payload limit (a Lambda's, on AWS) fails the
  // task with States.DataLimitExceeded, which Catch and Retry see; it is
  // neither parsed nor kept. SendTaskSuccess refuses it, as AWS's API does.
  const bool too_large = output.size() > asl::kMaxPayloadBytes;
  if (too_large && !from_worker) {
    return absl::InvalidArgumentError(
        saga::StrCat("output: larger than ", asl::kMaxPayloadBytes, " bytes"));
  }
  json::Value out;
  if (!too_large) {
    auto parsed = json::Parse(output.empty() ? "null" : output);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          saga::StrCat("output: ", saga::ToStd(parsed.status().message())));
    }
    out = *std::move(parsed);
  }
  CommandSpec c;
  c.execution_id = ref->execution_id;
  c.make = [task_id = ref->task_id, out = std::move(out), from_worker, too_large](
               const engine::ExecutionState& st,
               storage::TransitionTxn&) -> absl::StatusOr<std::optional<engine::Command>> {
    if (st.finished() || !st.open_tasks.count(task_id)) return StaleTask();
    // A callback task's worker only acknowledges the dispatch: the state
    // waits for SendTaskSuccess/SendTaskFailure with the token.
    if (from_worker && IsCallback(st, task_id)) return NoWrite();
    return std::optional<engine::Command>(
        engine::TaskSucceededCommand{task_id, out, too_large});
  };
  return c;
}

std::vector<absl::Status> Coordinator::ApplyWorkerResults(const std::vector<WorkerResult>& results) {
  std::vector<absl::Status> out(results.size());
  std::vector<CommandSpec> cmds;
  std::vector<size_t> index;
  for (size_t i = 0; i < results.size(); ++i) {
    const WorkerResult& r = results[i];
    auto c = r.failed ? FailCommand(r.token, r.error, r.cause)
                      : SucceedCommand(r.token, r.output, /*from_worker=*/true);
    if (!c.ok()) {
      out[i] = c.status();
      continue;
    }
    cmds.push_back(*std::move(c));
    index.push_back(i);
  }
  const std::vector<absl::Status> applied = ApplyCommands(cmds);
  for (size_t k = 0; k < cmds.size(); ++k) {
    out[index[k]] = IsNoWrite(applied[k]) ? absl::OkStatus() : applied[k];
  }
  return out;
}

bool Coordinator::ApplyWorkerResultAsync(
    const WorkerResult& r, std::function<void(absl::Status)> done,
    const std::function<void(std::function<void()>)>& run_blocking) {
  auto c = r.failed ? FailCommand(r.token, r.error, r.cause)
                    : SucceedCommand(r.token, r.output, /*from_worker=*/true);
  if (!c.ok()) return false;
  // ApplyCommands' fast path for one command, its continuation on the
  // group commit's thread. Everything it needs lives here until then.
  struct Op {
    CommandSpec spec;
    int64_t version = 0;
    Decided d;
    std::function<void(absl::Status)> done;
  };
  auto op = std::make_unique<Op>();
  op->spec = *std::move(c);
  const std::string& id = op->spec.execution_id;
  if (!AcquireLease(id, /*wait=*/false)) return false;
  std::unique_ptr<engine::ExecutionState> st = TakeCached(id, &op->version);
  if (!st) {
    ReleaseLease(id);
    return false;
  }
  ExecutionRecord row;
  row.execution_id = id;
  row.version = op->version;
  UnlockedTxn txn;
  if (!Decide(row, std::move(st), txn, op->spec.make, nullptr, &op->d).ok()) {
    // A refusal put the state back; ApplyWorkerResults decides it again.
    CancelHandOffs(op->d.handoffs);
    ReleaseLease(id);
    return false;
  }
  op->done = std::move(done);
  // After the write: finished, or refused for good (true); false: the row
  // moved on (or the write may be retried), for the locked path. The
  // lease, if held, goes back either way.
  auto settle = [this](Op* o, const absl::StatusOr<bool>& applied, bool leased) {
    const std::string& eid = o->spec.execution_id;
    if (applied.ok() && *applied) {
      ++n_unlocked_;
      FinishDecided(eid, o->d);
      if (leased) ReleaseLease(eid);
      o->done(absl::OkStatus());
      return true;
    }
    ++n_conflicts_;
    CancelHandOffs(o->d.handoffs);
    if (leased) ReleaseLease(eid);
    if (!applied.ok() && !Retryable(applied.status())) {
      o->done(applied.status());
      return true;
    }
    return false;
  };
  // The locked path: the decided state is discarded; it replays.
  auto locked = [this](Op* o) {
    absl::Status s = ApplyCommand(o->spec.execution_id, o->spec.make, nullptr, false);
    o->done(IsNoWrite(s) ? absl::OkStatus() : s);
  };
  PushOnCommit(op->d.handoffs, *op->d.done, &op->d.writes);
  Op* o = op.get();
  const bool queued = store_->WriteIfVersionAsync(
      &o->spec.execution_id, o->version, &o->d.writes,
      [this, o, settle, locked, run_blocking](absl::StatusOr<bool> applied) {
        std::unique_ptr<Op> owned(o);
        if (applied.ok() && *applied) ++n_async_;
        if (settle(owned.get(), applied, /*leased=*/true)) return;
        run_blocking([locked, p = owned.release()] {
          std::unique_ptr<Op> again(p);
          locked(again.get());
        });
      });
  if (queued) {
    (void)op.release();  // the continuation owns it
    return true;
  }
  // Timers, say: a transaction of its own, on a thread that may wait for
  // it. The decided state goes with it; the lease does not (a transition
  // waiting for it there could hold up that very thread), and the write is
  // version-checked without it.
  o->d.writes.after_commit = nullptr;
  ReleaseLease(id);
  run_blocking([this, settle, locked, p = op.release()] {
    std::unique_ptr<Op> owned(p);
    auto applied = store_->WriteIfVersion(owned->spec.execution_id, owned->version,
                                          owned->d.writes);
    if (!settle(owned.get(), applied, /*leased=*/false)) locked(owned.get());
  });
  return true;
}

absl::StatusOr<int> Coordinator::ReclaimLostTasks(const std::string& worker,
                                                  const std::vector<std::string>& held_tokens) {
  std::set<std::pair<std::string, int64_t>> held;
  for (const auto& t : held_tokens) {
    auto ref = tokens_.Decode(t);
    if (ref.ok()) held.insert({ref->execution_id, ref->task_id});
  }
  auto started = store_->TasksStartedBy(worker);
  if (!started.ok()) return started.status();
  int n = 0;
  for (const auto& t : *started) {
    if (held.count({t.execution_id, t.task_id})) continue;
    if (ReleaseTask(tokens_.Encode(TaskRef{t.execution_id, t.task_id}), worker).ok()) ++n;
  }
  return n;
}

absl::Status Coordinator::ReleaseTask(const std::string& token, const std::string& worker) {
  auto ref = tokens_.Decode(token);
  if (!ref.ok()) return ref.status();
  std::string activity;
  absl::Status s = ApplyCommand(
      ref->execution_id,
      [&](const engine::ExecutionState& st,
          storage::TransitionTxn& txn) -> absl::StatusOr<std::optional<engine::Command>> {
        if (st.finished() || !st.open_tasks.count(ref->task_id)) return StaleTask();
        auto t = txn.LockTask(ref->task_id);
        if (!t.ok()) return t.status();
        if (!t->has_value()) return StaleTask();
        if (!(*t)->started_us) return absl::FailedPreconditionError("task_token: the task is not started");
        if ((*t)->worker.value_or("") != worker) {
          return absl::FailedPreconditionError("task_token: the task is held by another worker");
        }
        activity = (*t)->activity;
        return std::optional<engine::Command>();  // no event: only the row
      },
      [&](const engine::ExecutionState&, storage::Writes* w) {
        w->released = ref->task_id;
        w->notify_activities.push_back(activity);
      },
      false);
  return s;
}

absl::StatusOr<Coordinator::CommandSpec> Coordinator::FailCommand(
    const std::string& token, const std::optional<std::string>& error,
    const std::optional<std::string>& cause) {
  auto ref = tokens_.Decode(token);
  if (!ref.ok()) return ref.status();
  if (error && error->size() > 256) {
    return absl::InvalidArgumentError("error: longer than 256 characters");
  }
  if (cause && cause->size() > 32768) {
    return absl::InvalidArgumentError("cause: longer than 32768 characters");
  }
  engine::TaskFailedCommand failed;
  failed.task_id = ref->task_id;
  failed.error = error;
  failed.cause = cause;
  CommandSpec c;
  c.execution_id = ref->execution_id;
  c.make = [failed](const engine::ExecutionState& st,
                    storage::TransitionTxn&) -> absl::StatusOr<std::optional<engine::Command>> {
    if (st.finished() || !st.open_tasks.count(failed.task_id)) return StaleTask();
    return std::optional<engine::Command>(failed);
  };
  return c;
}

absl::Status Coordinator::SendTaskFailure(const std::string& token,
                                          const std::optional<std::string>& error,
                                          const std::optional<std::string>& cause) {
  auto c = FailCommand(token, error, cause);
  if (!c.ok()) return c.status();
  return ApplyCommand(c->execution_id, c->make, nullptr, false);
}

absl::Status Coordinator::SendTaskHeartbeat(const std::string& token) {
  auto ref = tokens_.Decode(token);
  if (!ref.ok()) return ref.status();
  std::optional<int64_t> hb_seconds;
  absl::Status s = ApplyCommand(
      ref->execution_id,
      [&](const engine::ExecutionState& st,
          storage::TransitionTxn& txn) -> absl::StatusOr<std::optional<engine::Command>> {
        if (st.finished() || !st.open_tasks.count(ref->task_id)) return StaleTask();
        auto t = txn.LockTask(ref->task_id);
        if (!t.ok()) return t.status();
        if (!t->has_value()) return StaleTask();
        hb_seconds = (*t)->started_us ? (*t)->heartbeat_seconds : std::nullopt;
        if (!hb_seconds) return NoWrite();  // no deadline to extend: the check is all
        return std::optional<engine::Command>(engine::TaskHeartbeatCommand{ref->task_id});
      },
      [&](const engine::ExecutionState&, storage::Writes* w) {
        if (hb_seconds) w->heartbeat = {ref->task_id, NowUs() + *hb_seconds * 1000000};
      },
      false);
  return IsNoWrite(s) ? absl::OkStatus() : s;
}

// ---------------------------------------------------------------------------
// Timers and task deadlines

absl::Status Coordinator::SweepOnce() {
  while (true) {
    const int64_t now = NowUs();
    auto timers = store_->DueTimers(now, 64);
    if (!timers.ok()) return timers.status();
    auto deadlines = store_->DueDeadlines(now, 64);
    if (!deadlines.ok()) return deadlines.status();
    if (timers->empty() && deadlines->empty()) return absl::OkStatus();
    bool progressed = false;
    for (const auto& t : *timers) {
      absl::Status s = ApplyCommand(
          t.execution_id,
          [&](const engine::ExecutionState& st,
              storage::TransitionTxn&) -> absl::StatusOr<std::optional<engine::Command>> {
            if (st.finished() || !st.open_timers.count(t.timer_id)) {
              return std::optional<engine::Command>();  // stale row: just delete it
            }
            return std::optional<engine::Command>(engine::TimerFiredCommand{t.timer_id});
          },
          [&](const engine::ExecutionState& st, storage::Writes* w) {
            if (st.finished() || !st.open_timers.count(t.timer_id)) {
              if (std::find(w->deleted_timers.begin(), w->deleted_timers.end(), t.timer_id) ==
                  w->deleted_timers.end()) {
                w->deleted_timers.push_back(t.timer_id);
              }
            }
          },
          /*skip_locked=*/true);
      if (s.ok()) progressed = true;
      if (s.code() == absl::StatusCode::kUnavailable) return s;
    }
    for (const auto& dl : *deadlines) {
      absl::Status s = ApplyCommand(
          dl.execution_id,
          [&](const engine::ExecutionState& st,
              storage::TransitionTxn& txn) -> absl::StatusOr<std::optional<engine::Command>> {
            if (st.finished() || !st.open_tasks.count(dl.task_id)) {
              return std::optional<engine::Command>();
            }
            auto row = txn.LockTask(dl.task_id);
            if (!row.ok()) return row.status();
            if (!row->has_value()) return std::optional<engine::Command>();
            const auto& deadline = dl.heartbeat ? (*row)->heartbeat_at_us : (*row)->timeout_at_us;
            if (!deadline || *deadline > NowUs()) return std::optional<engine::Command>();  // extended
            return std::optional<engine::Command>(
                engine::TaskTimedOutCommand{dl.task_id, dl.heartbeat});
          },
          [&](const engine::ExecutionState& st, storage::Writes* w) {
            if ((st.finished() || !st.open_tasks.count(dl.task_id)) &&
                std::find(w->deleted_tasks.begin(), w->deleted_tasks.end(), dl.task_id) ==
                    w->deleted_tasks.end()) {
              w->deleted_tasks.push_back(dl.task_id);
            }
          },
          /*skip_locked=*/true);
      if (s.ok()) progressed = true;
      if (s.code() == absl::StatusCode::kUnavailable) return s;
    }
    if (!progressed) return absl::OkStatus();  // all locked by others: they handle them
  }
}

void Coordinator::WakeActivity(const std::string& activity, bool all) {
  std::lock_guard<std::mutex> g(wake_mu_);
  Pollers& p = pollers_[activity];
  ++p.seq;  // a waiter that is busy now rescans before it waits again
  const size_t n = p.waiters.size();
  for (size_t k = 0; k < n; ++k) {
    Waiter* w = p.waiters[(p.next + k) % n];
    if (!w->idle && !all) continue;
    w->cv.notify_one();
    if (all) continue;
    w->idle = false;  // the next wake-up goes to another idle waiter
    p.next = (p.next + k + 1) % n;
    return;
  }
}

void Coordinator::MarkTimerNotify(storage::Writes* w, int64_t now) {
  const auto t = storage::EarliestArmed(*w);
  w->notify_timers = t && *t < now + kSweeperMaxSleepUs;
}

void Coordinator::NotifyOthers(const std::vector<std::string>& activities, bool timers) {
  if (activities.empty() && !timers) return;
  {
    std::lock_guard<std::mutex> g(notify_mu_);
    notify_activities_.insert(activities.begin(), activities.end());
    notify_timers_ = notify_timers_ || timers;
  }
  notify_cv_.notify_one();
}

void Coordinator::NotifyLoop() {
  std::unique_lock<std::mutex> lock(notify_mu_);
  while (true) {
    notify_cv_.wait(lock, [&] { return stopping() || !notify_activities_.empty() || notify_timers_; });
    if (notify_activities_.empty() && !notify_timers_) return;  // stopping, nothing left
    std::vector<std::pair<std::string, std::string>> notes;
    for (const auto& a : notify_activities_) notes.emplace_back(storage::kTaskChannel, instance_ + " " + a);
    if (notify_timers_) notes.emplace_back(storage::kTimerChannel, instance_);
    notify_activities_.clear();
    notify_timers_ = false;
    lock.unlock();
    absl::Status s = store_->Notify(notes);
    lock.lock();
    if (!s.ok()) {
      // Database unreachable: other coordinators rescan when their LISTEN
      // connection comes back; keep what is queued and try again shortly.
      for (const auto& [c, p] : notes) {
        if (c == storage::kTaskChannel) notify_activities_.insert(p.substr(p.find(' ') + 1));
        else notify_timers_ = true;
      }
      notify_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping(); });
      if (stopping()) return;
    }
  }
}

void Coordinator::WakeTimers() {
  {
    std::lock_guard<std::mutex> g(wake_mu_);
    ++timer_seq_;
  }
  wake_cv_.notify_all();
}

void Coordinator::TimerLoop() {
  while (true) {
    uint64_t seq;
    {
      std::lock_guard<std::mutex> g(wake_mu_);
      if (stopping_) return;
      seq = timer_seq_;
    }
    absl::Status s = SweepOnce();
    std::optional<int64_t> next;
    if (s.ok()) {
      auto n = store_->NextWakeup();
      if (n.ok()) {
        next = *n;
      } else {
        s = n.status();
      }
    }
    // Sleep until the next due time (capped: a coordinator that died may
    // leave locked rows behind only briefly), a new timer, or shutdown.
    int64_t wait_us = s.ok() ? kSweeperMaxSleepUs : 500000;
    if (next) wait_us = std::clamp<int64_t>(*next - NowUs(), 0, wait_us);
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_cv_.wait_for(lock, std::chrono::microseconds(wait_us),
                      [&] { return stopping_ || timer_seq_ != seq; });
  }
}

void Coordinator::ListenLoop() {
  std::unique_ptr<storage::PgStore::Listener> listener;
  while (true) {
    {
      std::lock_guard<std::mutex> g(wake_mu_);
      if (stopping_) return;
    }
    if (!listener) {
      auto l = store_->Listen({storage::kTaskChannel, storage::kTimerChannel});
      if (!l.ok()) {
        std::unique_lock<std::mutex> lock(wake_mu_);
        wake_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
        continue;
      }
      listener = *std::move(l);
      // Notifications may have been missed while disconnected: rescan.
      {
        std::lock_guard<std::mutex> g(wake_mu_);
        for (auto& [a, p] : pollers_) {
          ++p.seq;
          for (Waiter* w : p.waiters) w->cv.notify_one();
        }
        ++timer_seq_;
      }
      wake_cv_.notify_all();
    }
    auto notes = listener->Wait(200);
    if (!notes.ok()) {
      listener.reset();
      continue;
    }
    for (const auto& [channel, payload] : *notes) {
      // "<instance> <activity>" on the task channel, "<instance>" on the timer one.
      const size_t sp = payload.find(' ');
      if (payload.substr(0, sp) == instance_) continue;  // our own: woken already
      if (channel != storage::kTaskChannel) {
        WakeTimers();
      } else if (sp != std::string::npos) {
        const std::string activity = payload.substr(sp + 1);
        if (activity == "*") {
          std::vector<std::string> all;
          {
            std::lock_guard<std::mutex> g(wake_mu_);
            for (const auto& [a, p] : pollers_) all.push_back(a);
          }
          for (const auto& a : all) WakeActivity(a, true);
        } else {
          WakeActivity(activity);
        }
      }
    }
  }
}

}  // namespace saga::runtime
