#include <mobilenetv2/util/cpu_features.h>

#include <ATen/cpu/Utils.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

namespace mnv2 {

namespace {

bool cpu_capability(const char* name) {
  static const auto capabilities = at::cpu::get_cpu_capabilities();
  const auto it = capabilities.find(name);
  return it != capabilities.end() && it->second.isBool() && it->second.toBool();
}

// The instruction-set cap the user gave oneDNN, upper case; empty if none.
std::string onednn_isa_cap() {
  for (const char* variable : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
    const char* value = std::getenv(variable);
    if (value == nullptr || *value == '\0') {
      continue;
    }
    std::string isa(value);
    std::transform(isa.begin(), isa.end(), isa.begin(), [](unsigned char c) {
      return static_cast<char>(std::toupper(c));
    });
    return isa;
  }
  return {};
}

// Whether the user capped the instruction sets LibTorch may use below those
// with 16-bit float arithmetic: oneDNN's ONEDNN_MAX_CPU_ISA (its convolutions
// then emulate bf16) or ATEN_CPU_CAPABILITY=default/avx2 (ATen's kernels).
// Such a cap makes this CPU behave as one without native bf16/fp16.
bool isa_capped_below_16bit_floats() {
  if (const std::string isa = onednn_isa_cap(); !isa.empty()) {
    const bool keeps_16bit =
        isa == "ALL" || isa.rfind("AVX512_CORE_BF16", 0) == 0 ||
        isa.rfind("AVX512_CORE_FP16", 0) == 0 ||
        isa.rfind("AVX512_CORE_AMX", 0) == 0 || isa.rfind("AVX10", 0) == 0;
    return !keeps_16bit;
  }
  const char* aten = std::getenv("ATEN_CPU_CAPABILITY");
  return aten != nullptr &&
         (std::string(aten) == "default" || std::string(aten) == "avx2");
}

// Whether the user capped oneDNN or ATen below AVX-512.
bool isa_capped_below_avx512() {
  if (const std::string isa = onednn_isa_cap(); !isa.empty()) {
    return !(isa == "ALL" || isa.rfind("AVX512", 0) == 0 ||
             isa.rfind("AVX10", 0) == 0);
  }
  const char* aten = std::getenv("ATEN_CPU_CAPABILITY");
  return aten != nullptr &&
         (std::string(aten) == "default" || std::string(aten) == "avx2");
}

}  // namespace

bool cpu_has_avx512() {
  return !isa_capped_below_avx512() && cpu_capability("avx512_f") &&
         cpu_capability("avx512_bw") && cpu_capability("avx512_dq") &&
         cpu_capability("avx512_vl");
}

bool cpu_has_native_bf16() {
  return !isa_capped_below_16bit_floats() &&
         (cpu_capability("avx512_bf16") || cpu_capability("amx_bf16"));
}

bool cpu_has_avx512_bf16() {
  return !isa_capped_below_16bit_floats() && cpu_capability("avx512_bf16");
}

bool cpu_has_amx_bf16() {
  const std::string isa = onednn_isa_cap();
  const bool keeps_amx = isa.empty() || isa == "ALL" ||
                         isa.rfind("AVX512_CORE_AMX", 0) == 0 ||
                         isa.find("_AMX") != std::string::npos;
  return cpu_capability("amx_bf16") && keeps_amx;
}

bool cpu_has_native_fp16() {
  return !isa_capped_below_16bit_floats() &&
         (cpu_capability("avx512_fp16") || cpu_capability("amx_fp16"));
}

bool cpu_is_intel() {
  static const bool intel = [] {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) {
      return false;
    }
    // The vendor string is EBX, EDX, ECX in that order.
    char vendor[12];
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::memcmp(vendor, "GenuineIntel", 12) == 0;
#else
    return false;
#endif
  }();
  return intel;
}

}  // namespace mnv2
