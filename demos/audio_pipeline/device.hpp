// Where the periods come from: a JACK client whose process callback is the producer, or a
// simulated device, a thread paced by the clock at the same rate and period.
#pragma once

#include "producer.hpp"

#include <cstddef>
#include <memory>
#include <string>

namespace audio_pipeline {

class device {
 public:
  virtual ~device() = default;
  /// "jack" or "simulated".
  [[nodiscard]] virtual std::string name() const = 0;
  /// The rate and period the device runs at (a JACK server's own, whatever was asked for).
  [[nodiscard]] virtual unsigned rate() const = 0;
  [[nodiscard]] virtual std::size_t period() const = 0;
  /// Starts calling p.period() once per period, from the device's thread. False on failure.
  /// `p` must outlive stop().
  virtual bool start(producer& p) = 0;
  /// True if the device stopped on its own (a JACK server that shut down). Any thread.
  [[nodiscard]] virtual bool failed() const = 0;
  /// Stops the calls; when it returns, no call is running or will be made.
  virtual void stop() = 0;
};

/// A client of the running JACK server (JACK_DEFAULT_SERVER, or the default one); never starts
/// a server. Null if none runs; `quiet` hides libjack's messages about that.
std::unique_ptr<device> open_jack(bool quiet);

/// A thread that calls the producer every `period` frames of `rate` Hz, by the steady clock.
std::unique_ptr<device> open_simulated(unsigned rate, std::size_t period);

}  // namespace audio_pipeline
