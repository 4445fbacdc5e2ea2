// order-notify: notifications.send "sends" a message about an order (it
// prints it).
#include <string>

#include "examples/order/services.h"

namespace order_example {

Handlers NotifyHandlers() {
  auto ledger = std::make_shared<Ledger>();
  auto send = [](const json::Value& in, const saga::worker::TaskContext& ctx) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    std::string message = GetString(in, "message").value_or("");
    std::string what = "notify order " + (order.empty() ? std::string("?") : order);
    if (order.empty() || message.empty()) {
      return Failure("Order.BadInput", "notifications.send needs orderId and message", what);
    }
    std::string id = IdFor("msg_", ctx.idempotency_key() + "|" + order);
    return {Obj({{"sent", true}, {"messageId", id}}).Dump(),
            what + ": \"" + message + "\" -> " + id};
  };
  return {{"notifications.send", Idempotent("notify", ledger, send)}};
}

}  // namespace order_example
