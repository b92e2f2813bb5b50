/* placeholder until the CPU backend lands */
#include "cpu/cpu_backend.h"
