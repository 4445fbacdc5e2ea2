// One order service per executable: CMake compiles this file once per
// service with ORDER_SERVICE ("payments") and ORDER_HANDLERS
// (PaymentsHandlers) defined.
#include "examples/order/services.h"

int main(int argc, char** argv) {
  return order_example::RunService(argc, argv, ORDER_SERVICE, order_example::ORDER_HANDLERS());
}
