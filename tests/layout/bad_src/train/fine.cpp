// Fixture for layout.violation_is_caught: allowed includes, not reported.
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "train/training.h"
