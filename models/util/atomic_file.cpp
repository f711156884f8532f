#include <mobilenetv2/util/atomic_file.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace mnv2 {

namespace {
constexpr std::string_view kTempSuffix = ".tmp-XXXXXX";

std::runtime_error write_error(const std::string& path, const char* what) {
  return std::runtime_error("cannot write '" + path + "': " + what + " (" +
                            std::strerror(errno) + ")");
}
}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes) {
  const std::filesystem::path target(path);
  auto dir = target.parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  auto temp_path = dir / target.filename();
  temp_path += std::string(kTempSuffix);
  std::string temp = temp_path.string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    throw write_error(path, "cannot create a temporary file beside it");
  }
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const auto error = write_error(path, "write failed");
      ::close(fd);
      ::unlink(temp.c_str());
      throw error;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  // Files from mkstemp are 0600; give the usual 0644 (less the umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const auto error = write_error(path, "flush failed");
    ::unlink(temp.c_str());
    throw error;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const auto error = write_error(path, "rename failed");
    ::unlink(temp.c_str());
    throw error;
  }
}

int remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  auto dir = target.parent_path();
  if (dir.empty()) {
    dir = ".";
  }
  const auto prefix = target.filename().string() + ".tmp-";
  const auto expected_size = prefix.size() + kTempSuffix.size() - 5;
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name.size() == expected_size && name.rfind(prefix, 0) == 0 &&
        entry.is_regular_file(ec) &&
        std::filesystem::remove(entry.path(), ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace mnv2
