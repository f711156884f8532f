#include "distributed/process_group.h"

#include "common/errors.h"
#include "distributed/mpi_backend.h"
#include "distributed/nccl_backend.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>

#include <cstdlib>

namespace mnv2 {

std::string resolve_backend(const std::string& name,
                            const torch::Device& device) {
  if (name == "auto") {
    return device.is_cuda() ? "nccl" : "mpi";
  }
  if (name != "nccl" && name != "mpi") {
    throw ConfigError("--dist-backend must be auto, nccl or mpi, got '" + name +
                      "'");
  }
  return name;
}

c10::intrusive_ptr<c10d::Store> rendezvous_store(const Launch& launch,
                                                 std::chrono::seconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(launch.master_port);
  options.numWorkers = static_cast<std::size_t>(launch.world_size);
  options.timeout = timeout;
  if (launch.agent_store) {
    options.isServer = false;
    const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
    auto store =
        c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
    return c10::make_intrusive<c10d::PrefixStore>(
        std::string("/worker/attempt_") + (attempt ? attempt : "0"), store);
  }
  options.isServer = launch.rank == 0;
  options.multiTenant = true;
  try {
    return c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
  } catch (const c10::Error& e) {
    throw ConfigError("rank " + std::to_string(launch.rank) +
                      ": no rendezvous at " + launch.master_addr + ":" +
                      std::to_string(launch.master_port) + ": " +
                      e.msg().substr(0, e.msg().find('\n')));
  }
}

Distributed::Distributed(const Launch& launch,
                         const torch::Device& device,
                         const DistributedOptions& options)
    : launch_(launch), backend_(resolve_backend(options.backend, device)) {
  if (backend_ == "mpi") {
    if (device.is_cuda()) {
      throw ConfigError(
          "--dist-backend mpi runs on CPU tensors; on CUDA use nccl");
    }
    if (launch.launcher != "mpirun") {
      throw ConfigError(
          "a " + launch.launcher +
          " launch on CPU: the CPU backend is MPI, so start with "
          "mpirun -np N (torchrun and srun need CUDA devices and nccl)");
    }
    auto backend = make_mpi_backend(options.timeout);
    if (backend->getRank() != launch.rank ||
        backend->getSize() != launch.world_size) {
      throw ConfigError("MPI sees rank " + std::to_string(backend->getRank()) +
                        " of " + std::to_string(backend->getSize()) +
                        " but the environment says " +
                        std::to_string(launch.rank) + " of " +
                        std::to_string(launch.world_size));
    }
    // MPI needs no store; the process group still wants one.
    group_ = c10::make_intrusive<c10d::ProcessGroup>(
        c10::make_intrusive<c10d::HashStore>(), launch.rank, launch.world_size);
    group_->setBackend(
        c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::CUSTOM, backend);
    group_->setDefaultBackend(c10d::ProcessGroup::BackendType::CUSTOM);
    return;
  }
  if (!device.is_cuda()) {
    throw ConfigError(
        "--dist-backend nccl needs a CUDA device (--device "
        "cuda); on CPU use mpi under mpirun");
  }
  if (!nccl_available()) {
    throw ConfigError(
        "this build has no NCCL (a CUDA LibTorch with NCCL is needed)");
  }
  if (launch.launcher == "mpirun") {
    throw ConfigError(
        "nccl under mpirun is not supported: launch CUDA training with "
        "torchrun or srun");
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      "default_pg/", rendezvous_store(launch, options.timeout));
  group_ = c10::make_intrusive<c10d::ProcessGroup>(
      store, launch.rank, launch.world_size);
  group_->setBackend(
      c10::DeviceType::CUDA,
      c10d::ProcessGroup::BackendType::NCCL,
      make_nccl_backend(
          store, launch.rank, launch.world_size, options.timeout));
  group_->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
}

void Distributed::all_reduce(std::vector<torch::Tensor>& tensors,
                             c10d::ReduceOp op) {
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  group_->allreduce(tensors, options)->wait();
}

void Distributed::broadcast_from_rank0(std::vector<torch::Tensor>& tensors) {
  // Python's DDP broadcasts in chunks of 250 MiB.
  constexpr size_t kChunkBytes = 250u << 20;
  torch::NoGradGuard no_grad;
  c10d::broadcast_coalesced(group_, tensors, kChunkBytes, 0);
}

double Distributed::seconds_in_collectives() const {
  return backend_ == "mpi" ? mpi_collective_seconds() : 0.0;
}

}  // namespace mnv2
