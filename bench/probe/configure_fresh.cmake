# cmake -DBINARY_DIR=<dir> -DARGS=<configure arguments, separated by |> -P configure_fresh.cmake
# Configures simdnorm in an empty BINARY_DIR, so that nothing cached by an earlier run hides what the arguments do.
file(REMOVE_RECURSE ${BINARY_DIR})
string(REPLACE "|" ";" ARGS "${ARGS}")
execute_process(COMMAND ${CMAKE_COMMAND} -B ${BINARY_DIR} ${ARGS} RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "the configure failed")
endif()
