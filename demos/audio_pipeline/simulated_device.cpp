// The simulated device: a thread that wakes at each period boundary, by the steady clock, and
// calls the producer, as a sound card's interrupt would.
#include "device.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace audio_pipeline {
namespace {

class simulated_device final : public device {
 public:
  simulated_device(unsigned rate, std::size_t period) : rate_(rate), period_(period) {}
  ~simulated_device() override { stop(); }

  std::string name() const override { return "simulated"; }
  unsigned rate() const override { return rate_; }
  std::size_t period() const override { return period_; }
  bool failed() const override { return false; }

  bool start(producer& p) override {
    thread_ = std::thread([this, &p] { run(p); });
    return true;
  }

  void stop() override {
    // Relaxed: a request; the join below is what synchronises with the thread.
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run(producer& p) {
    using clock = std::chrono::steady_clock;
    const clock::time_point start = clock::now();
    // Period k ends k * period / rate seconds after the start, computed from k each time so
    // that rounding never accumulates: the device keeps its rate exactly, however long it runs.
    for (std::uint64_t k = 1; !stop_.load(std::memory_order_relaxed); ++k) {  // relaxed: see stop()
      const std::uint64_t ns = k * period_ * 1'000'000'000ull / rate_;
      std::this_thread::sleep_until(start + std::chrono::nanoseconds(ns));
      p.period(period_);
      if (p.finished()) return;  // nothing more to produce
    }
  }

  unsigned rate_;
  std::size_t period_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

std::unique_ptr<device> open_simulated(unsigned rate, std::size_t period) {
  return std::make_unique<simulated_device>(rate, period);
}

}  // namespace audio_pipeline
