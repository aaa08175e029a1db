# Install rules: the library (static, or shared with BUILD_SHARED_LIBS), the public headers, a CMake package
# (simdnormConfig.cmake with targets in the simdnorm:: namespace and a version file) for find_package(simdnorm CONFIG),
# and simdnorm.pc for pkg-config.
include(CMakePackageConfigHelpers)

set(SIMDNORM_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/simdnorm" CACHE STRING
    "Where simdnormConfig.cmake is installed, relative to the prefix")
set(SIMDNORM_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where simdnorm.pc is installed, relative to the prefix")

get_target_property(_simdnorm_type simdnorm TYPE)
if(_simdnorm_type STREQUAL "STATIC_LIBRARY")
  set(SIMDNORM_STATIC ON)
else()
  set(SIMDNORM_STATIC OFF)
endif()

install(TARGETS simdnorm EXPORT simdnormTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# simdnorm_mpi.h goes with its library: a build without MPI installs neither.
if(TARGET simdnorm_mpi)
  set(_simdnorm_header_filter "")
else()
  set(_simdnorm_header_filter PATTERN simdnorm_mpi.h EXCLUDE)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/simdnorm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  ${_simdnorm_header_filter})
install(EXPORT simdnormTargets NAMESPACE simdnorm:: DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})

# The component mpi (simdnorm::mpi, static whatever BUILD_SHARED_LIBS says) has an export set of its own, which
# simdnormConfig.cmake loads, with MPI, only when find_package(simdnorm COMPONENTS mpi) asks for it.
if(TARGET simdnorm_mpi)
  install(TARGETS simdnorm_mpi EXPORT simdnormMpiTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT simdnormMpiTargets NAMESPACE simdnorm:: DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})
endif()

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/simdnormConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfig.cmake
  INSTALL_DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/simdnormConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfigVersion.cmake
  DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})

# simdnorm.pc. Its prefix is found from the file's own location (${pcfiledir}), as simdnormConfig.cmake finds its
# own, so that an installed tree can be moved and `cmake --install --prefix` needs no reconfigure; a directory given
# as an absolute path stays absolute.
function(_simdnorm_pc_path out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

if(IS_ABSOLUTE "${SIMDNORM_INSTALL_PKGCONFIGDIR}")
  set(SIMDNORM_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _simdnorm_pc_up "/prefix/${SIMDNORM_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" SIMDNORM_PC_PREFIX "\${pcfiledir}/${_simdnorm_pc_up}")
endif()
_simdnorm_pc_path(SIMDNORM_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
_simdnorm_pc_path(SIMDNORM_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")

# What a static link adds (pkg-config --static): the OpenMP runtime FindOpenMP found, with its directory when the
# compiler does not search it anyway, and the C++ runtime, which a C program's link does not bring (the libraries the
# C++ compiler links implicitly and the C compiler does not: -lstdc++ -lm with GCC). Only a static link reads
# Libs.private, so a shared build writes it too: both kinds may be installed into one prefix.
set(_simdnorm_pc_private "")
if(SIMDNORM_OPENMP)
  foreach(_lib IN LISTS OpenMP_CXX_LIB_NAMES)
    get_filename_component(_dir "${OpenMP_${_lib}_LIBRARY}" DIRECTORY)
    if(_dir AND NOT _dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
      list(APPEND _simdnorm_pc_private "-L${_dir}")
    endif()
    list(APPEND _simdnorm_pc_private "-l${_lib}")
  endforeach()
endif()
set(_simdnorm_cxx_runtime ${CMAKE_CXX_IMPLICIT_LINK_LIBRARIES})
if(CMAKE_C_IMPLICIT_LINK_LIBRARIES)
  list(REMOVE_ITEM _simdnorm_cxx_runtime ${CMAKE_C_IMPLICIT_LINK_LIBRARIES})
endif()
foreach(_lib IN LISTS _simdnorm_cxx_runtime)
  list(APPEND _simdnorm_pc_private "-l${_lib}")
endforeach()
list(REMOVE_DUPLICATES _simdnorm_pc_private)
string(JOIN " " SIMDNORM_PC_LIBS_PRIVATE ${_simdnorm_pc_private})

configure_file(${CMAKE_CURRENT_LIST_DIR}/simdnorm.pc.in ${CMAKE_CURRENT_BINARY_DIR}/simdnorm.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/simdnorm.pc DESTINATION ${SIMDNORM_INSTALL_PKGCONFIGDIR})
