// The slow side: a thread that polls for blocks of frames, reads them in place in the ring, and
// writes them to a WAV file. Its block size has nothing to do with the device's period.
#pragma once

#include "producer.hpp"

#include <sndfile.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>

namespace audio_pipeline {

struct stall_plan {
  unsigned ms = 0;        // how long each stall lasts (0: never stall)
  unsigned every_ms = 0;  // how long the consumer runs between stalls
};

/// run() on the consumer thread; the accessors after it returned (after the thread's join).
class consumer {
 public:
  consumer(audio_ring& ring, SNDFILE* wav, std::size_t channels, std::size_t block, unsigned rate,
           stall_plan stalls) noexcept
      : ring_(ring), wav_(wav), channels_(channels), block_(block), stalls_(stalls),
        // A quarter of a block's duration: the ring holds several blocks, so a block waits at
        // most this long, and the consumer looks about four times per block.
        poll_(std::chrono::microseconds(std::max<std::uint64_t>(500, 250'000ull * block / rate))) {}

  /// Until the ring is closed and drained.
  void run() {
    using clock = std::chrono::steady_clock;
    auto next_stall = clock::now() + std::chrono::milliseconds(stalls_.every_ms);
    for (;;) {
      // Looked at before the read: if the ring was closed then, the read sees every commit
      // (the producer's last commit happened before close()), so an empty read means drained.
      const bool was_closed = ring_.closed();
      if (!was_closed && ring_.size_approx() < block_ * channels_) {
        ++polls_;  // less than a block: look again later (the device never waits for us)
        std::this_thread::sleep_for(poll_);
        continue;
      }
      // Everything ready and contiguous: at the end of the storage it may be shorter than a
      // block, after a stall longer.
      auto grant = ring_.try_read();
      if (!grant) {
        if (was_closed) return;
        continue;
      }
      write(grant.span());
      grant.release();
      if (stalls_.ms != 0 && clock::now() >= next_stall) {
        std::this_thread::sleep_for(std::chrono::milliseconds(stalls_.ms));  // a slow disk, say
        ++stalls_taken_;
        next_stall = clock::now() + std::chrono::milliseconds(stalls_.every_ms);
      }
    }
  }

  [[nodiscard]] std::uint64_t frames_written() const noexcept { return written_; }
  [[nodiscard]] std::uint64_t blocks() const noexcept { return blocks_; }
  [[nodiscard]] std::uint64_t largest_block() const noexcept { return largest_; }
  [[nodiscard]] std::uint64_t stalls() const noexcept { return stalls_taken_; }
  /// Times the consumer found less than a block ready and slept a poll interval.
  [[nodiscard]] std::uint64_t polls() const noexcept { return polls_; }
  /// Empty unless a write failed (the consumer then drains the ring without writing).
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  void write(std::span<const float> samples) {
    // Every commit is whole frames and the capacity is too, so every read is whole frames.
    const auto frames = static_cast<sf_count_t>(samples.size() / channels_);
    if (!error_.empty()) return;
    if (sf_writef_float(wav_, samples.data(), frames) != frames) {
      error_ = std::string("writing the WAV file: ") + sf_strerror(wav_);
      return;
    }
    written_ += static_cast<std::uint64_t>(frames);
    ++blocks_;
    largest_ = std::max<std::uint64_t>(largest_, static_cast<std::uint64_t>(frames));
  }

  audio_ring& ring_;
  SNDFILE* wav_;
  std::size_t channels_;
  std::size_t block_;
  stall_plan stalls_;
  std::chrono::microseconds poll_;
  std::uint64_t written_ = 0, blocks_ = 0, largest_ = 0, stalls_taken_ = 0, polls_ = 0;
  std::string error_;
};

}  // namespace audio_pipeline
