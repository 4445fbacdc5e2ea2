// order-inventory: inventory.reserve holds stock for an order,
// inventory.release lets it go. Skus starting "SOLDOUT" are out of stock.
#include <map>
#include <string>
#include <vector>

#include "examples/order/services.h"

namespace order_example {
namespace {

struct Reservation {
  std::string order_id;
  std::string items;  // "2 x BOOK-1, 1 x PEN-3"
  bool released = false;
};

struct Inventory {
  std::map<std::string, Reservation> reservations;           // by reservation id
  std::map<std::string, std::vector<std::string>> by_order;  // orderId -> reservation ids
};

}  // namespace

Handlers InventoryHandlers() {
  auto ledger = std::make_shared<Ledger>();
  auto state = std::make_shared<Inventory>();  // guarded by the ledger's lock

  auto reserve = [state](const json::Value& in, const saga::worker::TaskContext& ctx) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    const json::Value* items = in.Find("items");
    std::string what = "reserve order " + (order.empty() ? std::string("?") : order);
    if (order.empty() || items == nullptr || !items->is_array()) {
      return Failure("Order.BadInput", "inventory.reserve needs orderId and items", what);
    }
    std::string list;
    int64_t count = 0;
    for (const json::Value& item : items->as_array()) {
      std::string sku = GetString(item, "sku").value_or("?");
      int64_t qty = static_cast<int64_t>(GetNumber(item, "qty").value_or(1));
      list += (list.empty() ? "" : ", ") + std::to_string(qty) + " x " + sku;
      count += qty;
      if (sku.rfind("SOLDOUT", 0) == 0) {
        return Failure("Inventory.OutOfStock", sku + " is out of stock", what + ": " + list);
      }
    }
    what += ": " + list;
    std::string id = IdFor("rsv_", ctx.idempotency_key() + "|" + order);
    state->reservations[id] = Reservation{order, list, false};
    state->by_order[order].push_back(id);
    return {Obj({{"status", "RESERVED"}, {"reservation", id}, {"items", count}}).Dump(),
            what + " -> " + id};
  };

  // The saga's compensation passes the reservation; the plain-ASL undo path
  // only knows the orderId (and runs even when nothing was reserved).
  auto release = [state](const json::Value& in, const saga::worker::TaskContext&) -> Outcome {
    std::string order = GetString(in, "orderId").value_or("");
    std::string id = GetString(in, "reservation").value_or("");
    if (id.empty() && order.empty()) {
      return Failure("Order.BadInput", "inventory.release needs reservation or orderId",
                     "release ?");
    }
    if (id.empty()) {
      auto it = state->by_order.find(order);
      if (it != state->by_order.end() && !it->second.empty()) id = it->second.back();
    }
    auto r = state->reservations.find(id);
    if (r == state->reservations.end()) {
      std::string reason = id.empty() ? "no reservation for order " + order
                                      : "unknown reservation " + id;
      return {Obj({{"released", false}, {"reason", reason}}).Dump(),
              "release " + (order.empty() ? id : "order " + order) + ": " + reason +
                  " -> nothing to release"};
    }
    bool already = r->second.released;
    r->second.released = true;
    return {Obj({{"released", true}, {"reservation", id}}).Dump(),
            "release order " + r->second.order_id + ": " + id + " (" + r->second.items + ") -> " +
                (already ? "already released" : "released")};
  };

  return {{"inventory.reserve", Idempotent("inventory", ledger, reserve)},
          {"inventory.release", Idempotent("inventory", ledger, release)}};
}

}  // namespace order_example
