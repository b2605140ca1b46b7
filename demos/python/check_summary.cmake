cmake_minimum_required(VERSION 3.25)
# Runs the Python level meter for two seconds against tone_source and checks its summary:
#   cmake -DPYTHON=<python3> -DSCRIPT=<level_meter.py> -DTONE_SOURCE=<tone_source>
#         -DMODULE_DIR=<build>/python [-DPRELOAD=<sanitizer runtimes>] -P check_summary.cmake
# (PRELOAD: the ASan tier's runtimes, preloaded into the uninstrumented python3.) Asserts
# correctness only, never timing: the machine may be slow and loaded.
set(ENV{PYTHONPATH} ${MODULE_DIR})
if(PRELOAD)
  set(ENV{LD_PRELOAD} "${PRELOAD}")
  set(ENV{ASAN_OPTIONS} detect_leaks=0:abort_on_error=1)
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} --tone-source ${TONE_SOURCE} --seconds 2 --frequency 440
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 50)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "level_meter.py exited with ${rc}: ${err}")
endif()
string(REGEX MATCH "level_meter: frames=([0-9]+) blocks=([0-9]+) committed=([0-9]+) dropped=([0-9]+) ring_committed=([0-9]+) ring_refused=([0-9]+) rms=([0-9.]+) peak=([0-9.]+) pitch_hz=([0-9.]+) source_exit=0 verdict=ok" _ "${out}")
if(NOT CMAKE_MATCH_COUNT EQUAL 9)
  message(FATAL_ERROR "output lacks a successful summary line")
endif()
set(frames ${CMAKE_MATCH_1})
set(committed ${CMAKE_MATCH_3})
set(dropped ${CMAKE_MATCH_4})
set(refused ${CMAKE_MATCH_6})
set(rms ${CMAKE_MATCH_7})
set(pitch ${CMAKE_MATCH_9})
# Every frame the producer committed arrived (the script checks it against the ring's counters
# too), and the producer's drops are the ring's refusals in frames (256 per refused period).
if(NOT frames EQUAL committed OR frames LESS 48000)
  message(FATAL_ERROR "frames ${frames}, committed ${committed}: expected equal, and at least one second's worth")
endif()
math(EXPR refused_frames "${refused} * 256")
if(NOT refused_frames EQUAL dropped)
  message(FATAL_ERROR "the producer dropped ${dropped} frames but the ring refused ${refused} periods")
endif()
# The tone it rendered: 440 Hz at amplitude 0.5 (RMS 0.3536), which the NumPy analysis found.
if(pitch LESS 435 OR pitch GREATER 445)
  message(FATAL_ERROR "pitch ${pitch} Hz, expected 440")
endif()
if(rms LESS 0.34 OR rms GREATER 0.37)
  message(FATAL_ERROR "RMS ${rms}, expected 0.354")
endif()
