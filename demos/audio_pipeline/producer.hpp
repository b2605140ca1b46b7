// The real-time side: what a device calls once per period. It only reserves, renders and
// commits; when the ring is full it counts an overrun and drops the period.
#pragma once

#include "tone.hpp"

#include <sluice/spsc_ring.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace audio_pipeline {

// The ring between the device and the writer. no_waiting: a real-time callback must never make
// a system call, and a waitable ring's commit wakes a sleeping consumer with one (a futex
// wake). So the consumer does not sleep in the ring: it polls, a few times per block.
using audio_ring = sluice::spsc_ring<float, sluice::no_waiting>;

/// One period's work, called from the device's thread only (the JACK process thread, or the
/// simulated device's). Other threads read the counters, after finished() says it is done or at
/// any time for a progress figure.
class producer {
 public:
  producer(audio_ring& ring, tone t, std::size_t channels, std::uint64_t target_frames) noexcept
      : ring_(ring), tone_(t), channels_(channels), target_(target_frames) {}

  /// Renders `frames` frames into the ring, or drops them if it is full. No allocation, lock,
  /// blocking or system call: the ring's no_waiting policy means a commit never even looks
  /// for a sleeper to wake (the consumer polls). Once the target is reached it does nothing.
  void period(std::size_t frames) noexcept {
    if (done_) return;
    const std::size_t samples = frames * channels_;
    // try_reserve_split() throws for more than the capacity: refuse that here instead (never
    // happens with the sizes main() checks, unless a JACK server changes its period).
    auto grant = samples <= ring_.capacity() ? ring_.try_reserve_split(samples)
                                             : audio_ring::split_write_grant{};
    if (grant) {
      // The ring's capacity is a whole number of frames and every commit is, so the split
      // falls between frames: each half is a whole number of frames.
      tone_.render(grant.first(), channels_);
      tone_.render(grant.second(), channels_);
      grant.commit();
    } else {
      tone_.skip(frames);  // time goes on while the period is dropped
      // Relaxed: a count read for the summary, ordered for it by finished_ below.
      overruns_.fetch_add(1, std::memory_order_relaxed);
      dropped_.fetch_add(frames, std::memory_order_relaxed);
    }
    const std::uint64_t produced = produced_.load(std::memory_order_relaxed) + frames;
    // Relaxed: one writer (this thread); readers want a progress figure or wait for finished_.
    produced_.store(produced, std::memory_order_relaxed);
    ++periods_;
    if (produced >= target_) {
      done_ = true;
      // Release pairs with the acquire in finished(): every commit and count above happens
      // before the thread that sees true closes the ring and reads the counters.
      finished_.store(true, std::memory_order_release);
    }
  }

  /// Any thread: true once the target is reached; the counters are final then.
  [[nodiscard]] bool finished() const noexcept {
    return finished_.load(std::memory_order_acquire);  // pairs with the release in period()
  }

  // Any thread; final once finished(). Relaxed: plain counts (see period()).
  [[nodiscard]] std::uint64_t produced() const noexcept { return produced_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t overruns() const noexcept { return overruns_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Only after finished() (a plain counter of the device thread).
  [[nodiscard]] std::uint64_t periods() const noexcept { return periods_; }

 private:
  audio_ring& ring_;
  tone tone_;
  std::size_t channels_;
  std::uint64_t target_;
  bool done_ = false;         // device thread only
  std::uint64_t periods_ = 0; // device thread only until finished_
  std::atomic<std::uint64_t> produced_{0};  // frames of device time: written and dropped
  std::atomic<std::uint64_t> overruns_{0};  // periods dropped because the ring was full
  std::atomic<std::uint64_t> dropped_{0};   // their frames
  std::atomic<bool> finished_{false};
};

}  // namespace audio_pipeline
