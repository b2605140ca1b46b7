// Everything public in one include.
#pragma once

#include <sluice/record_ring.hpp>
#include <sluice/spsc_ring.hpp>
#include <sluice/version.hpp>
