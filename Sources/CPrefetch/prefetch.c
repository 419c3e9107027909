// The module is header-only (`kappa_prefetch` is inline); SwiftPM needs one source file.
#include "kappa_prefetch.h"
