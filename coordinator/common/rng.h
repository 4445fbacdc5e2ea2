// Deterministic pseudo-random numbers (splitmix64). The engine never reads a
// clock or an entropy source: callers pass a seed in with each command, so the
// same command on the same state always decides the same way.
// Thread safety: none; one Rng per use.
#ifndef SAGA_COORDINATOR_COMMON_RNG_H_
#define SAGA_COORDINATOR_COMMON_RNG_H_

#include <cstdint>

namespace saga {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace saga

#endif  // SAGA_COORDINATOR_COMMON_RNG_H_
