# `cmake --install` of a build with the Python module, into a scratch DESTDIR: the module must
# land in the system Python's platform site-packages and import from there.
#   cmake -DBUILD_DIR=<build> -DWORK_DIR=<scratch> -DSITEARCH=<Python3_SITEARCH> -DPYTHON=<python3>
#         -P check_install.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK_DIR})
set(ENV{DESTDIR} ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} failed (${rc})")
endif()
file(GLOB module ${WORK_DIR}${SITEARCH}/sluice*.so)
if(NOT module)
  message(FATAL_ERROR "the module was not installed in ${SITEARCH} (under DESTDIR ${WORK_DIR})")
endif()
set(ENV{PYTHONPATH} ${WORK_DIR}${SITEARCH})
execute_process(COMMAND ${PYTHON} -c "import sluice; assert sluice.__file__.startswith('${WORK_DIR}'), sluice.__file__; print('installed', sluice.__file__, sluice.__version__)"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed module does not import")
endif()
