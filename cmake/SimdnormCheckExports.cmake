# ctest step (cmake -P, from SimdnormConsumerTests.cmake): the shared library's dynamic symbol table defines exactly
# the functions that the installed public headers declare with SIMDNORM_API, and nothing of the C++ inside it; its
# SONAME carries the major version.
#   -DLIBRARY=<libsimdnorm.so> -DINCLUDE_DIR=<installed include dir> -DSONAME=<libsimdnorm.so.N> -DNM=<nm>
#   -DREADELF=<readelf>
file(GLOB headers ${INCLUDE_DIR}/simdnorm/*.h)
set(declared "")
foreach(header IN LISTS headers)
  file(STRINGS ${header} lines REGEX "^SIMDNORM_API ")
  foreach(line IN LISTS lines)
    if(line MATCHES "(simdnorm_[A-Za-z0-9_]+)\\(")
      list(APPEND declared "T ${CMAKE_MATCH_1}")
    endif()
  endforeach()
endforeach()
if(NOT declared)
  message(FATAL_ERROR "no SIMDNORM_API declaration found in ${INCLUDE_DIR}/simdnorm/*.h")
endif()

execute_process(COMMAND ${NM} -D --defined-only ${LIBRARY} OUTPUT_VARIABLE nm_out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${LIBRARY} failed (${rc})")
endif()
string(REGEX MATCHALL "[^\n]+" nm_lines "${nm_out}")
set(exported "")
foreach(line IN LISTS nm_lines)
  # "<address> <type> <name>"; the type says a function (T) from data or weak symbols.
  if(line MATCHES "^[0-9a-fA-F]+ (.+)$")
    list(APPEND exported "${CMAKE_MATCH_1}")
  else()
    list(APPEND exported "${line}")
  endif()
endforeach()

list(SORT declared)
list(SORT exported)
if(NOT declared STREQUAL exported)
  set(extra ${exported})
  list(REMOVE_ITEM extra ${declared})
  set(missing ${declared})
  list(REMOVE_ITEM missing ${exported})
  string(REPLACE ";" "\n  " extra "${extra}")
  string(REPLACE ";" "\n  " missing "${missing}")
  message(FATAL_ERROR "${LIBRARY} exports more or less than the C API.\nexported but not declared:\n  ${extra}\n"
                      "declared but not exported as functions:\n  ${missing}")
endif()
list(LENGTH exported count)
message("${LIBRARY}: exactly the ${count} functions of the C API are exported")

execute_process(COMMAND ${READELF} -d ${LIBRARY} OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT dynamic MATCHES "Library soname: \\[([^]]*)\\]" OR NOT CMAKE_MATCH_1 STREQUAL SONAME)
  message(FATAL_ERROR "${LIBRARY} should have SONAME ${SONAME}:\n${dynamic}")
endif()
message("${LIBRARY}: SONAME ${SONAME}")
