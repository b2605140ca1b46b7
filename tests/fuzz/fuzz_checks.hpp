// What the operation fuzzers do when the ring and the model disagree: print which check failed
// and abort, so libFuzzer keeps the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace sluice_fuzz {

// The target's name, for the message (each target defines it).
extern const char* const target_name;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "%s: %s\n", target_name, what);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

// Runs `call`, which must throw exactly E (and nothing else).
template <class E, class Call>
void expect_throw(Call&& call, const char* what) {
  try {
    call();
  } catch (const E&) {
    return;
  } catch (...) {
    fail(what);
  }
  fail(what);
}

}  // namespace sluice_fuzz
