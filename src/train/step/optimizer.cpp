#include "train/step/optimizer.h"
#include "train/step/update_loops.h"

#include <mobilenetv2/nn/fused_batchnorm.h>

#include <torch/torch.h>

#include <cmath>

namespace mnv2 {

Optimizer::Optimizer(std::vector<ParamGroup> groups, OptimizerOptions options)
    : options_(std::move(options)) {
  if (options_.kind == "sgd") {
    kind_ = Kind::kSgd;
  } else if (options_.kind == "rmsprop") {
    kind_ = Kind::kRmsProp;
  } else {
    TORCH_CHECK(
        options_.kind == "adamw", "unknown optimizer '", options_.kind, "'");
    kind_ = Kind::kAdamW;
  }
  // Buffer names and initial values: PyTorch's, and TensorFlow's mean square
  // of 1 for RMSProp.
  std::vector<std::pair<std::string, double>> buffers;
  if (kind_ == Kind::kSgd && options_.momentum != 0) {
    buffers = {{"momentum_buffer", 0.0}};
  } else if (kind_ == Kind::kRmsProp) {
    buffers = {{"square_avg", 1.0}, {"momentum_buffer", 0.0}};
  } else if (kind_ == Kind::kAdamW) {
    buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  }
  auto device = torch::Device(torch::kCPU);
  torch::NoGradGuard no_grad;
  for (auto& group : groups) {
    for (auto& [name, p] : group.params) {
      Slot slot{name, p, group.weight_decay, {}};
      for (const auto& [buffer, fill] : buffers) {
        slot.buffers.emplace_back(name + "." + buffer,
                                  torch::full_like(p, fill));
      }
      slots_.push_back(std::move(slot));
      device = p.device();
    }
  }
  // Double: Adam's bias correction 1 - 0.999^t cancels badly in float.
  step_ = torch::zeros(
      {}, torch::TensorOptions().device(device).dtype(torch::kDouble));
}

void Optimizer::zero_grad() {
  for (auto& slot : slots_) {
    slot.param.mutable_grad() = torch::Tensor();
  }
}

void Optimizer::update(Slot& slot, const torch::Tensor& grad, double lr) {
  const auto& o = options_;
  auto& p = slot.param;
  const double wd = slot.weight_decay;
  switch (kind_) {
    case Kind::kSgd: {
      torch::Tensor* buffer =
          slot.buffers.empty() ? nullptr : &slot.buffers[0].second;
      if (fused_batchnorm_enabled() &&
          plain_cpu_floats({p, grad, buffer ? *buffer : p})) {
        sgd_update(p, grad, buffer, {lr, wd, o.momentum, o.nesterov});
        return;
      }
      auto g = wd != 0 ? grad.add(p, wd) : grad;
      if (!slot.buffers.empty()) {
        auto& buf = slot.buffers[0].second;
        buf.mul_(o.momentum).add_(g);
        g = o.nesterov ? g.add(buf, o.momentum) : buf;
      }
      p.add_(g, -lr);
      return;
    }
    case Kind::kRmsProp: {
      const auto g = wd != 0 ? grad.add(p, wd) : grad;
      auto& square_avg = slot.buffers[0].second;
      auto& mom = slot.buffers[1].second;
      square_avg.mul_(o.rmsprop_decay).addcmul_(g, g, 1 - o.rmsprop_decay);
      mom.mul_(o.momentum).addcdiv_(g, (square_avg + o.eps).sqrt(), lr);
      p.sub_(mom);
      return;
    }
    case Kind::kAdamW: {
      auto& m = slot.buffers[0].second;
      auto& v = slot.buffers[1].second;
      p.mul_(1 - lr * wd);
      m.mul_(o.adam_beta1).add_(grad, 1 - o.adam_beta1);
      v.mul_(o.adam_beta2).addcmul_(grad, grad, 1 - o.adam_beta2);
      const auto correction1 = 1 - torch::pow(o.adam_beta1, step_);
      const auto correction2 = 1 - torch::pow(o.adam_beta2, step_);
      const auto denom = v.sqrt() / correction2.sqrt() + o.eps;
      p.sub_(m / denom * (lr / correction1));
      return;
    }
  }
}

void Optimizer::step(double lr, const torch::Tensor& skip) {
  torch::NoGradGuard no_grad;
  const auto previous_step = step_.clone();
  step_.add_(1);
  for (auto& slot : slots_) {
    const auto grad = slot.param.grad();
    if (!grad.defined()) {
      continue;
    }
    if (!skip.defined()) {
      update(slot, grad, lr);
      continue;
    }
    // GradScaler's skipped step, decided on the device: update, then put
    // back the old values where `skip` is true (no host synchronisation).
    std::vector<torch::Tensor> before = {slot.param.clone()};
    for (const auto& [name, buffer] : slot.buffers) {
      before.push_back(buffer.clone());
    }
    update(slot, grad, lr);
    slot.param.copy_(torch::where(skip, before[0], slot.param));
    for (size_t i = 0; i < slot.buffers.size(); ++i) {
      auto& buffer = slot.buffers[i].second;
      buffer.copy_(torch::where(skip, before[i + 1], buffer));
    }
  }
  if (skip.defined()) {
    step_.copy_(torch::where(skip, previous_step, step_));
  }
}

std::vector<torch::Tensor> Optimizer::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& slot : slots_) {
    out.push_back(slot.param);
  }
  return out;
}

