// order-validate: orders.validate checks the order's shape.
#include <string>
#include <vector>

#include "examples/order/services.h"

namespace order_example {

Handlers ValidateHandlers() {
  auto ledger = std::make_shared<Ledger>();
  auto validate = [](const json::Value& order, const saga::worker::TaskContext&) -> Outcome {
    std::string id = GetString(order, "orderId").value_or("");
    std::string what = "validate order " + (id.empty() ? std::string("?") : id);
    std::vector<std::string> problems;
    if (id.empty()) problems.push_back("orderId is missing");
    std::optional<double> total = GetNumber(order, "total");
    if (!total || *total <= 0) problems.push_back("total must be a positive number");
    const json::Value* items = order.Find("items");
    int64_t count = 0;
    if (items == nullptr || !items->is_array() || items->size() == 0) {
      problems.push_back("items must be a non-empty array");
    } else {
      for (size_t i = 0; i < items->size(); ++i) {
        const json::Value& item = items->as_array()[i];
        std::string at = "items[" + std::to_string(i) + "]";
        if (GetString(item, "sku").value_or("").empty()) problems.push_back(at + ".sku is missing");
        const json::Value* qty = item.Find("qty");
        if (qty == nullptr || !qty->is_integral() || qty->as_double() < 1) {
          problems.push_back(at + ".qty must be a whole number >= 1");
        } else {
          count += static_cast<int64_t>(qty->as_double());
        }
      }
    }
    std::string customer = GetString(order, "customer").value_or("");
    if (customer.find('@') == std::string::npos) {
      problems.push_back("customer must be an e-mail address");
    }
    if (!problems.empty()) {
      std::string cause;
      for (const std::string& p : problems) cause += (cause.empty() ? "" : "; ") + p;
      return Failure("Order.Invalid", cause, what);
    }
    return {Obj({{"valid", true}}).Dump(),
            what + ": " + std::to_string(count) + " item(s), " + Money(*total) + " EUR for " +
                customer + " -> valid"};
  };
  return {{"orders.validate", Idempotent("validate", ledger, validate)}};
}

}  // namespace order_example
