# One way of consuming sluice, run for real: `cmake -P check_package.cmake` with
#   -DMODE=install|find_package|add_subdirectory|fetchcontent|pkg_config
#   -DSOURCE_DIR=<sluice source> -DWORK_DIR=<scratch> -DVERSION=<expected version>
#   -DGENERATOR=<generator> -DCXX=<compiler> [-DBUILD_TYPE=<type>]
# `install` configures, builds and installs sluice alone (no tests, benchmarks or demos) into
# WORK_DIR/prefix and checks the installed files; the others build the consumer project
# (tests/package/consumer) against it or against the source tree, and run it.
cmake_minimum_required(VERSION 3.25)
foreach(var MODE SOURCE_DIR WORK_DIR VERSION GENERATOR CXX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_package: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED BUILD_TYPE OR BUILD_TYPE STREQUAL "")
  set(BUILD_TYPE Debug)
endif()
set(prefix ${WORK_DIR}/prefix)
set(consumer_source ${SOURCE_DIR}/tests/package/consumer)
set(consumer_build ${WORK_DIR}/consumer-${MODE})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "check_package (${MODE}): failed (${rc}): ${command}")
  endif()
endfunction()

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${WORK_DIR}/sluice-build ${prefix})
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/sluice-build -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_INSTALL_PREFIX=${prefix}
      -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF -DSLUICE_BUILD_DEMOS=OFF)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/sluice-build)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/sluice-build)
  foreach(file include/sluice/sluice.hpp include/sluice/spsc_ring.hpp include/sluice/record_ring.hpp
               include/sluice/detail/wait.hpp include/sluice/asio.hpp include/sluice/posix_io.hpp
               lib/libsluice.a lib/cmake/sluice/sluiceConfig.cmake
               lib/cmake/sluice/sluiceConfigVersion.cmake lib/cmake/sluice/sluiceTargets.cmake
               lib/pkgconfig/sluice.pc)
    if(NOT EXISTS ${prefix}/${file})
      message(FATAL_ERROR "check_package (install): ${prefix}/${file} was not installed")
    endif()
  endforeach()
  message(STATUS "check_package (install): sluice ${VERSION} installed in ${prefix}")
elseif(MODE STREQUAL "pkg_config")
  # A plain compiler command with what pkg-config says, against the installed copy only.
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs sluice
                  OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_package (pkg_config): pkg-config --cflags --libs sluice failed")
  endif()
  execute_process(COMMAND ${PKG_CONFIG} --modversion sluice
                  OUTPUT_VARIABLE modversion OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT modversion STREQUAL VERSION)
    message(FATAL_ERROR "check_package (pkg_config): version '${modversion}', expected '${VERSION}'")
  endif()
  message(STATUS "check_package (pkg_config): ${CXX} -std=c++20 main.cpp ${flags} -pthread")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  file(MAKE_DIRECTORY ${consumer_build})
  run(${CXX} -std=c++20 -DSLUICE_EXPECTED_VERSION="${VERSION}" ${consumer_source}/main.cpp ${flags}
      -pthread -o ${consumer_build}/consumer)
  run(${consumer_build}/consumer)
else()
  file(REMOVE_RECURSE ${consumer_build})
  run(${CMAKE_COMMAND} -S ${consumer_source} -B ${consumer_build} -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DSLUICE_CONSUME=${MODE}
      -DSLUICE_SOURCE_DIR=${SOURCE_DIR} -DSLUICE_EXPECTED_VERSION=${VERSION}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  run(${CMAKE_COMMAND} --build ${consumer_build})
  run(${consumer_build}/consumer)
endif()
