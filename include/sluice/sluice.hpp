// Everything public in one include.
#pragma once

#include <sluice/spsc_ring.hpp>
#include <sluice/version.hpp>
