#include "distributed/mpi_backend.h"

#include "common/log.h"

#include <ATen/core/ivalue.h>
#include <torch/torch.h>

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace mnv2 {

namespace {

std::atomic<double>& collective_seconds() {
  static std::atomic<double> seconds{0};
  return seconds;
}

std::mutex& mpi_mutex() {
  static std::mutex mutex;
  return mutex;
}

MPI_Datatype mpi_type(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return MPI_FLOAT;
    case c10::kDouble:
      return MPI_DOUBLE;
    case c10::kLong:
      return MPI_INT64_T;
    case c10::kInt:
      return MPI_INT32_T;
    case c10::kByte:
    case c10::kBool:
      return MPI_UINT8_T;
    case c10::kChar:
      return MPI_INT8_T;
    default:
      TORCH_CHECK(false, "MPI backend: no MPI type for ", type);
  }
}

MPI_Op mpi_op(const c10d::ReduceOp& op) {
  switch (op.op_) {
    case c10d::ReduceOp::SUM:
      return MPI_SUM;
    case c10d::ReduceOp::MAX:
      return MPI_MAX;
    case c10d::ReduceOp::MIN:
      return MPI_MIN;
    case c10d::ReduceOp::PRODUCT:
      return MPI_PROD;
    default:
      TORCH_CHECK(false, "MPI backend: unsupported reduce op");
  }
}

/// MPI has no 16-bit floats: those travel as fp32 and are cast back.
bool needs_widening(c10::ScalarType type) {
  return type == c10::kHalf || type == c10::kBFloat16;
}

void check_cpu(const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(),
              "the MPI backend handles CPU tensors only (use nccl on CUDA)");
}

/// A finished collective: MPI calls here are blocking, so the work is done
/// when it is returned; the future holds the tensors (the Reducer reads it).
class DoneWork : public c10d::Work {
 public:
  DoneWork(std::vector<at::Tensor> result, c10d::OpType type)
      : c10d::Work(-1, type),
        result_(std::move(result)),
        future_(c10::make_intrusive<c10::ivalue::Future>(
            c10::ListType::create(c10::TensorType::get()))) {
    future_->markCompleted(c10::IValue(result_));
  }
  bool isCompleted() override {
    return true;
  }
  bool isSuccess() const override {
    return true;
  }
  bool wait(std::chrono::milliseconds /*timeout*/) override {
    return true;
  }
  std::vector<at::Tensor> result() override {
    return result_;
  }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    return future_;
  }

 private:
  std::vector<at::Tensor> result_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

/// Ends the process when one collective outlasts the timeout.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds timeout)
      : timeout_(timeout), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void begin(const char* what) {
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = what;
    since_ = std::chrono::steady_clock::now();
    busy_ = true;
  }
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = false;
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::seconds(1));
      if (busy_ && std::chrono::steady_clock::now() - since_ > timeout_) {
        const auto message = log::cat(
            "rank ",
            mpi_rank(),
            ": ",
            what_,
            " waited more than ",
            timeout_.count(),
            " s for the other ranks (one of them died or hangs); stopping "
            "(--dist-timeout)");
        std::fprintf(stderr, "mnv2: %s\n", message.c_str());
        std::fflush(stderr);
        log::error_to_file(message);
        std::_Exit(1);
      }
    }
  }

  std::chrono::seconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool busy_ = false;
  const char* what_ = "";
  std::chrono::steady_clock::time_point since_;
  std::thread thread_;
};

class MpiBackend : public c10d::Backend {
 public:
  explicit MpiBackend(std::chrono::seconds timeout)
      : c10d::Backend(mpi_rank(), mpi_world_size()), watchdog_(timeout) {}

  const std::string getBackendName() const override {
    return "mpi";
  }

  c10::intrusive_ptr<c10d::Work> broadcast(
      std::vector<at::Tensor>& tensors,
      const c10d::BroadcastOptions& opts) override {
    for (auto& t : tensors) {
      check_cpu(t);
      auto buffer = t.is_contiguous() ? t : t.contiguous();
      const auto bytes = static_cast<int>(buffer.nbytes());
      call("broadcast", [&] {
        return MPI_Bcast(buffer.data_ptr(),
                         bytes,
                         MPI_BYTE,
                         static_cast<int>(opts.rootRank),
                         MPI_COMM_WORLD);
      });
      if (!buffer.is_same(t)) {
        t.copy_(buffer);
      }
    }
    return c10::make_intrusive<DoneWork>(tensors, c10d::OpType::BROADCAST);
  }

