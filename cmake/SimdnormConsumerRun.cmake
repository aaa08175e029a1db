# ctest step (cmake -P, from SimdnormConsumerTests.cmake): checks how a consumer program links simdnorm -- a NEEDED
# entry for the shared library's SONAME when KIND is shared, none when static, so that a test meant for one kind
# cannot pass on the other -- then runs it.
#   -DEXE=<program> -DKIND=static|shared -DSONAME=<libsimdnorm.so.N> -DREADELF=<readelf> [-DLIBRARY_PATH=<dir>]
execute_process(COMMAND ${READELF} -d ${EXE} OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${EXE} failed (${rc})")
endif()
string(REGEX MATCHALL "Shared library: \\[libsimdnorm[^]]*\\]" needed "${dynamic}")
if(KIND STREQUAL "shared" AND NOT needed STREQUAL "Shared library: [${SONAME}]")
  message(FATAL_ERROR "${EXE} should need ${SONAME} (and no other libsimdnorm) but needs: ${needed}\n${dynamic}")
elseif(KIND STREQUAL "static" AND needed)
  message(FATAL_ERROR "${EXE} should link simdnorm statically but needs: ${needed}")
endif()

if(LIBRARY_PATH)
  set(ENV{LD_LIBRARY_PATH} "${LIBRARY_PATH}:$ENV{LD_LIBRARY_PATH}")
endif()
execute_process(COMMAND ${EXE} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} failed (${rc})")
endif()
