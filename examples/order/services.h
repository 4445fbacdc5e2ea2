// The order-fulfilment services of examples/order/*.asl.json. Each function
// returns one service's handlers with fresh in-memory state; main.cc runs one
// of them per process (order-validate, order-payments, ...), and
// services_test.cc calls them directly through saga::worker::testing.
//
// Behaviour is deterministic, driven by the order (see README.md):
//   orders.validate    Order.Invalid unless orderId, a positive total, items
//                      (sku, qty >= 1) and a customer e-mail are present
//   payments.charge    Payment.Declined when the amount is over the card
//                      limit of 1000.00 EUR, else a charge "ch_..."
//   payments.refund    refunds by chargeId, or the order's charge by orderId;
//                      nothing to refund is a success with "refunded": false
//   inventory.reserve  Inventory.OutOfStock for a sku starting "SOLDOUT",
//                      else a reservation "rsv_..."
//   inventory.release  by reservation, or the order's reservation by orderId
//   shipping.ship      Shipping.Unavailable for more than 10 items in all,
//                      else a tracking number "TRK-..."
//   shipping.cancel    by tracking number
//   notifications.send logs the message, returns a message id
// Same idempotency key, same result (Ledger in common.h).
#ifndef SAGA_EXAMPLES_ORDER_SERVICES_H_
#define SAGA_EXAMPLES_ORDER_SERVICES_H_

#include "examples/order/common.h"

namespace order_example {

inline constexpr double kCardLimit = 1000.0;   // EUR; charges above are declined
inline constexpr int64_t kMaxItemsPerTruck = 10;  // items per shipment

Handlers ValidateHandlers();   // orders.validate
Handlers PaymentsHandlers();   // payments.charge, payments.refund
Handlers InventoryHandlers();  // inventory.reserve, inventory.release
Handlers ShippingHandlers();   // shipping.ship, shipping.cancel
Handlers NotifyHandlers();     // notifications.send

}  // namespace order_example

#endif  // SAGA_EXAMPLES_ORDER_SERVICES_H_
