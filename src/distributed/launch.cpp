#include "distributed/launch.h"

#include "common/errors.h"

#include <charconv>
#include <cstdlib>

namespace mnv2 {

namespace {

class Environment {
 public:
  explicit Environment(const std::function<const char*(const char*)>& getenv)
      : getenv_(getenv) {}

  bool has(const char* name) const {
    const char* value = getenv_(name);
    return value != nullptr && *value != '\0';
  }
  std::string text(const char* name) const {
    return has(name) ? getenv_(name) : "";
  }
  int number(const char* name) const {
    const auto value = text(name);
    int out = 0;
    const auto [end, error] =
        std::from_chars(value.data(), value.data() + value.size(), out);
    if (value.empty() || error != std::errc() ||
        end != value.data() + value.size() || out < 0) {
      throw ConfigError(std::string(name) + "='" + value +
                        "' is not a non-negative integer");
    }
    return out;
  }
  int number_or(const char* name, int fallback) const {
    return has(name) ? number(name) : fallback;
  }

 private:
  const std::function<const char*(const char*)>& getenv_;
};

void check_ranks(const Launch& l, const char* rank_name) {
  if (l.world_size < 1) {
    throw ConfigError(l.launcher + " launch with a world size of 0");
  }
  if (l.rank >= l.world_size) {
    throw ConfigError(std::string(rank_name) + "=" + std::to_string(l.rank) +
                      " is outside a world of " + std::to_string(l.world_size) +
                      " processes");
  }
}

void read_master(const Environment& env, Launch& l) {
  if (!l.distributed()) {
    return;
  }
  if (!env.has("MASTER_ADDR") || !env.has("MASTER_PORT")) {
    throw ConfigError(l.launcher + " launch of " +
                      std::to_string(l.world_size) +
                      " processes without MASTER_ADDR and MASTER_PORT: the "
                      "ranks cannot find each other");
  }
  l.master_addr = env.text("MASTER_ADDR");
  l.master_port = env.number("MASTER_PORT");
  if (l.master_port < 1 || l.master_port > 65535) {
    throw ConfigError("MASTER_PORT=" + std::to_string(l.master_port) +
                      " is not a TCP port");
  }
}

}  // namespace

Launch detect_launch(const std::function<const char*(const char*)>& getenv) {
  const Environment env(getenv);
  Launch l;
  if (env.has("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = "mpirun";
    l.world_size = env.number("OMPI_COMM_WORLD_SIZE");
    l.rank = env.number("OMPI_COMM_WORLD_RANK");
    l.local_rank = env.number_or("OMPI_COMM_WORLD_LOCAL_RANK", l.rank);
    l.local_world_size =
        env.number_or("OMPI_COMM_WORLD_LOCAL_SIZE", l.world_size);
    check_ranks(l, "OMPI_COMM_WORLD_RANK");
    return l;
  }
  if (env.has("WORLD_SIZE") || env.has("RANK")) {
    l.launcher = "torchrun";
    if (!env.has("RANK") || !env.has("WORLD_SIZE")) {
      throw ConfigError(env.has("RANK") ? "RANK is set but WORLD_SIZE is not"
                                        : "WORLD_SIZE is set but RANK is not");
    }
    l.world_size = env.number("WORLD_SIZE");
    l.rank = env.number("RANK");
    l.local_rank = env.number_or("LOCAL_RANK", l.rank);
    l.local_world_size = env.number_or("LOCAL_WORLD_SIZE", l.world_size);
    l.agent_store = env.text("TORCHELASTIC_USE_AGENT_STORE") == "True";
    check_ranks(l, "RANK");
    read_master(env, l);
    return l;
  }
  if (env.has("SLURM_NTASKS") && env.has("SLURM_PROCID")) {
    l.launcher = "slurm";
    l.world_size = env.number("SLURM_NTASKS");
    l.rank = env.number("SLURM_PROCID");
    l.local_rank = env.number_or("SLURM_LOCALID", 0);
    l.local_world_size = env.number_or("SLURM_NTASKS_PER_NODE", 1);
    check_ranks(l, "SLURM_PROCID");
    read_master(env, l);
  }
  return l;
}

}  // namespace mnv2