  c10::intrusive_ptr<c10d::Work> allreduce(
      std::vector<at::Tensor>& tensors,
      const c10d::AllreduceOptions& opts) override {
    for (auto& t : tensors) {
      check_cpu(t);
      const bool widen = needs_widening(t.scalar_type());
      auto buffer = widen ? t.to(c10::kFloat).contiguous()
                          : (t.is_contiguous() ? t : t.contiguous());
      TORCH_CHECK(buffer.numel() <= std::numeric_limits<int>::max(),
                  "MPI backend: tensor too large");
      call("allreduce", [&] {
        return MPI_Allreduce(MPI_IN_PLACE,
                             buffer.data_ptr(),
                             static_cast<int>(buffer.numel()),
                             mpi_type(buffer.scalar_type()),
                             mpi_op(opts.reduceOp),
                             MPI_COMM_WORLD);
      });
      if (!buffer.is_same(t)) {
        t.copy_(buffer);
      }
    }
    return c10::make_intrusive<DoneWork>(tensors, c10d::OpType::ALLREDUCE);
  }

  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor>& tensors,
      const c10d::AllreduceCoalescedOptions& opts) override {
    c10d::AllreduceOptions one;
    one.reduceOp = opts.reduceOp;
    return allreduce(tensors, one);
  }

  c10::intrusive_ptr<c10d::Work> allgather(
      std::vector<std::vector<at::Tensor>>& outputs,
      std::vector<at::Tensor>& inputs,
      const c10d::AllgatherOptions& /*opts*/) override {
    TORCH_CHECK(inputs.size() == 1 && outputs.size() == 1,
                "MPI backend: allgather of one tensor per process");
    const auto input = inputs[0].contiguous();
    check_cpu(input);
    auto& out = outputs[0];
    TORCH_CHECK(static_cast<int>(out.size()) == getSize(),
                "MPI backend: allgather needs one output per rank");
    auto flat = torch::empty({getSize(), input.numel()}, input.options());
    const auto bytes = static_cast<int>(input.nbytes());
    call("allgather", [&] {
      return MPI_Allgather(input.data_ptr(),
                           bytes,
                           MPI_BYTE,
                           flat.data_ptr(),
                           bytes,
                           MPI_BYTE,
                           MPI_COMM_WORLD);
    });
    for (int r = 0; r < getSize(); ++r) {
      out[static_cast<size_t>(r)].copy_(flat[r].view_as(input));
    }
    return c10::make_intrusive<DoneWork>(out, c10d::OpType::ALLGATHER);
  }

  c10::intrusive_ptr<c10d::Work> _allgather_base(
      at::Tensor& output,
      at::Tensor& input,
      const c10d::AllgatherOptions& /*opts*/) override {
    check_cpu(input);
    const auto in = input.contiguous();
    TORCH_CHECK(
        output.is_contiguous() && output.numel() == in.numel() * getSize(),
        "MPI backend: _allgather_base output size");
    const auto bytes = static_cast<int>(in.nbytes());
    call("allgather", [&] {
      return MPI_Allgather(in.data_ptr(),
                           bytes,
                           MPI_BYTE,
                           output.data_ptr(),
                           bytes,
                           MPI_BYTE,
                           MPI_COMM_WORLD);
    });
    return c10::make_intrusive<DoneWork>(std::vector<at::Tensor>{output},
                                         c10d::OpType::_ALLGATHER_BASE);
  }

  c10::intrusive_ptr<c10d::Work> barrier(
      const c10d::BarrierOptions& /*opts*/) override {
    call("barrier", [] { return MPI_Barrier(MPI_COMM_WORLD); });
    return c10::make_intrusive<DoneWork>(std::vector<at::Tensor>{},
                                         c10d::OpType::BARRIER);
  }

 private:
  template <typename Call>
  void call(const char* what, const Call& mpi_call) {
    std::lock_guard<std::mutex> lock(mpi_mutex());
    watchdog_.begin(what);
    const auto start = std::chrono::steady_clock::now();
    const int status = mpi_call();
    collective_seconds() +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    watchdog_.end();
    TORCH_CHECK(status == MPI_SUCCESS, "MPI ", what, " failed (", status, ")");
  }

  Watchdog watchdog_;
};

}  // namespace

void ensure_mpi_initialised() {
  static const bool initialised = [] {
    int already = 0;
    MPI_Initialized(&already);
    if (already == 0) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      TORCH_CHECK(provided >= MPI_THREAD_SERIALIZED,
                  "MPI provides no thread support (level ",
                  provided,
                  ")");
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized == 0) {
          MPI_Finalize();
        }
      });
    }
    return true;
  }();
  static_cast<void>(initialised);
}

double mpi_collective_seconds() {
  return collective_seconds().load();
}

int mpi_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int mpi_world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

c10::intrusive_ptr<c10d::Backend> make_mpi_backend(
    std::chrono::seconds timeout) {
  ensure_mpi_initialised();
  return c10::make_intrusive<MpiBackend>(timeout);
}

}  // namespace mnv2
