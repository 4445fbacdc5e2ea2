#include "coordinator/storage/pg/history_codec.h"

#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <memory>

namespace saga::storage {
namespace {

// History dictionary 1: zstd "raw content", the fragments of the events JSON
// (pg_store.cc, AddEvents: [id, ts_us, frame, "Type", "State" or null,
// {details}]) that every history repeats, each once. zstd refers back into
// it like into text already seen; nearer is cheaper, so the most frequent
// fragments come last. Generic on purpose: nothing of any user's payloads.
// NEVER CHANGE IT: rows written with codec 1 need exactly these bytes (a
// test pins them); a new dictionary is a new codec.
constexpr char kDictionary1[] =
    R"~("States.ALL""States.DataLimitExceeded")~"
    R"~("States.ExceedToleratedFailureThreshold""States.IntrinsicFailure")~"
    R"~("States.ItemReaderFailed""States.NoChoiceMatched")~"
    R"~("States.ParameterPathFailure""States.Permissions")~"
    R"~("States.ResultPathMatchFailure""States.ResultWriterFailed")~"
    R"~("States.BranchFailed""States.Runtime""States.HeartbeatTimeout")~"
    R"~("States.Timeout""States.TaskFailed")~"
    R"~({"error":"States.TaskFailed","cause":")~"
    R"~(,0,"ExecutionAborted",null,{)~"
    R"~(,0,"ExecutionTimedOut",null,{)~"
    R"~(,0,"ExecutionRedriven",null,{)~"
    R"~(,0,"ExecutionStopRequested",null,{)~"
    R"~(,0,"ExecutionFailed",null,{)~"
    R"~("toleratedFailurePercentage":)~"
    R"~("toleratedFailureCount":)~"
    R"~("maxConcurrency":)~"
    R"~("stopRequest":)~"
    R"~("waitUntil":")~"
    R"~("timeoutInSeconds":)~"
    R"~("heartbeatInSeconds":)~"
    R"~("delaySeconds":)~"
    R"~("retrier":)~"
    R"~("attempt":)~"
    R"~("timerId":)~"
    R"~("frameId":)~"
    R"~("frameIds":[)~"
    R"~("compensatedState":")~"
    R"~("pendingCompensations":)~"
    R"~("children":)~"
    R"~("branches":)~"
    R"~("items":)~"
    R"~("length":)~"
    R"~("results":)~"
    R"~("index":)~"
    R"~("compensationInput":{"Input":)~"
    R"~("Result":)~"
    R"~("compensatedTaskId":)~"
    R"~(,0,"TaskStateAborted",")~"
    R"~(,0,"WaitStateAborted",")~"
    R"~(,0,"ParallelBranchAborted",")~"
    R"~(,0,"ParallelStateAborted",")~"
    R"~(,0,"MapIterationAborted",")~"
    R"~(,0,"MapStateAborted",")~"
    R"~(,0,"ActivityTimedOut",")~"
    R"~(,0,"ActivityFailed",")~"
    R"~(,0,"ParallelBranchFailed",")~"
    R"~(,0,"ParallelStateFailed",")~"
    R"~(,0,"MapIterationFailed",")~"
    R"~(,0,"MapStateFailed",")~"
    R"~(,0,"CompensationFailed",")~"
    R"~(,0,"FailStateEntered",")~"
    R"~(,0,"WaitStateEntered",")~"
    R"~(,0,"WaitStateExited",")~"
    R"~(,0,"SucceedStateEntered",")~"
    R"~(,0,"SucceedStateExited",")~"
    R"~(,0,"ChoiceStateEntered",")~"
    R"~(,0,"ChoiceStateExited",")~"
    R"~(,0,"PassStateEntered",")~"
    R"~(,0,"PassStateExited",")~"
    R"~(,0,"MapStateEntered",")~"
    R"~(,0,"MapStateStarted",")~"
    R"~(,0,"MapIterationStarted",")~"
    R"~(,0,"MapIterationSucceeded",")~"
    R"~(,0,"MapStateSucceeded",")~"
    R"~(,0,"MapStateExited",")~"
    R"~(,0,"CompensateStateEntered",")~"
    R"~(,0,"CompensationScheduled",")~"
    R"~(,0,"CompensationStarted",")~"
    R"~(,0,"CompensationSucceeded",")~"
    R"~(,0,"CompensateStateExited",")~"
    R"~(,0,"StateRetryScheduled",")~"
    R"~(,0,"ParallelStateEntered",")~"
    R"~(,0,"ParallelStateStarted",")~"
    R"~(,0,"ParallelBranchSucceeded",")~"
    R"~(,0,"ParallelStateSucceeded",")~"
    R"~(,0,"ParallelStateExited",")~"
    R"~(,0,"ActivityScheduled",")~"
    R"~(,0,"ActivityStarted",")~"
    R"~(,0,"ActivitySucceeded",")~"
    R"~(,0,"TaskStateEntered",")~"
    R"~(,0,"TaskStateExited",")~"
    R"~("},"stateMachineArn":"arn:saga:states:::stateMachine:)~"
    R"~(","stateMachineName":")~"
    R"~([[1,17)~"
    R"~(,0,"ExecutionStarted",null,{"input":)~"
    R"~(,"roleArn":"arn:saga:iam:::role/saga-coordinator","executionArn":"arn:saga:states:::execution:)~"
    R"~(","name":")~"
    R"~(,0,"ExecutionSucceeded",null,{"output":)~"
    R"~({"taskId":1,"workerName":")~"
    R"~({"resource":")~"
    R"~(,"taskId":)~"
    R"~({"taskId":)~"
    R"~({"output":)~"
    R"~({"input":)~"
    R"~(}],[)~";

