# ctest cases, labelled "consumer", that build tests/consumer the ways a user would and run it:
#   consumer_find_package_{static,shared}_*  CMake's find_package(simdnorm CONFIG) on an installed library;
#   consumer_pkg_config_{static,shared}_*    the bare compiler and `pkg-config --cflags --libs [--static] simdnorm`;
#   consumer_add_subdirectory_*              this source tree added to the consumer's own build;
#   consumer_shared_exports                  libsimdnorm.so exports exactly the C API, under a versioned SONAME;
#   consumer_shared_python_ctypes            Python loads libsimdnorm.so with ctypes and calls it.
# This build's library is installed into a scratch prefix as it is; the other kind (shared for the default static
# build, static for a shared one) is configured, built and installed there from the same sources, with the same
# compiler, build type and options. Each step is a fixture of the next, so `ctest -R` on one test brings its steps.
find_package(PkgConfig QUIET)
find_package(Python3 COMPONENTS Interpreter)

set(_consumer_src ${PROJECT_SOURCE_DIR}/tests/consumer)
set(_consumer_dir ${CMAKE_CURRENT_BINARY_DIR}/consumer)
set(_consumer_soname libsimdnorm.so.${PROJECT_VERSION_MAJOR})
set(_consumer_cmake_args -G "${CMAKE_GENERATOR}" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
set(_consumer_flags "")
if(SIMDNORM_SANITIZE)
  # A sanitized library, static or shared, needs the sanitizer runtime in the program that links it.
  set(_consumer_flags "-fsanitize=address,undefined")
  list(APPEND _consumer_cmake_args -DCMAKE_EXE_LINKER_FLAGS=${_consumer_flags})
endif()

get_target_property(_consumer_type simdnorm TYPE)
if(_consumer_type STREQUAL "SHARED_LIBRARY")
  set(_consumer_this_kind shared)
  set(_consumer_other_kind static)
  set(_consumer_other_shared OFF)
else()
  set(_consumer_this_kind static)
  set(_consumer_other_kind shared)
  set(_consumer_other_shared ON)
endif()

# _simdnorm_consumer_test(<name> [SETUP <fixture>] [REQUIRES <fixture>...] COMMAND <command>...)
function(_simdnorm_consumer_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SETUP" "REQUIRES;COMMAND")
  add_test(NAME ${name} COMMAND ${arg_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS consumer TIMEOUT 600)
  if(arg_SETUP)
    set_tests_properties(${name} PROPERTIES FIXTURES_SETUP ${arg_SETUP})
  endif()
  if(arg_REQUIRES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${arg_REQUIRES}")
  endif()
endfunction()

# consumer_<variant>_run_{c,cpp}: checks that <dir>/consumer_{c,cpp} does (shared) or does not (static) need the
# shared library, then runs it, with LD_LIBRARY_PATH=<library_path> when one is given.
function(_simdnorm_consumer_runs variant kind dir fixture library_path)
  foreach(lang c cpp)
    _simdnorm_consumer_test(consumer_${variant}_run_${lang} REQUIRES ${fixture}
      COMMAND ${CMAKE_COMMAND} -DEXE=${dir}/consumer_${lang} -DKIND=${kind} -DSONAME=${_consumer_soname}
              -DREADELF=${CMAKE_READELF} -DLIBRARY_PATH=${library_path}
              -P ${PROJECT_SOURCE_DIR}/cmake/SimdnormConsumerRun.cmake)
  endforeach()
endfunction()

# consumer_<variant>_{configure,build,run_c,run_cpp}: tests/consumer as a CMake project, configured with <args>.
function(_simdnorm_cmake_consumer variant kind)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "REQUIRES;ARGS")
  set(dir ${_consumer_dir}/${variant})
  _simdnorm_consumer_test(consumer_${variant}_configure REQUIRES ${arg_REQUIRES} SETUP consumer_${variant}_cfg
    COMMAND ${CMAKE_COMMAND} -S ${_consumer_src} -B ${dir} ${_consumer_cmake_args} ${arg_ARGS})
  _simdnorm_consumer_test(consumer_${variant}_build REQUIRES consumer_${variant}_cfg SETUP consumer_${variant}_bin
    COMMAND ${CMAKE_COMMAND} --build ${dir} -j 2)
  _simdnorm_consumer_runs(${variant} ${kind} ${dir} consumer_${variant}_bin "")
endfunction()

# consumer_pkg_config_<kind>_{build,run_c,run_cpp}: tests/consumer compiled by hand with pkg-config's flags.
function(_simdnorm_pkg_config_consumer kind)
  set(variant pkg_config_${kind})
  set(dir ${_consumer_dir}/${variant})
  set(libdir ${_consumer_dir}/${kind}/prefix/${CMAKE_INSTALL_LIBDIR})
  _simdnorm_consumer_test(consumer_${variant}_build REQUIRES consumer_${kind}_prefix SETUP consumer_${variant}_bin
    COMMAND ${CMAKE_COMMAND} -DPKG_CONFIG=${PKG_CONFIG_EXECUTABLE} -DPKG_CONFIG_PATH=${libdir}/pkgconfig
            -DKIND=${kind} -DCC=${CMAKE_C_COMPILER} -DCXX=${CMAKE_CXX_COMPILER} "-DEXTRA_FLAGS=${_consumer_flags}"
            -DSOURCE_DIR=${_consumer_src} -DBINARY_DIR=${dir}
            -P ${PROJECT_SOURCE_DIR}/cmake/SimdnormPkgConfigBuild.cmake)
  _simdnorm_consumer_runs(${variant} ${kind} ${dir} consumer_${variant}_bin ${libdir})
endfunction()

# The scratch prefixes: fixture consumer_<kind>_prefix installs the library of that kind in
# ${_consumer_dir}/<kind>/prefix.
_simdnorm_consumer_test(consumer_${_consumer_this_kind}_install SETUP consumer_${_consumer_this_kind}_prefix
  COMMAND ${CMAKE_COMMAND} --install ${PROJECT_BINARY_DIR} --prefix ${_consumer_dir}/${_consumer_this_kind}/prefix)

set(_consumer_other ${_consumer_dir}/${_consumer_other_kind})
_simdnorm_consumer_test(consumer_${_consumer_other_kind}_configure SETUP consumer_${_consumer_other_kind}_cfg
  COMMAND ${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR} -B ${_consumer_other}/build -G "${CMAKE_GENERATOR}"
          -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE} -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
          -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_INSTALL_LIBDIR=${CMAKE_INSTALL_LIBDIR}
          -Dxsimd_DIR=${xsimd_DIR} -DBUILD_SHARED_LIBS=${_consumer_other_shared}
          -DSIMDNORM_OPENMP=${SIMDNORM_OPENMP} -DSIMDNORM_SANITIZE=${SIMDNORM_SANITIZE}
          -DSIMDNORM_BUILD_TESTS=OFF -DSIMDNORM_BUILD_BENCHMARKS=OFF -DSIMDNORM_INSTALL=ON)
_simdnorm_consumer_test(consumer_${_consumer_other_kind}_build
  REQUIRES consumer_${_consumer_other_kind}_cfg SETUP consumer_${_consumer_other_kind}_lib
  COMMAND ${CMAKE_COMMAND} --build ${_consumer_other}/build -j 2)
_simdnorm_consumer_test(consumer_${_consumer_other_kind}_install
  REQUIRES consumer_${_consumer_other_kind}_lib SETUP consumer_${_consumer_other_kind}_prefix
  COMMAND ${CMAKE_COMMAND} --install ${_consumer_other}/build --prefix ${_consumer_other}/prefix)

foreach(_kind static shared)
  _simdnorm_cmake_consumer(find_package_${_kind} ${_kind} REQUIRES consumer_${_kind}_prefix
    ARGS -DSIMDNORM_CONSUME=package -DCMAKE_PREFIX_PATH=${_consumer_dir}/${_kind}/prefix)
  if(PKG_CONFIG_EXECUTABLE)
    _simdnorm_pkg_config_consumer(${_kind})
  endif()
endforeach()
if(NOT PKG_CONFIG_EXECUTABLE)
  message(STATUS "simdnorm: pkg-config not found; the pkg-config consumer tests are skipped")
endif()

# Added to the consumer's build, simdnorm is static unless that build asks otherwise.
_simdnorm_cmake_consumer(add_subdirectory static
  ARGS -DSIMDNORM_CONSUME=subdirectory -DSIMDNORM_SOURCE_DIR=${PROJECT_SOURCE_DIR})

set(_consumer_shared_prefix ${_consumer_dir}/shared/prefix)
_simdnorm_consumer_test(consumer_shared_exports REQUIRES consumer_shared_prefix
  COMMAND ${CMAKE_COMMAND} -DLIBRARY=${_consumer_shared_prefix}/${CMAKE_INSTALL_LIBDIR}/libsimdnorm.so
          -DINCLUDE_DIR=${_consumer_shared_prefix}/${CMAKE_INSTALL_INCLUDEDIR} -DSONAME=${_consumer_soname}
          -DNM=${CMAKE_NM} -DREADELF=${CMAKE_READELF} -P ${PROJECT_SOURCE_DIR}/cmake/SimdnormCheckExports.cmake)

# The interpreter is not built with ASan, whose runtime must come first in the process: under SIMDNORM_SANITIZE it is
# preloaded, and LeakSanitizer is told to ignore what the interpreter itself leaves allocated at exit.
set(_consumer_python_env "")
if(SIMDNORM_SANITIZE)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE _consumer_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(IS_ABSOLUTE "${_consumer_asan}" AND EXISTS "${_consumer_asan}")
    set(_consumer_python_env "LD_PRELOAD=${_consumer_asan}" "LSAN_OPTIONS=detect_leaks=0")
  endif()
endif()
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "simdnorm: Python 3 not found; the ctypes consumer test is skipped")
elseif(SIMDNORM_SANITIZE AND NOT _consumer_python_env)
  message(STATUS "simdnorm: ${CMAKE_CXX_COMPILER} has no libasan.so to preload into Python; "
                 "the ctypes consumer test is skipped under SIMDNORM_SANITIZE")
else()
  _simdnorm_consumer_test(consumer_shared_python_ctypes REQUIRES consumer_shared_prefix
    COMMAND ${Python3_EXECUTABLE} ${_consumer_src}/ctypes_consumer.py
            ${_consumer_shared_prefix}/${CMAKE_INSTALL_LIBDIR}/${_consumer_soname} ${PROJECT_VERSION})
  if(_consumer_python_env)
    set_tests_properties(consumer_shared_python_ctypes PROPERTIES ENVIRONMENT "${_consumer_python_env}")
  endif()
endif()
