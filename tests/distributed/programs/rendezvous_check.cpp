// Started by torchrun (--no-python) or by hand with RANK/WORLD_SIZE/
// MASTER_ADDR/MASTER_PORT: the ranks meet through the project's rendezvous
// store (a client of torchrun's agent store, or hosted by rank 0) and each
// reads every other rank's key. Exits 0 when all keys arrived.
#include "distributed/launch.h"
#include "distributed/process_group.h"

#include <unistd.h>

#include <cstdio>
#include <string>

int main() {
  try {
    const auto launch = mnv2::detect_launch();
    if (!launch.distributed() || launch.launcher != "torchrun") {
      std::fprintf(stderr, "start me with torchrun or RANK/WORLD_SIZE\n");
      return 2;
    }
    auto store = mnv2::rendezvous_store(launch, std::chrono::seconds(60));
    const auto key = [](int rank) {
      return "mnv2-test/rank" + std::to_string(rank);
    };
    const std::string mine = "pid " + std::to_string(::getpid());
    store->set(key(launch.rank),
               std::vector<uint8_t>(mine.begin(), mine.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < launch.world_size; ++r) {
      keys.push_back(key(r));
    }
    store->wait(keys);
    for (int r = 0; r < launch.world_size; ++r) {
      const auto value = store->get(key(r));
      std::printf("rank %d of %d (%s store) sees rank %d: %s\n",
                  launch.rank,
                  launch.world_size,
                  launch.agent_store ? "torchrun agent's" : "rank 0's",
                  r,
                  std::string(value.begin(), value.end()).c_str());
    }
    // Nobody leaves before everyone has read, and rank 0 (which may host
    // the store) leaves last.
    store->add("mnv2-test/done", 1);
    while (store->add("mnv2-test/done", 0) < launch.world_size) {
      ::usleep(10000);
    }
    if (launch.rank != 0) {
      store->add("mnv2-test/left", 1);
    } else {
      while (store->add("mnv2-test/left", 0) < launch.world_size - 1) {
        ::usleep(10000);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    std::fprintf(stderr,
                 "rendezvous failed: %s\n",
                 what.substr(0, what.find('\n')).c_str());
    return 1;
  }
}
