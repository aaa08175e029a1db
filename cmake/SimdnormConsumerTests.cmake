# ctest cases that build and run tests/consumer against this source tree: once through an installed package
# (cmake --install into a scratch prefix, then find_package(simdnorm CONFIG REQUIRED)), once through
# add_subdirectory. Each uses a fresh build directory under the current binary dir.
set(_consumer_src ${PROJECT_SOURCE_DIR}/tests/consumer)
set(_consumer_dir ${CMAKE_CURRENT_BINARY_DIR}/consumer)
set(_generator_args -G "${CMAKE_GENERATOR}" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
if(SIMDNORM_SANITIZE)
  # A sanitized static library needs its runtime in the program that links it.
  list(APPEND _generator_args -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined)
endif()

add_test(NAME consumer_install
  COMMAND ${CMAKE_COMMAND} --install ${PROJECT_BINARY_DIR} --prefix ${_consumer_dir}/prefix)
add_test(NAME consumer_find_package_configure
  COMMAND ${CMAKE_COMMAND} -S ${_consumer_src} -B ${_consumer_dir}/package ${_generator_args}
          -DSIMDNORM_CONSUME=package -DCMAKE_PREFIX_PATH=${_consumer_dir}/prefix)
add_test(NAME consumer_find_package_build COMMAND ${CMAKE_COMMAND} --build ${_consumer_dir}/package)
add_test(NAME consumer_find_package_run_c COMMAND ${_consumer_dir}/package/consumer_c)
add_test(NAME consumer_find_package_run_cpp COMMAND ${_consumer_dir}/package/consumer_cpp)

add_test(NAME consumer_add_subdirectory_configure
  COMMAND ${CMAKE_COMMAND} -S ${_consumer_src} -B ${_consumer_dir}/subdirectory ${_generator_args}
          -DSIMDNORM_CONSUME=subdirectory -DSIMDNORM_SOURCE_DIR=${PROJECT_SOURCE_DIR})
add_test(NAME consumer_add_subdirectory_build COMMAND ${CMAKE_COMMAND} --build ${_consumer_dir}/subdirectory -j 2)
add_test(NAME consumer_add_subdirectory_run_c COMMAND ${_consumer_dir}/subdirectory/consumer_c)
add_test(NAME consumer_add_subdirectory_run_cpp COMMAND ${_consumer_dir}/subdirectory/consumer_cpp)

set_tests_properties(consumer_find_package_configure PROPERTIES DEPENDS consumer_install FIXTURES_SETUP consumer_pkg_cfg
                     FIXTURES_REQUIRED consumer_pkg_prefix)
set_tests_properties(consumer_install PROPERTIES FIXTURES_SETUP consumer_pkg_prefix)
set_tests_properties(consumer_find_package_build PROPERTIES FIXTURES_REQUIRED consumer_pkg_cfg FIXTURES_SETUP consumer_pkg_bin)
set_tests_properties(consumer_find_package_run_c consumer_find_package_run_cpp PROPERTIES FIXTURES_REQUIRED consumer_pkg_bin)
set_tests_properties(consumer_add_subdirectory_configure PROPERTIES FIXTURES_SETUP consumer_sub_cfg)
set_tests_properties(consumer_add_subdirectory_build PROPERTIES FIXTURES_REQUIRED consumer_sub_cfg FIXTURES_SETUP consumer_sub_bin)
set_tests_properties(consumer_add_subdirectory_run_c consumer_add_subdirectory_run_cpp PROPERTIES FIXTURES_REQUIRED consumer_sub_bin)
set_tests_properties(
  consumer_install consumer_find_package_configure consumer_find_package_build consumer_find_package_run_c
  consumer_find_package_run_cpp consumer_add_subdirectory_configure consumer_add_subdirectory_build
  consumer_add_subdirectory_run_c consumer_add_subdirectory_run_cpp
  PROPERTIES LABELS consumer)
