// A tiny worker built against the installed SDK. With --self-test it runs
// its handler through the SDK's test helper; otherwise it serves "tiny.echo"
// on the coordinator named by --address until killed.
#include <cstring>
#include <iostream>

#include "saga/worker/testing.h"
#include "saga/worker/worker.h"

static saga::worker::Result Echo(saga::worker::TaskContext& ctx) {
  if (ctx.input() == "\"fail\"") return saga::worker::TaskError{"Tiny.Failed", "asked to"};
  return "{\"echo\":" + ctx.input() + ",\"attempt\":" + std::to_string(ctx.attempt()) + "}";
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--self-test") == 0) {
    saga::worker::testing::FakeTaskContext ctx("[1,2]");
    ctx.info().attempt = 3;
    saga::worker::Result r = Echo(ctx);
    saga::worker::testing::FakeTaskContext bad("\"fail\"");
    saga::worker::Result f = Echo(bad);
    if (!r.ok() || r.output() != "{\"echo\":[1,2],\"attempt\":3}" || f.ok() ||
        f.error().error != "Tiny.Failed") {
      std::cerr << "tiny_worker: unexpected handler results\n";
      return 1;
    }
    std::cout << "tiny_worker: " << r.output() << "\n";
    return 0;
  }
  saga::worker::WorkerOptions o;
  if (argc > 2 && std::strcmp(argv[1], "--address") == 0) o.address = argv[2];
  o.identity = "tiny";
  saga::worker::Worker w(o);
  w.Register("tiny.echo", Echo);
  w.Run();
}
