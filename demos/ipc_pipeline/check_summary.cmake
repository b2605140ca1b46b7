cmake_minimum_required(VERSION 3.25)
# Runs the ipc_pipeline demo for about two seconds and checks its story and summary:
#   cmake -DDEMO=<ipc_pipeline> -P check_summary.cmake
# Asserts correctness only, never timing: the machine may be slow and loaded.
string(RANDOM LENGTH 8 tag)
set(name /sluice-ipc-test-${tag})
execute_process(COMMAND ${DEMO} demo --name ${name} --seconds 2 --ring-bytes 16384 --record-size 48
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 50)
message("${out}")
if(EXISTS /dev/shm${name})
  file(REMOVE /dev/shm${name})
  message(FATAL_ERROR "the demo left its segment ${name} behind")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ipc_pipeline exited with ${rc}: ${err}")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/../summary_field.cmake)
field(produced "produced: ([0-9]+) records")
field(consumed "consumed: ([0-9]+) records")
field(again "delivered again after the consumer restart: ([0-9]+) records")
field(lost "lost reservations after the producer kill: ([0-9]+)")
field(held "[[] *[0-9.]+ s[]] consumer #1 killed [(]SIGKILL[)] holding a batch it had read and checked but not released: ([0-9]+) records")

# Both restarts happened, each attaching by name.
foreach(line "consumer #1 .pid [0-9]+. attached to ${name} by name"
             "producer #1 .pid [0-9]+. attached to ${name} by name"
             "consumer #2 .pid [0-9]+. attached to ${name} by name"
             "producer #2 .pid [0-9]+. attached to ${name} by name"
             "producer #1 killed .SIGKILL. holding a reservation"
             "recover.. reclaimed the dead producer's reservation"
             "\nthroughput: [0-9]+\\.[0-9]+ M records/s")
  if(NOT out MATCHES "${line}")
    message(FATAL_ERROR "output lacks '${line}'")
  endif()
endforeach()
if(NOT out MATCHES "\nverified: every committed record arrived, in order; ${again} delivered again after the consumer restart")
  message(FATAL_ERROR "output lacks a successful 'verified:' line")
endif()

if(produced EQUAL 0 OR NOT consumed EQUAL produced)
  message(FATAL_ERROR "consumed ${consumed} of ${produced} produced records")
endif()
if(again EQUAL 0 OR NOT again EQUAL held)
  message(FATAL_ERROR "delivered again: ${again}, but consumer #1 held ${held} unreleased records")
endif()
# recover() reclaims only dead producers' reservations: exactly the one producer #1 died holding.
if(NOT lost EQUAL 1)
  message(FATAL_ERROR "expected recover() to reclaim the one reservation the killed producer held, got ${lost}")
endif()