constexpr unsigned char kCodecZstdDictionary1 = 1;
constexpr int kZstdLevel = 1;

std::string_view Dictionary1() { return {kDictionary1, sizeof kDictionary1 - 1}; }

// The prepared dictionaries: made once, then only read (zstd allows sharing
// them between threads).
const ZSTD_CDict* CDict1() {
  static const ZSTD_CDict* const d =
      ZSTD_createCDict(Dictionary1().data(), Dictionary1().size(), kZstdLevel);
  return d;
}
const ZSTD_DDict* DDict1() {
  static const ZSTD_DDict* const d = ZSTD_createDDict(Dictionary1().data(), Dictionary1().size());
  return d;
}

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

}  // namespace

std::string_view HistoryDictionary1() { return Dictionary1(); }

std::string PackHistory(std::string_view text) {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  const ZSTD_CDict* dict = CDict1();
  if (!cctx || !dict) return {};
  std::string out(1 + ZSTD_compressBound(text.size()), '\0');
  out[0] = static_cast<char>(kCodecZstdDictionary1);
  const size_t n =
      ZSTD_compress_usingCDict(cctx.get(), out.data() + 1, out.size() - 1, text.data(), text.size(), dict);
  if (ZSTD_isError(n)) return {};
  out.resize(1 + n);
  return out;
}

absl::StatusOr<std::string> UnpackHistory(std::string_view data) {
  const auto bad = [](std::string_view why) {
    return absl::DataLossError(std::string("history row: events_packed ") + std::string(why));
  };
  if (data.empty()) return bad("is empty");
  if (static_cast<unsigned char>(data[0]) != kCodecZstdDictionary1) {
    return bad("names an unknown codec (written by a newer coordinator?)");
  }
  data.remove_prefix(1);
  const unsigned long long size = ZSTD_getFrameContentSize(data.data(), data.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxHistoryRowText) {
    return bad("is not a zstd frame of a history row");
  }
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  const ZSTD_DDict* dict = DDict1();
  if (!dctx || !dict) return absl::ResourceExhaustedError("history row: cannot make a zstd context");
  std::string out(static_cast<size_t>(size), '\0');
  const size_t n = ZSTD_decompress_usingDDict(dctx.get(), out.data(), out.size(), data.data(),
                                              data.size(), dict);
  if (ZSTD_isError(n) || n != size) return bad("is damaged");
  return out;
}

absl::StatusOr<std::string> HistoryLz4Text(std::string_view data) {
  const auto bad = [] { return absl::DataLossError("history row: events_lz4 is not LZ4 data"); };
  if (data.size() < 4) return bad();
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  if (n > kMaxHistoryRowText) return bad();
  std::string out(n, '\0');
  const int r = LZ4_decompress_safe(data.data() + 4, out.data(), static_cast<int>(data.size() - 4),
                                    static_cast<int>(n));
  if (r < 0 || static_cast<uint32_t>(r) != n) return bad();
  return out;
}

absl::StatusOr<std::string> HistoryDeflateText(std::string_view data) {
  z_stream z{};
  if (inflateInit2(&z, -15) != Z_OK) return absl::InternalError("inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const size_t have = out.size();
    out.resize(have == 0 ? data.size() * 4 + 64 : have * 2);
    if (out.size() > kMaxHistoryRowText) break;
    z.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    z.avail_out = static_cast<uInt>(out.size() - have);
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(have + (out.size() - have - z.avail_out));
    if (rc == Z_BUF_ERROR && z.avail_in > 0) rc = Z_OK;  // output full: grow
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::DataLossError("history row: events_z is not deflate data");
  return out;
}

}  // namespace saga::storage
