#!/usr/bin/env bash
# Fails when coordinator/asl or coordinator/engine include anything that does
# I/O, starts threads or reads clocks: the core must stay deterministic.
set -euo pipefail
root=${1:?usage: check_pure_core.sh PROJECT_ROOT}
pattern='#include *[<"](pqxx/|grpcpp/|grpc/|thread>|fstream>|iostream>|chrono>|random>|mutex>|future>|condition_variable>|absl/time/clock\.h|absl/synchronization/|sys/|unistd\.h)'
hits=$(grep -rnE "$pattern" "$root/coordinator/asl" "$root/coordinator/engine" --include='*.h' --include='*.cc' | grep -v '_test\.cc:' || true)
clock=$(grep -rnE 'absl::Now\(\)|std::chrono::system_clock|time\(nullptr\)|std::random_device' "$root/coordinator/asl" "$root/coordinator/engine" --include='*.cc' --include='*.h' | grep -v '_test\.cc:' || true)
if [ -n "$hits$clock" ]; then
  echo "pure core violation (coordinator/asl and coordinator/engine must not do I/O, threads or clock reads):"
  echo "$hits"
  echo "$clock"
  exit 1
fi
echo "pure core: ok"
