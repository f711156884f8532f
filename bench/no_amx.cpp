// libmnv2-bench-no-amx.so, for LD_PRELOAD: turns a CPU with AMX into one
// with AVX-512 VNNI and BF16 but no AMX, for every oneDNN in the process
// (LibTorch's, the add-on's, OpenVINO's own copy) alike. Linux lets a process
// use AMX tiles only after it asks for them (arch_prctl ARCH_REQ_XCOMP_PERM);
// oneDNN asks through libc's syscall() and, refused, takes its VNNI and BF16
// kernels. ONEDNN_MAX_CPU_ISA cannot do this: OpenVINO ignores it.
// bench/common.py's withhold_amx() loads it.
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>

namespace {

constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM

using SyscallFunction = long (*)(long, ...);

}  // namespace

extern "C" long syscall(long number, ...) noexcept {
  // syscall() takes at most six arguments; reading six is what glibc's own
  // wrapper does too.
  long args[6];
  va_list list;
  va_start(list, number);
  for (long& arg : args) {
    arg = va_arg(list, long);
  }
  va_end(list);
  if (number == SYS_arch_prctl && args[0] == kRequestPermission) {
    errno = EPERM;
    return -1;
  }
  static const auto next =
      reinterpret_cast<SyscallFunction>(dlsym(RTLD_NEXT, "syscall"));
  return next(number, args[0], args[1], args[2], args[3], args[4], args[5]);
}
