#include "optimizer.h"

#include <torch/torch.h>

#include <cmath>

namespace mnv2 {

namespace {

// Stores `value` into `target`, unless `skip` (a 0-dim bool) is true.
void commit(torch::Tensor& target,
            const torch::Tensor& value,
            const torch::Tensor& skip) {
  if (skip.defined()) {
    target.copy_(torch::where(skip, target, value));
  } else {
    target.copy_(value);
  }
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, OptimizerOptions options)
    : groups_(std::move(groups)), options_(std::move(options)) {
  TORCH_CHECK(options_.kind == "sgd" || options_.kind == "rmsprop" ||
                  options_.kind == "adamw",
              "unknown optimizer '",
              options_.kind,
              "'");
  auto device = torch::kCPU;
  for (const auto& group : groups_) {
    if (!group.params.empty()) {
      device = group.params.front().second.device().type();
    }
  }
  // Double: Adam's bias correction 1 - 0.999^t cancels badly in float.
  step_ = torch::zeros(
      {}, torch::TensorOptions().device(device).dtype(torch::kDouble));
}

void Optimizer::zero_grad() {
  for (auto& group : groups_) {
    for (auto& [name, p] : group.params) {
      if (p.grad().defined()) {
        p.mutable_grad() = torch::Tensor();
      }
    }
  }
}

torch::Tensor& Optimizer::buffer(const std::string& key,
                                 const torch::Tensor& like,
                                 double fill) {
  if (auto* found = state_.find(key)) {
    return *found;
  }
  return state_.insert(key, torch::full_like(like, fill));
}

void Optimizer::step(double lr, const torch::Tensor& skip) {
  torch::NoGradGuard no_grad;
  const auto& o = options_;
  auto new_step = step_ + 1;
  if (skip.defined()) {
    new_step = torch::where(skip, step_, new_step);
  }
  for (auto& group : groups_) {
    const double wd = group.weight_decay;
    for (auto& [name, p] : group.params) {
      if (!p.grad().defined()) {
        continue;
      }
      auto g = p.grad();
      if (o.kind == "sgd" && !skip.defined()) {
        // In place, as torch.optim does: no temporaries beyond `g`.
        if (wd != 0) {
          g = g.add(p, wd);
        }
        if (o.momentum != 0) {
          auto& buf = buffer(name + ".momentum_buffer", p, 0.0);
          buf.mul_(o.momentum).add_(g);
          g = o.nesterov ? g.add(buf, o.momentum) : buf;
        }
        p.add_(g, -lr);
      } else if (o.kind == "sgd") {
        if (wd != 0) {
          g = g + wd * p;
        }
        auto d = g;
        if (o.momentum != 0) {
          auto& buf = buffer(name + ".momentum_buffer", p, 0.0);
          const auto new_buf = buf * o.momentum + g;
          d = o.nesterov ? g + o.momentum * new_buf : new_buf;
          commit(buf, new_buf, skip);
        }
        commit(p, p - lr * d, skip);
      } else if (o.kind == "rmsprop") {
        if (wd != 0) {
          g = g + wd * p;
        }
        auto& square_avg = buffer(name + ".square_avg", p, 1.0);
        auto& mom = buffer(name + ".momentum_buffer", p, 0.0);
        const auto new_avg =
            o.rmsprop_decay * square_avg + (1 - o.rmsprop_decay) * g * g;
        const auto new_mom =
            o.momentum * mom + lr * g / (new_avg + o.eps).sqrt();
        commit(square_avg, new_avg, skip);
        commit(mom, new_mom, skip);
        commit(p, p - new_mom, skip);
      } else {  // adamw
        auto& m = buffer(name + ".exp_avg", p, 0.0);
        auto& v = buffer(name + ".exp_avg_sq", p, 0.0);
        const auto new_m = o.adam_beta1 * m + (1 - o.adam_beta1) * g;
        const auto new_v = o.adam_beta2 * v + (1 - o.adam_beta2) * g * g;
        const auto correction1 = 1 - torch::pow(o.adam_beta1, new_step);
        const auto correction2 = 1 - torch::pow(o.adam_beta2, new_step);
        const auto denom = new_v.sqrt() / correction2.sqrt() + o.eps;
        const auto updated =
            p * (1 - lr * wd) - (lr / correction1) * new_m / denom;
        commit(m, new_m, skip);
        commit(v, new_v, skip);
        commit(p, updated, skip);
      }
    }
  }
  step_.copy_(new_step);
}

std::vector<torch::Tensor> Optimizer::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& group : groups_) {
    for (const auto& [name, p] : group.params) {
      out.push_back(p);
    }
  }
  return out;
}

StateDict Optimizer::state() const {
  StateDict out = state_;
  out.insert("step", step_);
  return out;
}

void Optimizer::load_state(const StateDict& saved) {
  torch::NoGradGuard no_grad;
  state_.clear();
  for (const auto& group : groups_) {
    for (const auto& [name, p] : group.params) {
      for (const auto& item : saved) {
        if (item.key().rfind(name + ".", 0) == 0 &&
            item.key().find('.', name.size() + 1) == std::string::npos) {
          if (item.value().sizes() != p.sizes()) {
            throw WeightsError("optimizer state '" + item.key() +
                               "' does not fit the model");
          }
          state_.insert(item.key(), item.value().to(p.device()).clone());
        }
      }
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
