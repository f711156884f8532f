// Fixture for layout.violation_is_caught: eval/ must never include train/.
#include "common/errors.h"
#include "train/trainer.h"
