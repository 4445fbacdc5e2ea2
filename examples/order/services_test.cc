// The order services' handlers through the SDK's test helper (no
// coordinator), and the example inputs against the services' rules.
#include <fstream>
#include <sstream>
#include <string>

#include "examples/order/services.h"
#include "gtest/gtest.h"
#include "saga/worker/testing.h"

namespace order_example {
namespace {

using saga::worker::Result;
using saga::worker::testing::FakeTaskContext;

saga::worker::Handler Find(const Handlers& hs, const std::string& activity) {
  for (const auto& [a, h] : hs) {
    if (a == activity) return h;
  }
  ADD_FAILURE() << "no handler for " << activity;
  return [](saga::worker::TaskContext&) -> Result { return "null"; };
}

Result Call(const Handlers& hs, const std::string& activity, const std::string& input,
            const std::string& key) {
  FakeTaskContext ctx(input, activity);
  ctx.info().idempotency_key = key;
  return Find(hs, activity)(ctx);
}

json::Value Output(const Result& r) {
  EXPECT_TRUE(r.ok()) << r.error().error << ": " << r.error().cause;
  auto v = json::Parse(r.output());
  EXPECT_TRUE(v.ok()) << r.output();
  return v.ok() ? *v : json::Value();
}

std::string ReadExample(const std::string& name) {
  std::ifstream in(std::string(ORDER_EXAMPLE_DIR) + "/" + name);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << name;
  return s.str();
}

TEST(OrderValidate, AcceptsTheExampleOrdersAndRejectsBadOnes) {
  Handlers hs = ValidateHandlers();
  EXPECT_EQ(Output(Call(hs, "orders.validate", ReadExample("input.json"), "k1")),
            json::Parse(R"({"valid":true})").value());
  EXPECT_TRUE(Call(hs, "orders.validate", ReadExample("input-declined.json"), "k2").ok());
  Result bad = Call(hs, "orders.validate", R"({"orderId":"o","total":0,"items":[]})", "k3");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().error, "Order.Invalid");
  EXPECT_NE(bad.error().cause.find("items must be a non-empty array"), std::string::npos);
  Result not_object = Call(hs, "orders.validate", "[1]", "k4");
  ASSERT_FALSE(not_object.ok());
  EXPECT_EQ(not_object.error().error, "Order.BadInput");
}

TEST(OrderPayments, ChargesUpToTheLimitAndDeclinesAbove) {
  Handlers hs = PaymentsHandlers();
  json::Value order = json::Parse(ReadExample("input.json")).value();
  json::Value declined = json::Parse(ReadExample("input-declined.json")).value();
  std::string ok_in = Obj({{"orderId", *order.Find("orderId")}, {"amount", *order.Find("total")}}).Dump();
  std::string bad_in =
      Obj({{"orderId", *declined.Find("orderId")}, {"amount", *declined.Find("total")}}).Dump();

  json::Value charged = Output(Call(hs, "payments.charge", ok_in, "c1"));
  EXPECT_EQ(GetString(charged, "status"), "CHARGED");
  EXPECT_EQ(GetString(charged, "chargeId").value_or("").rfind("ch_", 0), 0u);

  Result no = Call(hs, "payments.charge", bad_in, "c2");
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.error().error, "Payment.Declined");
  EXPECT_NE(no.error().cause.find("1250.00 EUR is over the card limit of 1000.00 EUR"),
            std::string::npos);
}

TEST(OrderPayments, SameIdempotencyKeySameResult) {
  Handlers hs = PaymentsHandlers();
  Result a = Call(hs, "payments.charge", R"({"orderId":"o1","amount":5})", "same");
  // Even a different input: the key decides.
  Result b = Call(hs, "payments.charge", R"({"orderId":"o1","amount":2000})", "same");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.output(), b.output());
  Result c = Call(hs, "payments.charge", R"({"orderId":"o1","amount":5})", "other");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(GetString(Output(a), "chargeId"), GetString(Output(c), "chargeId"));
}

TEST(OrderPayments, RefundByChargeIdOrOrderIdAndNothingToRefund) {
  Handlers hs = PaymentsHandlers();
  json::Value charged = Output(Call(hs, "payments.charge", R"({"orderId":"o1","amount":5})", "c"));
  std::string charge_id = GetString(charged, "chargeId").value();
  json::Value r = Output(
      Call(hs, "payments.refund", Obj({{"orderId", "o1"}, {"chargeId", charge_id}}).Dump(), "r1"));
  EXPECT_EQ(r.Find("refunded")->as_bool(), true);
  Output(Call(hs, "payments.charge", R"({"orderId":"o2","amount":7})", "c2"));
  json::Value by_order = Output(Call(hs, "payments.refund", R"({"orderId":"o2"})", "r2"));
  EXPECT_EQ(by_order.Find("refunded")->as_bool(), true);
  EXPECT_EQ(GetNumber(by_order, "amount"), 7.0);
  // The plain-ASL undo path after a declined charge.
  json::Value none = Output(Call(hs, "payments.refund", R"({"orderId":"o3"})", "r3"));
  EXPECT_EQ(none.Find("refunded")->as_bool(), false);
}

TEST(OrderInventory, ReserveReleaseAndOutOfStock) {
  Handlers hs = InventoryHandlers();
  json::Value reserved = Output(Call(
      hs, "inventory.reserve", R"({"orderId":"o1","items":[{"sku":"BOOK-1","qty":2}]})", "a"));
  EXPECT_EQ(GetString(reserved, "status"), "RESERVED");
  std::string id = GetString(reserved, "reservation").value();
  json::Value released =
      Output(Call(hs, "inventory.release", Obj({{"reservation", id}}).Dump(), "b"));
  EXPECT_EQ(released.Find("released")->as_bool(), true);
  json::Value none = Output(Call(hs, "inventory.release", R"({"orderId":"o9"})", "c"));
  EXPECT_EQ(none.Find("released")->as_bool(), false);
  Result out = Call(hs, "inventory.reserve",
                    R"({"orderId":"o2","items":[{"sku":"SOLDOUT-7","qty":1}]})", "d");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().error, "Inventory.OutOfStock");
}

TEST(OrderShipping, ShipsSmallOrdersAndCancels) {
  Handlers hs = ShippingHandlers();
  json::Value shipped = Output(Call(hs, "shipping.ship", ReadExample("input.json"), "s"));
  std::string tracking = GetString(shipped, "tracking").value();
  EXPECT_EQ(tracking.rfind("TRK-", 0), 0u);
  json::Value cancelled =
      Output(Call(hs, "shipping.cancel", Obj({{"tracking", tracking}}).Dump(), "t"));
  EXPECT_EQ(cancelled.Find("cancelled")->as_bool(), true);
  Result big = Call(hs, "shipping.ship", R"({"orderId":"o","items":[{"sku":"A","qty":11}]})", "u");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().error, "Shipping.Unavailable");
}

TEST(OrderNotify, Sends) {
  Handlers hs = NotifyHandlers();
  json::Value sent = Output(
      Call(hs, "notifications.send", R"({"orderId":"o1","message":"on its way"})", "n"));
  EXPECT_EQ(sent.Find("sent")->as_bool(), true);
}

}  // namespace
}  // namespace order_example
