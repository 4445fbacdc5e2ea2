// order-shipping: shipping.ship books a shipment, shipping.cancel cancels
// it. More than kMaxItemsPerTruck items in one order find no truck.
#include <map>
#include <string>

#include "examples/order/services.h"

namespace order_example {
namespace {

struct Shipment {
  std::string order_id;
  bool cancelled = false;
};

}  // namespace

Handlers ShippingHandlers() {
  auto ledger = std::make_shared<Ledger>();
  auto shipments = std::make_shared<std::map<std::string, Shipment>>();  // by tracking number

  // Input: the whole order (the ShipOrder state has no Parameters).
  auto ship = [shipments](const json::Value& in, const saga::worker::TaskContext& ctx) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    std::string what = "ship order " + (order.empty() ? std::string("?") : order);
    const json::Value* items = in.Find("items");
    if (order.empty() || items == nullptr || !items->is_array()) {
      return Failure("Order.BadInput", "shipping.ship needs orderId and items", what);
    }
    int64_t count = 0;
    for (const json::Value& item : items->as_array()) {
      count += static_cast<int64_t>(GetNumber(item, "qty").value_or(1));
    }
    what += ": " + std::to_string(count) + " item(s) to " +
            GetString(in, "customer").value_or("the customer");
    if (count > kMaxItemsPerTruck) {
      return Failure("Shipping.Unavailable",
                     "no truck for " + std::to_string(count) + " items (at most " +
                         std::to_string(kMaxItemsPerTruck) + " per shipment)",
                     what);
    }
    std::string tracking = IdFor("TRK-", ctx.idempotency_key() + "|" + order);
    (*shipments)[tracking] = Shipment{order, false};
    return {Obj({{"tracking", tracking}, {"carrier", "DemoPost"}}).Dump(), what + " -> " + tracking};
  };

  auto cancel = [shipments](const json::Value& in, const saga::worker::TaskContext&) -> Outcome {
    std::string tracking = GetString(in, "tracking").value_or("");
    if (tracking.empty()) {
      return Failure("Order.BadInput", "shipping.cancel needs tracking", "cancel shipment ?");
    }
    auto s = shipments->find(tracking);
    if (s == shipments->end()) {
      return {Obj({{"cancelled", false}, {"reason", "unknown shipment " + tracking}}).Dump(),
              "cancel shipment " + tracking + ": unknown -> nothing to cancel"};
    }
    bool already = s->second.cancelled;
    s->second.cancelled = true;
    return {Obj({{"cancelled", true}, {"tracking", tracking}}).Dump(),
            "cancel shipment of order " + s->second.order_id + ": " + tracking + " -> " +
                (already ? "already cancelled" : "cancelled")};
  };

  return {{"shipping.ship", Idempotent("shipping", ledger, ship)},
          {"shipping.cancel", Idempotent("shipping", ledger, cancel)}};
}

}  // namespace order_example
