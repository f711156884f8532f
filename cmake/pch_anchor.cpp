// Anchor translation unit that owns the precompiled <torch/torch.h>.
#include <torch/torch.h>
