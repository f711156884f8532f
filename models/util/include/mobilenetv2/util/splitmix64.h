#pragma once

// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", 2014): its output function turns counters and seeds into
// independent-looking 64-bit words, for random streams that must not depend
// on which thread draws them.

#include <cstdint>

namespace mnv2 {

/// SplitMix64's increment (2^64 divided by the golden ratio, odd).
inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ULL;

/// SplitMix64's output function: a bijection of 64-bit words whose outputs
/// differ in about half their bits for inputs one bit apart.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// The `n`th output (from 0) of SplitMix64 started at `seed`.
constexpr uint64_t splitmix64_at(uint64_t seed, uint64_t n) {
  return splitmix64_mix(seed + (n + 1) * kSplitMix64Gamma);
}

}  // namespace mnv2
