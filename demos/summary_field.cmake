# Shared by the demos' check_summary.cmake scripts (cmake -P), included after the demo ran and
# its standard output is in `out`.
#
#   field(<var> <regex>)   the regex, with one capture group, must match at the start of a line
#                          of `out`; <var> is set to what the group captured.
function(field var regex)
  string(REGEX MATCH "(^|\n)${regex}" _ "${out}")
  if(NOT CMAKE_MATCH_COUNT EQUAL 2)
    message(FATAL_ERROR "output lacks a number for '${regex}'")
  endif()
  set(${var} ${CMAKE_MATCH_2} PARENT_SCOPE)
endfunction()
