// Checks a WAV file that audio_pipeline wrote: its format, its length, and that every channel
// holds one unbroken sine tone of the expected frequency. Exit 0 if all holds, 1 if not.
//
//   wav_check FILE --rate 48000 --channels 2 --frequency 440 --frames N --near M --slack K
//
// The tone checks:
// - frequency: from the rising zero crossings, interpolated between samples: (crossings - 1)
//   cycles between the first and the last. Within 1% of --frequency.
// - continuity: a sine of peak A and frequency f never moves by more than 2*A*sin(pi*f/rate)
//   between two samples (its slope is at most 2*pi*f*A per second). A dropped or repeated period
//   jumps the phase and breaks this almost always; 2% of margin covers float rounding.
// - level: the peak is between 0.1 and 1, so silence or clipping fails.
#include <CLI/CLI.hpp>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

namespace {

struct tone_report {
  double frequency = 0;
  double peak = 0;
  double max_step = 0;
  std::uint64_t crossings = 0;
};

tone_report analyse(const std::vector<float>& samples, std::size_t channels, std::size_t channel, double rate) {
  tone_report r;
  double first = -1, last = -1;
  double previous = 0;
  const std::size_t frames = samples.size() / channels;
  for (std::size_t i = 0; i < frames; ++i) {
    const double x = samples[i * channels + channel];
    r.peak = std::max(r.peak, std::abs(x));
    if (i != 0) {
      r.max_step = std::max(r.max_step, std::abs(x - previous));
      if (previous < 0 && x >= 0) {
        const double t = static_cast<double>(i - 1) + previous / (previous - x);  // where it crossed 0
        if (first < 0) first = t;
        last = t;
        ++r.crossings;
      }
    }
    previous = x;
  }
  if (r.crossings >= 2) r.frequency = static_cast<double>(r.crossings - 1) * rate / (last - first);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  int rate = 48000;
  int channels = 2;
  double frequency = 440;
  long long frames = -1, near = -1, slack = 0;
  CLI::App app{"Checks a WAV file written by audio_pipeline"};
  app.add_option("file", path, "WAV file")->required();
  app.add_option("--rate", rate, "Expected sample rate");
  app.add_option("--channels", channels, "Expected channel count");
  app.add_option("--frequency", frequency, "Expected tone frequency in Hz");
  app.add_option("--frames", frames, "Expected exact frame count (the demo's 'frames written')");
  app.add_option("--near", near, "Expected frame count within --slack (seconds * rate)");
  app.add_option("--slack", slack, "Tolerance of --near in frames");
  CLI11_PARSE(app, argc, argv);

  SF_INFO info{};
  SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
  if (file == nullptr) {
    std::fprintf(stderr, "wav_check: cannot read %s: %s\n", path.c_str(), sf_strerror(nullptr));
    return 1;
  }
  std::vector<float> samples(static_cast<std::size_t>(info.frames) * static_cast<std::size_t>(info.channels));
  const sf_count_t got = sf_readf_float(file, samples.data(), info.frames);
  sf_close(file);

  bool ok = true;
  auto expect = [&ok](bool good, const char* what) {
    if (!good) {
      std::printf("FAIL: %s\n", what);
      ok = false;
    }
  };
  std::printf("%s: %lld frames, %d Hz, %d channels, format 0x%x\n", path.c_str(),
              static_cast<long long>(info.frames), info.samplerate, info.channels, info.format);
  expect(got == info.frames, "the file reads back completely");
  expect(info.format == (SF_FORMAT_WAV | SF_FORMAT_FLOAT), "the format is WAV, 32-bit float");
  expect(info.samplerate == rate, "the sample rate is --rate");
  expect(info.channels == channels, "the channel count is --channels");
  if (frames >= 0) expect(info.frames == frames, "the frame count is --frames");
  if (near >= 0) expect(std::llabs(info.frames - near) <= slack, "the frame count is within --slack of --near");
  if (!ok) return 1;

  const double max_slope = 2 * std::sin(std::numbers::pi * frequency / rate);  // per unit of peak
  for (int c = 0; c < channels; ++c) {
    const tone_report r = analyse(samples, static_cast<std::size_t>(channels), static_cast<std::size_t>(c), rate);
    std::printf("channel %d: %.3f Hz from %llu crossings, peak %.4f, largest step %.5f (limit %.5f)\n", c,
                r.frequency, static_cast<unsigned long long>(r.crossings), r.peak, r.max_step,
                r.peak * max_slope * 1.02 + 1e-6);
    expect(std::abs(r.frequency - frequency) <= 0.01 * frequency, "the tone is within 1% of --frequency");
    expect(r.peak >= 0.1 && r.peak <= 1.0, "the peak is between 0.1 and 1");
    expect(r.max_step <= r.peak * max_slope * 1.02 + 1e-6, "no step exceeds the sine's largest");
  }
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
