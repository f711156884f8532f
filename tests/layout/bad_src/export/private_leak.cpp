// Fixture for layout.violation_is_caught: eval_setup.h is private to eval/.
#include "eval/eval_commands.h"
#include "eval/eval_setup.h"
