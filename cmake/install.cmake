# cmake --install: headers, the library, a CMake package (find_package(msgtrans CONFIG))
# and a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/msgtrans DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS msgtrans EXPORT msgtrans-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT msgtrans-targets NAMESPACE msgtrans::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgtrans)
configure_package_config_file(cmake/msgtrans-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/msgtrans-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgtrans)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/msgtrans-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/msgtrans-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/msgtrans-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgtrans)

get_target_property(_msgtrans_private_libs msgtrans MSGTRANS_PKGCONFIG_LIBS)
if(NOT _msgtrans_private_libs)
  set(_msgtrans_private_libs "")
endif()
list(JOIN _msgtrans_private_libs " " MSGTRANS_PKGCONFIG_LIBS)
# The .pc file locates the prefix from its own folder, so `cmake --install --prefix X`
# (a prefix chosen after configuring) still yields a working file.
file(RELATIVE_PATH MSGTRANS_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" MSGTRANS_PC_TO_PREFIX "${MSGTRANS_PC_TO_PREFIX}")
configure_file(cmake/msgtrans.pc.in ${CMAKE_CURRENT_BINARY_DIR}/msgtrans.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/msgtrans.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
