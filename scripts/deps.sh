# Sourced by the scripts: installs the Debian packages the project needs that are missing.
# Runs apt-get only as root and only when something is missing; `apt-get update` runs once.

sluice_install_missing() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "sluice: missing Debian packages: ${missing[*]}" >&2
    echo "sluice: run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "sluice: installing ${missing[*]}" >&2
  if [ -z "${SLUICE_APT_UPDATED:-}" ]; then
    apt-get update -qq || return 1
    export SLUICE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
}

# Build tools and libraries every build needs (a top-level build configures the tests too: the
# Asio adapter tests need standalone Asio).
SLUICE_BUILD_PACKAGES=(g++ cmake ninja-build libboost-dev libgtest-dev libbenchmark-dev libasio-dev)
# The tsan preset uses clang++ and its sanitizer runtimes.
SLUICE_TEST_PACKAGES=(clang libclang-rt-14-dev)
# The package and reference tests: pkg-config, Doxygen; the coverage tier's report: gcovr.
SLUICE_TEST_PACKAGES+=(pkg-config doxygen gcovr)
# The model-checked suites (tests/model) and the mutation check.
SLUICE_TEST_PACKAGES+=(relacy-dev)
# The demos: CLI11 for their options, libsndfile and JACK (with its server, which runs on the
# dummy backend without a sound card) for the audio pipeline.
SLUICE_DEMO_PACKAGES=(libcli11-dev libsndfile1-dev libjack-jackd2-dev jackd2)
# The Python module (SLUICE_BUILD_PYTHON, on in the dev tier): the system python3 with its
# headers, pybind11, NumPy, and pytest for its tests.
SLUICE_PYTHON_PACKAGES=(python3-dev python3-pybind11 python3-numpy python3-pytest)
