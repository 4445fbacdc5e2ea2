// order-payments: payments.charge takes a (pretend) card payment,
// payments.refund gives it back. Charges over kCardLimit are declined.
#include <map>
#include <string>
#include <vector>

#include "examples/order/services.h"

namespace order_example {
namespace {

struct Charge {
  std::string order_id;
  double amount = 0;
  bool refunded = false;
};

struct Payments {
  std::map<std::string, Charge> charges;                     // by chargeId
  std::map<std::string, std::vector<std::string>> by_order;  // orderId -> chargeIds
};

}  // namespace

Handlers PaymentsHandlers() {
  auto ledger = std::make_shared<Ledger>();
  auto state = std::make_shared<Payments>();  // guarded by the ledger's lock

  auto charge = [state](const json::Value& in, const saga::worker::TaskContext& ctx) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    std::optional<double> amount = GetNumber(in, "amount");
    std::string what = "charge order " + (order.empty() ? std::string("?") : order);
    if (order.empty() || !amount || *amount <= 0) {
      return Failure("Order.BadInput", "payments.charge needs orderId and a positive amount", what);
    }
    what += ": " + Money(*amount) + " EUR";
    if (*amount > kCardLimit) {
      return Failure("Payment.Declined",
                     "card declined: " + Money(*amount) + " EUR is over the card limit of " +
                         Money(kCardLimit) + " EUR",
                     what);
    }
    std::string id = IdFor("ch_", ctx.idempotency_key() + "|" + order);
    state->charges[id] = Charge{order, *amount, false};
    state->by_order[order].push_back(id);
    return {Obj({{"status", "CHARGED"},
                 {"chargeId", id},
                 {"amount", *amount},
                 {"currency", "EUR"}})
                .Dump(),
            what + " -> " + id};
  };

  // The saga's compensation passes chargeId; the plain-ASL undo path only
  // knows the orderId (and runs even when the charge was declined).
  auto refund = [state](const json::Value& in, const saga::worker::TaskContext&) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    std::string id = GetString(in, "chargeId").value_or("");
    std::string what = "refund order " + (order.empty() ? std::string("?") : order);
    if (id.empty() && order.empty()) {
      return Failure("Order.BadInput", "payments.refund needs chargeId or orderId", what);
    }
    if (id.empty()) {
      auto it = state->by_order.find(order);
      if (it != state->by_order.end() && !it->second.empty()) id = it->second.back();
    }
    auto c = state->charges.find(id);
    if (c == state->charges.end()) {
      std::string reason = id.empty() ? "no charge for order " + order : "unknown charge " + id;
      return {Obj({{"refunded", false}, {"reason", reason}}).Dump(),
              what + ": " + reason + " -> nothing to refund"};
    }
    bool already = c->second.refunded;
    c->second.refunded = true;
    return {Obj({{"refunded", true}, {"chargeId", id}, {"amount", c->second.amount}}).Dump(),
            what + ": " + id + " " + Money(c->second.amount) + " EUR -> " +
                (already ? "already refunded" : "refunded")};
  };

  return {{"payments.charge", Idempotent("payments", ledger, charge)},
          {"payments.refund", Idempotent("payments", ledger, refund)}};
}

}  // namespace order_example
