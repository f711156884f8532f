// Fixture for layout.models_violation_is_caught: the modules (nn/) must
// never include the classifier, which is built on them.
#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/nn/options.h>
#include <mobilenetv2/util/cpu_features.h>
