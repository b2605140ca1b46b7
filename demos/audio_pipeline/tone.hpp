// A phase-continuous sine tone, rendered into interleaved frames: every channel carries the
// same sample. Real-time safe: no allocation, lock or system call.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>

namespace audio_pipeline {

class tone {
 public:
  tone(double frequency, double rate, float amplitude) noexcept
      : step_(frequency / rate), amplitude_(amplitude) {}

  /// Fills `out` (a whole number of frames of `channels` samples) and advances the phase by
  /// the frames written, so the next call continues the waveform without a jump.
  void render(std::span<float> out, std::size_t channels) noexcept {
    for (std::size_t i = 0; i < out.size(); i += channels) {
      const float sample = amplitude_ * static_cast<float>(std::sin(2 * std::numbers::pi * phase_));
      for (std::size_t c = 0; c < channels; ++c) out[i + c] = sample;
      advance(1);
    }
  }

  /// Advances the phase by `frames` without rendering them: a dropped period still takes its
  /// time, so the tone after it is where it would have been.
  void skip(std::size_t frames) noexcept { advance(frames); }

 private:
  // The phase counts cycles and stays in [0, 1): a double that never grows keeps its precision
  // however long the tone runs.
  void advance(std::size_t frames) noexcept {
    phase_ += step_ * static_cast<double>(frames);
    phase_ -= std::floor(phase_);
  }

  double phase_ = 0;
  double step_;       // cycles per frame
  float amplitude_;
};

}  // namespace audio_pipeline
