// The JACK device: a client of a running JACK server whose process callback is the producer.
// It registers no ports: the tone it renders stands for what a capture port would deliver.
#include "device.hpp"

#include <jack/jack.h>

#include <atomic>
#include <cstdio>

namespace audio_pipeline {
namespace {

class jack_device final : public device {
 public:
  explicit jack_device(jack_client_t* client) : client_(client) {}
  ~jack_device() override {
    stop();
    jack_client_close(client_);
  }

  std::string name() const override { return "jack"; }
  unsigned rate() const override { return jack_get_sample_rate(client_); }
  std::size_t period() const override { return jack_get_buffer_size(client_); }

  bool failed() const override {
    return shut_down_.load(std::memory_order_acquire);  // pairs with the release in on_shutdown()
  }

  bool start(producer& p) override {
    jack_on_shutdown(client_, on_shutdown, this);
    if (jack_set_process_callback(client_, process, &p) != 0 || jack_activate(client_) != 0) {
      std::fprintf(stderr, "audio_pipeline: cannot activate the JACK client\n");
      return false;
    }
    active_ = true;
    return true;
  }

  // jack_deactivate() returns once the process thread is out of the callback for good.
  void stop() override {
    if (active_) jack_deactivate(client_);
    active_ = false;
  }

 private:
  // The process thread, once per period: the real-time callback. Only the producer's work.
  static int process(jack_nframes_t frames, void* arg) {
    static_cast<producer*>(arg)->period(frames);
    return 0;
  }

  // A libjack thread, when the server goes away.
  static void on_shutdown(void* arg) {
    // Release pairs with the acquire in failed().
    static_cast<jack_device*>(arg)->shut_down_.store(true, std::memory_order_release);
  }

  jack_client_t* client_;
  bool active_ = false;
  std::atomic<bool> shut_down_{false};
};

void ignore_message(const char*) {}

}  // namespace

std::unique_ptr<device> open_jack(bool quiet) {
  if (quiet) {
    jack_set_error_function(ignore_message);
    jack_set_info_function(ignore_message);
  }
  jack_status_t status{};
  jack_client_t* client = jack_client_open("sluice_audio_pipeline", JackNoStartServer, &status);
  if (quiet) {  // later messages (a server that shuts down) are worth seeing
    jack_set_error_function(nullptr);
    jack_set_info_function(nullptr);
  }
  if (client == nullptr) return nullptr;
  return std::make_unique<jack_device>(client);
}

}  // namespace audio_pipeline
