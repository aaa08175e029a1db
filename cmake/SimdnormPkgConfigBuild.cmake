# ctest step (cmake -P, from SimdnormConsumerTests.cmake): builds tests/consumer's C and C++ programs with nothing but
# the compiler and `pkg-config --cflags --libs simdnorm` (--static for a static library), as a Makefile would. The C
# program is plain C99 compiled and linked by the C compiler, which is what Libs.private must make work.
#   -DPKG_CONFIG=<pkg-config> -DPKG_CONFIG_PATH=<dir of simdnorm.pc> -DKIND=static|shared -DCC=<cc> -DCXX=<c++>
#   -DSOURCE_DIR=<tests/consumer> -DBINARY_DIR=<output dir> [-DEXTRA_FLAGS="<flags for every compile and link>"]
set(ENV{PKG_CONFIG_PATH} "${PKG_CONFIG_PATH}")
set(query --cflags --libs)
if(KIND STREQUAL "static")
  list(PREPEND query --static)
endif()
execute_process(COMMAND ${PKG_CONFIG} ${query} simdnorm
  OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "PKG_CONFIG_PATH=${PKG_CONFIG_PATH} ${PKG_CONFIG} ${query} simdnorm failed (${rc})")
endif()
string(JOIN " " query_line ${query})
message("pkg-config ${query_line} simdnorm: ${flags}")
separate_arguments(flags UNIX_COMMAND "${flags}")
separate_arguments(extra UNIX_COMMAND "${EXTRA_FLAGS}")

file(MAKE_DIRECTORY ${BINARY_DIR})
function(compile)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compile failed (${rc})")
  endif()
endfunction()
compile(${CC} -std=c99 -pedantic-errors -Wall -Wextra -Werror ${extra} ${SOURCE_DIR}/main.c ${flags}
        -o ${BINARY_DIR}/consumer_c)
compile(${CXX} -std=c++17 -Wall -Wextra -Werror ${extra} ${SOURCE_DIR}/main.cpp ${flags} -o ${BINARY_DIR}/consumer_cpp)
