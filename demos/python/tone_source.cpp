// tone_source: the C++ side of the Python demo. It attaches as the producer to a shared
// spsc_ring<float> that a Python process created, and plays the part of an audio callback: every
// period it reserves `period` frames, renders a sine tone into them in place and commits, never
// waiting; a period that finds no room is dropped (the tone's phase still advances). At the end
// it closes the ring and prints what it committed and dropped.
#include <sluice/spsc_ring.hpp>

#include "../audio_pipeline/tone.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  std::string name;
  double seconds = 3, rate = 48000, frequency = 440;
  float amplitude = 0.5f;
  std::size_t period = 256;
  CLI::App app{"Renders a tone into a shared sluice::spsc_ring<float> made by another process"};
  app.add_option("--name", name, "the shared ring's name, e.g. /sluice-tone")->required();
  app.add_option("--seconds", seconds, "how long to play")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rate", rate, "frames per second")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--frequency", frequency, "the tone's frequency in Hz")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--amplitude", amplitude, "the tone's peak")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--period", period, "frames per callback")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  CLI11_PARSE(app, argc, argv);

  sluice::spsc_ring<float> ring(sluice::open_shared, name, {.role = sluice::role::producer});
  if (period > ring.capacity()) {
    std::fprintf(stderr, "tone_source: --period %zu exceeds the ring's capacity %zu\n", period, ring.capacity());
    return 2;
  }
  audio_pipeline::tone tone(frequency, rate, amplitude);
  const auto interval = std::chrono::duration<double>(static_cast<double>(period) / rate);
  const auto periods = static_cast<std::size_t>(seconds * rate / static_cast<double>(period));
  std::size_t committed = 0, dropped = 0;
  auto next = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < periods; ++i) {
    if (auto g = ring.try_reserve(period)) {  // never waits: a callback cannot
      tone.render(g.span(), 1);
      g.commit();
      committed += period;
    } else {
      tone.skip(period);
      dropped += period;
    }
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
    std::this_thread::sleep_until(next);
  }
  ring.close();  // the consumer drains what was committed, then its read() returns None
  std::printf("tone_source: committed=%zu dropped=%zu frames\n", committed, dropped);
  return 0;
}
