// mnv2-bench-peak: the arithmetic peak of this CPU's vector units, measured
// rather than taken from a data sheet, so that a step's GFLOP/s can be put
// against the machine it ran on (docs/benchmarks.md). Runs independent
// register-only chains of one instruction on every thread at once and prints
// one JSON object:
//   fp32_fma: vfmadd231ps (zmm with AVX-512, else ymm with FMA), 2 flops a lane
//   bf16_dot: vdpbf16ps zmm (AVX512-BF16), 2 products and adds per fp32 lane
// GFLOP/s count a multiply and an add as two flops, for both.
//   mnv2-bench-peak [--threads N] [--seconds S]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr long kRepeats = 1'000'000;  // per timing block, 24 instructions each

// Each kernel is one asm loop of 24 instructions on independent chains, its
// registers zeroed first (no denormals, so no assists). 24 zmm chains exceed
// any of these instructions' latency times its issue rate, so the loop
// measures throughput; on ymm (16 registers) 12 chains, each twice per
// iteration, cover two FMA pipes of latency 4-5.
#define MNV2_EACH_OF_12(op) \
  op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define MNV2_EACH_OF_24(op)                                                    \
  MNV2_EACH_OF_12(op)                                                          \
  op(12) op(13) op(14) op(15) op(16) op(17) op(18) op(19) op(20) op(21) op(22) \
      op(23)
#define MNV2_ZERO_ZMM(r) "vpxord %%zmm" #r ", %%zmm" #r ", %%zmm" #r "\n\t"
#define MNV2_ZERO_YMM(r) "vpxor %%ymm" #r ", %%ymm" #r ", %%ymm" #r "\n\t"
#define MNV2_XMM_0_15                                                     \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
      "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define MNV2_XMM_16_31                                                    \
  "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
      "xmm30", "xmm31"
#define MNV2_LOOP(zero, body, ...)                   \
  asm volatile(zero "1:\n\t" body "dec %0\n\tjnz 1b" \
               : "+r"(n)                             \
               :                                     \
               : "cc", __VA_ARGS__)

#if defined(__x86_64__)
#define MNV2_FMA_ZMM(r) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #r "\n\t"
#define MNV2_DOT_ZMM(r) "vdpbf16ps %%zmm30, %%zmm31, %%zmm" #r "\n\t"
#define MNV2_FMA_YMM(r) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #r "\n\t"

__attribute__((target("avx512f"))) void fma_zmm(long n) {
  MNV2_LOOP(MNV2_EACH_OF_24(MNV2_ZERO_ZMM) MNV2_ZERO_ZMM(30) MNV2_ZERO_ZMM(31),
            MNV2_EACH_OF_24(MNV2_FMA_ZMM),
            MNV2_XMM_0_15,
            MNV2_XMM_16_31);
}

__attribute__((target("avx512f,avx512bf16"))) void dpbf16_zmm(long n) {
  MNV2_LOOP(MNV2_EACH_OF_24(MNV2_ZERO_ZMM) MNV2_ZERO_ZMM(30) MNV2_ZERO_ZMM(31),
            MNV2_EACH_OF_24(MNV2_DOT_ZMM),
            MNV2_XMM_0_15,
            MNV2_XMM_16_31);
}

__attribute__((target("avx2,fma"))) void fma_ymm(long n) {
  MNV2_LOOP(MNV2_EACH_OF_12(MNV2_ZERO_YMM) MNV2_ZERO_YMM(14) MNV2_ZERO_YMM(15),
            MNV2_EACH_OF_12(MNV2_FMA_YMM) MNV2_EACH_OF_12(MNV2_FMA_YMM),
            MNV2_XMM_0_15);
}
#endif

struct Kernel {
  std::string name;
  std::string instruction;
  double flops_per_instruction;
  std::function<void(long)> run;
};

// Every thread runs the kernel for the same wall time; returns the summed
// instruction rate (per second) and the slowest thread's.
std::pair<double, double> measure(const Kernel& k,
                                  int threads,
                                  double seconds) {
  std::vector<double> rates(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      k.run(kRepeats / 10);  // warm the units up (AVX-512 licence)
      long blocks = 0;
      const auto start = std::chrono::steady_clock::now();
      double elapsed = 0;
      while (elapsed < seconds) {
        k.run(kRepeats);
        ++blocks;
        elapsed = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      }
      rates[t] = 24.0 * kRepeats * blocks / elapsed;
    });
  }
  for (auto& thread : pool) {
    thread.join();
  }
  double total = 0;
  double slowest = rates.front();
  for (double r : rates) {
    total += r;
    slowest = std::min(slowest, r);
  }
  return {total, slowest};
}

std::string cpu_model() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  char line[512];
  std::string model = "unknown";
  while (f && std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* colon = std::strchr(line, ':');
      model = colon ? std::string(colon + 2) : model;
      model.erase(model.find_last_not_of("\n ") + 1);
      break;
    }
  }
  if (f) {
    std::fclose(f);
  }
  return model;
}

int usage(const char* message) {
  std::fprintf(stderr,
               "mnv2-bench-peak: %s\nusage: mnv2-bench-peak [--threads N >= 1] "
               "[--seconds S > 0]\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      return usage(("flag " + flag + " needs a value").c_str());
    }
    char* end = nullptr;
    const char* value = argv[++i];
    if (flag == "--threads") {
      threads = static_cast<int>(std::strtol(value, &end, 10));
      if (*end != '\0' || threads < 1 || threads > 1024) {
        return usage("--threads must be an integer from 1 to 1024");
      }
    } else if (flag == "--seconds") {
      seconds = std::strtod(value, &end);
      if (*end != '\0' || !(seconds > 0 && seconds <= 60)) {
        return usage("--seconds must be a number above 0 and at most 60");
      }
    } else {
      return usage(("unknown flag " + flag).c_str());
    }
  }
  std::vector<Kernel> kernels;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    kernels.push_back({"fp32_fma", "vfmadd231ps zmm", 32, fma_zmm});
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernels.push_back({"fp32_fma", "vfmadd231ps ymm", 16, fma_ymm});
  }
  if (__builtin_cpu_supports("avx512bf16")) {
    kernels.push_back({"bf16_dot", "vdpbf16ps zmm", 64, dpbf16_zmm});
  }
#endif
  std::printf(
      "{\"cpu\": \"%s\", \"threads\": %d", cpu_model().c_str(), threads);
  for (const auto& k : kernels) {
    const auto [total, slowest] = measure(k, threads, seconds);
    std::printf(
        ", \"%s\": {\"instruction\": \"%s\", \"gflops\": %.1f, "
        "\"gflops_per_thread_min\": %.1f, \"instructions_per_ns\": %.3f}",
        k.name.c_str(),
        k.instruction.c_str(),
        total * k.flops_per_instruction / 1e9,
        slowest * k.flops_per_instruction / 1e9,
        total / 1e9);
  }
  std::printf("}\n");
  if (kernels.empty()) {
    std::fprintf(stderr, "mnv2-bench-peak: no AVX2/FMA or AVX-512 here\n");
    return 1;
  }
  return 0;
}
