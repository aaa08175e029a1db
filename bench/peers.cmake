# Optional benchmark peers (oneDNN now, PyTorch later): each is used only when its package is installed *and*
# works. A package's own config file may fail hard (Debian's dnnl-config.cmake calls find_package(OpenCL REQUIRED)
# when libdnnl-dev is installed without its recommended ocl-icd-opencl-dev), which no QUIET can catch in-process.
# So each peer is first found and linked in a scratch project of its own, and only then found here.

# simdnorm_probe_peer(<var> PACKAGE <pkg> TARGETS <target>... SOURCE <file> LABEL <text>)
# Sets <var> to TRUE when <pkg> is found and a program using it builds; otherwise FALSE, with one status line that
# says why the peer is skipped, and <var>_WHY to that reason.
function(simdnorm_probe_peer var)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "PACKAGE;SOURCE;LABEL" "TARGETS")
  set(${var} FALSE PARENT_SCOPE)
  if(CMAKE_DISABLE_FIND_PACKAGE_${arg_PACKAGE})
    set(${var}_WHY "disabled (CMAKE_DISABLE_FIND_PACKAGE_${arg_PACKAGE})" PARENT_SCOPE)
    message(STATUS "simdnorm_bench: ${arg_LABEL} skipped, disabled (CMAKE_DISABLE_FIND_PACKAGE_${arg_PACKAGE})")
    return()
  endif()
  set(probe_dir ${CMAKE_CURRENT_BINARY_DIR}/peer-probe-${arg_PACKAGE})
  file(REMOVE_RECURSE ${probe_dir})
  set(forward -G "${CMAKE_GENERATOR}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
      "-DPROBE_PACKAGE=${arg_PACKAGE}" "-DPROBE_TARGETS=${arg_TARGETS}" "-DPROBE_SOURCE=${arg_SOURCE}")
  # The search settings travel in an initial cache file, where a list stays a list.
  set(search "")
  foreach(name CMAKE_PREFIX_PATH CMAKE_IGNORE_PATH CMAKE_FIND_ROOT_PATH ${arg_PACKAGE}_DIR)
    if(DEFINED ${name})
      string(APPEND search "set(${name} \"${${name}}\" CACHE STRING \"\")\n")
    endif()
  endforeach()
  file(WRITE ${probe_dir}-search.cmake "${search}")
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/probe -B ${probe_dir} ${forward}
                          -C ${probe_dir}-search.cmake
                  RESULT_VARIABLE failed OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT failed)
    execute_process(COMMAND ${CMAKE_COMMAND} --build ${probe_dir}
                    RESULT_VARIABLE failed OUTPUT_VARIABLE out ERROR_VARIABLE out)
    set(stage "a program using it does not build")
  else()
    set(stage "its CMake package fails")
  endif()
  if(NOT failed)
    set(${var} TRUE PARENT_SCOPE)
    set(${var}_WHY "" PARENT_SCOPE)
    return()
  endif()
  if(out MATCHES "Could not find a package configuration file provided by \"${arg_PACKAGE}\"")
    set(why "not found")
  else()
    # The first line that names a cause, e.g. "Could NOT find OpenCL (missing: OpenCL_LIBRARY ...)".
    string(REGEX MATCH "Could NOT find[^\n]*" cause "${out}")
    if(NOT cause)
      string(REGEX MATCH "[Ee]rror[^\n]*" cause "${out}")
    endif()
    string(STRIP "${cause}" cause)
    string(REPLACE ";" "," cause "${cause}")
    set(why "installed, but ${stage}: ${cause}")
  endif()
  file(WRITE ${probe_dir}/probe.log "${out}")
  message(STATUS "simdnorm_bench: ${arg_LABEL} skipped, ${why} (log: ${probe_dir}/probe.log)")
  set(${var}_WHY "${why}" PARENT_SCOPE)
endfunction()
