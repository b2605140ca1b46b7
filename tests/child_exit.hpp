// The end of a forked test child: its output flushed, and in a coverage build its gcov counters
// written (a child leaves through _exit, which skips the atexit handler that writes them, so
// without this the code only child processes run would read as never run).
#pragma once

#include <unistd.h>

#include <cstdio>

extern "C" void __gcov_dump(void) __attribute__((weak));  // libgcov, in --coverage builds only

namespace sluice_test {

[[noreturn]] inline void exit_child(int status) {
  std::fflush(nullptr);
  if (__gcov_dump) __gcov_dump();
  ::_exit(status);
}

}  // namespace sluice_test
