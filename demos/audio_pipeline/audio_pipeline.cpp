// An audio capture pipeline through one sluice::spsc_ring<float> of interleaved frames.
//
// The device (a JACK server's process callback, or a simulated device paced by the clock)
// delivers a period of frames at a time and must never wait: it reserves room in the ring,
// renders a sine tone into it in place and commits; when the ring is full it drops the period
// and counts an overrun. A slower consumer thread takes blocks of a different size, sleeping
// on a water mark with a timeout, and writes them to a WAV file. Injected consumer stalls show
// what the ring absorbs and what it cannot.
//
//   audio_pipeline [--device auto|jack|simulated] [--seconds S] [--block N] [--stall-ms N ...]
//   (--help for all the options)
#include "consumer.hpp"
#include "device.hpp"
#include "producer.hpp"
#include "tone.hpp"

#include <sluice/spsc_ring.hpp>

#include <CLI/CLI.hpp>
#include <sndfile.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

namespace {

struct options {
  double seconds = 3;
  unsigned rate = 48000;
  std::size_t period = 256;
  std::size_t channels = 2;
  double frequency = 440;
  std::size_t block = 1000;
  std::size_t ring_frames = 16384;
  std::string output = "audio_pipeline.wav";
  std::string device = "auto";
  unsigned stall_ms = 0;
  unsigned stall_every_ms = 0;
};

std::unique_ptr<audio_pipeline::device> open_device(const options& o) {
  if (o.device == "simulated") return audio_pipeline::open_simulated(o.rate, o.period);
  auto jack = audio_pipeline::open_jack(/*quiet=*/o.device == "auto");
  if (jack || o.device == "jack") return jack;
  return audio_pipeline::open_simulated(o.rate, o.period);  // auto, and no JACK server runs
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"Records a sine tone from an audio device (JACK, or a simulated one) to a WAV file\n"
               "through a sluice::spsc_ring, and reports what the ring saw."};
  app.option_defaults()->always_capture_default();  // --help shows each default
  app.add_option("--seconds", o.seconds, "Length of the recording")->check(CLI::PositiveNumber);
  app.add_option("--rate", o.rate, "Sample rate of the simulated device (JACK uses the server's)")
      ->check(CLI::Range(1000u, 384000u));
  app.add_option("--period", o.period, "Frames per period of the simulated device (JACK: the server's)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16));
  app.add_option("--channels", o.channels, "Interleaved channels")->check(CLI::Range(std::size_t{1}, std::size_t{32}));
  app.add_option("--frequency", o.frequency, "Tone frequency in Hz")->check(CLI::PositiveNumber);
  app.add_option("--block", o.block, "Frames the consumer waits for and writes at a time")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--ring-frames", o.ring_frames, "Ring capacity in frames (at least --block and the period)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--output", o.output, "WAV file to write (32-bit float)");
  app.add_option("--device", o.device, "auto: JACK if a server runs, else simulated")
      ->check(CLI::IsMember({"auto", "jack", "simulated"}));
  app.add_option("--stall-ms", o.stall_ms, "Consumer stall length in ms (0: none)");
  app.add_option("--stall-every-ms", o.stall_every_ms, "Time between consumer stalls in ms");
  CLI11_PARSE(app, argc, argv);

  auto dev = open_device(o);
  if (!dev) {
    std::fprintf(stderr, "audio_pipeline: no JACK server is running (start one with: jackd -d dummy)\n");
    return 1;
  }
  const unsigned rate = dev->rate();
  const std::size_t period = dev->period();
  if (o.ring_frames < o.block || o.ring_frames < period) {
    std::fprintf(stderr, "audio_pipeline: --ring-frames %zu is less than the block (%zu) or the period (%zu)\n",
                 o.ring_frames, o.block, period);
    return 1;
  }
  if (o.frequency >= rate / 2.0) {
    std::fprintf(stderr, "audio_pipeline: --frequency %g is not below half the rate (%u Hz)\n", o.frequency, rate);
    return 1;
  }

  SF_INFO info{};
  info.samplerate = static_cast<int>(rate);
  info.channels = static_cast<int>(o.channels);
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* wav = sf_open(o.output.c_str(), SFM_WRITE, &info);
  if (wav == nullptr) {
    std::fprintf(stderr, "audio_pipeline: cannot write %s: %s\n", o.output.c_str(), sf_strerror(nullptr));
    return 1;
  }

  // All allocation happens here, before the device starts: the ring's storage, a whole number
  // of frames so that no frame is ever split across its end.
  audio_pipeline::audio_ring ring(o.ring_frames * o.channels);
  const auto target = static_cast<std::uint64_t>(std::llround(o.seconds * rate));
  audio_pipeline::producer prod(ring, audio_pipeline::tone(o.frequency, rate, 0.5f), o.channels, target);
  audio_pipeline::consumer cons(ring, wav, o.channels, o.block, rate, {o.stall_ms, o.stall_every_ms});
  std::thread writer([&cons] { cons.run(); });

  bool ok = dev->start(prod);
  // The device stops producing at the target; a JACK server may also go away, or stop calling.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.seconds + 10);
  while (ok && !prod.finished()) {
    if (dev->failed() || std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr, "audio_pipeline: the %s device stopped before the end\n", dev->name().c_str());
      ok = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  dev->stop();
  // Every commit happened before prod.finished() (or dev->stop()) returned, so the consumer
  // drains all of them before it sees the ring closed and empty.
  ring.close();
  writer.join();
  const bool closed_ok = sf_close(wav) == 0;

  const sluice::ring_statistics stats = ring.statistics();
  const std::uint64_t written = cons.frames_written();
  std::printf("sluice audio_pipeline: %g Hz sine, %zu channels, %g s\n", o.frequency, o.channels, o.seconds);
  std::printf("device: %s, %u Hz, %zu frames per period\n", dev->name().c_str(), rate, period);
  std::printf("ring: spsc_ring<float, no_waiting> of %zu frames; consumer blocks of %zu frames (polled)\n", o.ring_frames,
              o.block);
  std::printf("frames produced: %llu (%llu periods)\n", static_cast<unsigned long long>(prod.produced()),
              static_cast<unsigned long long>(prod.periods()));
  std::printf("frames written: %llu in %llu blocks (largest %llu frames)\n", static_cast<unsigned long long>(written),
              static_cast<unsigned long long>(cons.blocks()), static_cast<unsigned long long>(cons.largest_block()));
  std::printf("overruns: %llu (periods dropped, %llu frames)\n", static_cast<unsigned long long>(prod.overruns()),
              static_cast<unsigned long long>(prod.dropped()));
  std::printf("ring high-water mark: %llu frames\n", static_cast<unsigned long long>(stats.high_water / o.channels));
  std::printf("consumer polls that found less than a block: %llu\n", static_cast<unsigned long long>(cons.polls()));
  std::printf("consumer stalls: %llu\n", static_cast<unsigned long long>(cons.stalls()));
  std::printf("wav: %s\n", o.output.c_str());

  if (!cons.error().empty()) std::fprintf(stderr, "audio_pipeline: %s\n", cons.error().c_str());
  if (!closed_ok) std::fprintf(stderr, "audio_pipeline: cannot finish %s\n", o.output.c_str());
  // Every frame produced is either in the file or counted as dropped.
  const bool balanced = written + prod.dropped() == prod.produced();
  if (!balanced) std::fprintf(stderr, "audio_pipeline: produced != written + dropped\n");
  return ok && closed_ok && balanced && cons.error().empty() ? 0 : 1;
}