StateDict Optimizer::state() const {
  StateDict out;
  for (const auto& slot : slots_) {
    for (const auto& [name, buffer] : slot.buffers) {
      out.insert(name, buffer);
    }
  }
  out.insert("step", step_);
  return out;
}

void Optimizer::load_state(const StateDict& saved) {
  torch::NoGradGuard no_grad;
  for (auto& slot : slots_) {
    for (auto& [name, buffer] : slot.buffers) {
      const auto* value = saved.find(name);
      if (value == nullptr) {
        continue;
      }
      if (value->sizes() != buffer.sizes()) {
        throw WeightsError("optimizer state '" + name +
                           "' does not fit the model");
      }
      buffer.copy_(*value);
    }
  }
  if (const auto* step = saved.find("step")) {
    step_.copy_(*step);
  }
}

std::vector<ParamGroup> weight_decay_groups(const torch::nn::Module& module,
                                            double weight_decay,
                                            double norm_weight_decay) {
  ParamGroup decay{{}, weight_decay};
  ParamGroup no_decay{{}, norm_weight_decay};
  for (const auto& item : module.named_parameters()) {
    if (!item.value().requires_grad()) {
      continue;
    }
    (item.value().dim() <= 1 ? no_decay : decay)
        .params.emplace_back(item.key(), item.value());
  }
  return {decay, no_decay};
}

void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  bool plain = true;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      plain = plain && fused_batchnorm_enabled() &&
              plain_cpu_floats({grads.back()});
    }
  }
  if (plain) {
    // On the CPU the host reads the norm at no cost: one pass to sum, one
    // to scale where the norm is over the limit.
    double squares = 0;
    for (const auto& g : grads) {
      squares += sum_of_squares(g);
    }
    const double coef = max_norm / (std::sqrt(squares) + 1e-6);
    if (coef < 1) {
      for (auto& g : grads) {
        scale_in_place(g, static_cast<float>(coef));
      }
    }
    return;
  }
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      norms.push_back(p.grad().norm(2).to(torch::kFloat));
    }
  }
  if (norms.empty()) {
    return;
  }
  const auto total = torch::stack(norms).norm(2);
  const auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (const auto& p : params) {
    if (p.grad().defined()) {
      p.grad().mul_(coef.to(p.grad().scalar_type()));
    }
  }
}

}  // namespace mnv2
