// The gRPC boundary: translates saga.v1 requests to Coordinator calls and
// absl::Status to grpc::Status (same code, same message). No logic here.
// Thread safety: as Coordinator.
#ifndef SAGA_COORDINATOR_API_SERVICE_H_
#define SAGA_COORDINATOR_API_SERVICE_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "coordinator/runtime/coordinator.h"
#include "saga/v1/saga.grpc.pb.h"

namespace saga::api {

class WorkerStreamReactor;

grpc::Status ToGrpc(const absl::Status& s);

// The worker stream uses gRPC's callback API (a reactor): its reads and
// writes complete on gRPC's own threads instead of waking a blocked thread
// per message. So does StartExecution, the hot unary call: decided on the
// gRPC thread that read it and answered by the group commit's thread once
// written (Coordinator::StartExecutionAsync), with what may block on a
// small pool of this service's. The other unary RPCs stay synchronous.
class SagaService final
    : public saga::v1::SagaCoordinator::WithCallbackMethod_StartExecution<
          saga::v1::SagaCoordinator::WithCallbackMethod_WorkerStream<
              saga::v1::SagaCoordinator::Service>> {
 public:
  explicit SagaService(runtime::Coordinator* c) : c_(c) {}
  // Stops the deferred-ack thread and the blocking pool (after the server's
  // shutdown).
  ~SagaService();

  grpc::Status CreateStateMachine(grpc::ServerContext*, const v1::CreateStateMachineRequest*,
                                  v1::CreateStateMachineResponse*) override;
  grpc::Status UpdateStateMachine(grpc::ServerContext*, const v1::UpdateStateMachineRequest*,
                                  v1::UpdateStateMachineResponse*) override;
  grpc::Status DescribeStateMachine(grpc::ServerContext*, const v1::DescribeStateMachineRequest*,
                                    v1::StateMachine*) override;
  grpc::Status ListStateMachines(grpc::ServerContext*, const v1::ListStateMachinesRequest*,
                                 v1::ListStateMachinesResponse*) override;
  grpc::Status DeleteStateMachine(grpc::ServerContext*, const v1::DeleteStateMachineRequest*,
                                  v1::DeleteStateMachineResponse*) override;
  grpc::Status ValidateStateMachineDefinition(grpc::ServerContext*,
                                              const v1::ValidateStateMachineDefinitionRequest*,
                                              v1::ValidateStateMachineDefinitionResponse*) override;
  grpc::ServerUnaryReactor* StartExecution(grpc::CallbackServerContext* ctx,
                                           const v1::StartExecutionRequest* req,
                                           v1::StartExecutionResponse* resp) override;
  grpc::Status DescribeExecution(grpc::ServerContext*, const v1::DescribeExecutionRequest*,
                                 v1::Execution*) override;
  grpc::Status ListExecutions(grpc::ServerContext*, const v1::ListExecutionsRequest*,
                              v1::ListExecutionsResponse*) override;
  grpc::Status GetExecutionHistory(grpc::ServerContext*, const v1::GetExecutionHistoryRequest*,
                                   v1::GetExecutionHistoryResponse*) override;
  grpc::Status StopExecution(grpc::ServerContext*, const v1::StopExecutionRequest*,
                             v1::StopExecutionResponse*) override;
  grpc::Status RedriveExecution(grpc::ServerContext*, const v1::RedriveExecutionRequest*,
                                v1::RedriveExecutionResponse*) override;
  grpc::Status GetActivityTask(grpc::ServerContext*, const v1::GetActivityTaskRequest*,
                               v1::GetActivityTaskResponse*) override;
  grpc::Status SendTaskSuccess(grpc::ServerContext*, const v1::SendTaskSuccessRequest*,
                               v1::SendTaskSuccessResponse*) override;
  grpc::Status SendTaskFailure(grpc::ServerContext*, const v1::SendTaskFailureRequest*,
                               v1::SendTaskFailureResponse*) override;
  grpc::Status SendTaskHeartbeat(grpc::ServerContext*, const v1::SendTaskHeartbeatRequest*,
                                 v1::SendTaskHeartbeatResponse*) override;
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse*) override;

  // Ends every worker stream (UNAVAILABLE) and refuses new ones: on drain,
  // workers reconnect to another coordinator; their task tokens stay valid.
  void Drain();

 private:
  friend class WorkerStreamReactor;
  runtime::Coordinator* c_;
  std::mutex streams_mu_;
  // The open worker streams (a reactor is listed until OnDone deletes it).
  std::map<grpc::CallbackServerContext*, WorkerStreamReactor*> streams_;
  bool draining_ = false;

  // Deferred acks (RegisterWorker.ack_delay_ms): a stream that starts
  // holding acks back is queued here with the time they must go by; one
  // thread flushes each once due, with those due within the next 10 ms in
  // the same wake-up (most acks ride a pushed task before and the flush
  // finds nothing).
  void AcksHeld(WorkerStreamReactor* r, std::chrono::steady_clock::time_point due);
  // Drops `r`'s entries; waits for a flush of `r` in progress.
  void ForgetAcks(WorkerStreamReactor* r);
  void AckLoop();
  std::mutex acks_mu_;  // taken before a stream's write lock, never after
  std::condition_variable acks_cv_;
  std::multimap<std::chrono::steady_clock::time_point, WorkerStreamReactor*> acks_due_;
  std::thread ack_thread_;  // started with the first deferred ack
  bool acks_stop_ = false;

  // Work of callback handlers that may block (a start whose state machine's
  // revision is not cached, or whose write needs a transaction of its own):
  // run by up to kBlockingThreads threads, started as needed.
  void RunBlocking(std::function<void()> fn);
  void BlockingLoop();
  static constexpr int kBlockingThreads = 8;
  std::mutex blocking_mu_;
  std::condition_variable blocking_cv_;
  std::deque<std::function<void()>> blocking_;
  std::vector<std::thread> blocking_threads_;
  int blocking_idle_ = 0;
  bool blocking_stop_ = false;
};

}  // namespace saga::api

#endif  // SAGA_COORDINATOR_API_SERVICE_H_
