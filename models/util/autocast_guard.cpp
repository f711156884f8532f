#include <mobilenetv2/util/autocast_guard.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace mnv2 {

AutocastGuard::AutocastGuard(c10::DeviceType device,
                             c10::ScalarType dtype,
                             bool enabled)
    : device_(device), enabled_(enabled) {
  if (!enabled_) {
    return;
  }
  previous_enabled_ = at::autocast::is_autocast_enabled(device_);
  previous_dtype_ = at::autocast::get_autocast_dtype(device_);
  at::autocast::set_autocast_enabled(device_, true);
  at::autocast::set_autocast_dtype(device_, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) {
    return;
  }
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(device_, previous_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
}

}  // namespace mnv2
