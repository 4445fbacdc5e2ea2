// Opaque, unforgeable task tokens.
//
// A token names one attempt of one task: the execution id and the task id
// (every attempt gets a fresh task id, so a token of an attempt that timed
// out or was retried can never complete the new one). It is authenticated
// with HMAC-SHA-256 under a server secret, so a forged or altered token is
// rejected before any database work.
//
// Thread safety: immutable after construction.
#ifndef SAGA_COORDINATOR_RUNTIME_TASK_TOKEN_H_
#define SAGA_COORDINATOR_RUNTIME_TASK_TOKEN_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace saga::runtime {

struct TaskRef {
  std::string execution_id;  // canonical lower-case UUID
  int64_t task_id = 0;
};

class TaskTokenCodec {
 public:
  explicit TaskTokenCodec(const std::string& secret);
  std::string Encode(const TaskRef& ref) const;
  // InvalidArgument("task_token: ...") for anything not minted with our secret.
  absl::StatusOr<TaskRef> Decode(const std::string& token) const;

  // The HMAC key schedule: SHA-256 states after the inner and outer padded
  // keys, computed once (a one-shot HMAC() redoes them, and looks the digest
  // up, on every token).
  struct Key;

 private:
  std::string Mac(const std::string& payload) const;
  std::shared_ptr<const Key> key_;
};

}  // namespace saga::runtime

#endif  // SAGA_COORDINATOR_RUNTIME_TASK_TOKEN_H_
