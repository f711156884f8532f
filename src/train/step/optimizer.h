#pragma once

#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace mnv2 {

/// Parameters sharing a weight decay.
struct ParamGroup {
  std::vector<std::pair<std::string, torch::Tensor>> params;
  double weight_decay = 0;
};

struct OptimizerOptions {
  std::string kind = "sgd";  ///< sgd | rmsprop | adamw
  double momentum = 0.9;
  bool nesterov = false;
  /// RMSProp: added inside the square root (TensorFlow's form); AdamW: outside.
  double eps = 1e-3;
  double rmsprop_decay = 0.9;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
};

/// SGD with momentum (PyTorch's semantics, optional Nesterov), RMSProp in the
/// TensorFlow form the paper used (mean square initialised to 1, epsilon
/// inside the square root, learning rate inside the momentum), and AdamW
/// (PyTorch's). The state is kept per parameter name so checkpoints are
/// readable, and a step can be skipped on the device (no host sync) for
/// GradScaler.
class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, OptimizerOptions options);

  void zero_grad();
  /// One update at learning rate `lr`. When `skip` (a 0-dim bool tensor on
  /// the parameters' device) is true, parameters and state keep their values.
  void step(double lr, const torch::Tensor& skip = {});

  /// All trainable parameters, group by group.
  std::vector<torch::Tensor> parameters() const;
  /// "<param>.<buffer>" tensors and "step".
  StateDict state() const;
  /// Buffers absent from `state` keep their initial values; a mis-shaped
  /// one throws WeightsError.
  void load_state(const StateDict& state);

 private:
  enum class Kind { kSgd, kRmsProp, kAdamW };
  /// A parameter and its optimiser buffers, resolved once so that a step
  /// does no name building or lookups.
  struct Slot {
    std::string name;
    torch::Tensor param;
    double weight_decay;
    std::vector<std::pair<std::string, torch::Tensor>> buffers;
  };
  void update(Slot& slot, const torch::Tensor& grad, double lr);

  Kind kind_;
  OptimizerOptions options_;
  std::vector<Slot> slots_;
  torch::Tensor step_;  // double, counts steps not skipped
};

/// Parameters of `module` that require gradients, split into 1-D ones
/// (BatchNorm weights and biases, biases: `norm_weight_decay`) and the rest
/// (`weight_decay`), as torchvision's --norm-weight-decay does.
std::vector<ParamGroup> weight_decay_groups(const torch::nn::Module& module,
                                            double weight_decay,
                                            double norm_weight_decay);

/// Scales gradients so their global L2 norm is at most `max_norm`, on the
/// device (no host synchronisation).
void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace mnv2
