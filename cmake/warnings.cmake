# Compiler flags shared by every target of the project.
add_library(msgtrans_build_flags INTERFACE)
target_compile_options(msgtrans_build_flags INTERFACE -Wall -Wextra -Wpedantic)
if(MSGTRANS_WERROR)
  target_compile_options(msgtrans_build_flags INTERFACE -Werror)
endif()
# Asio: no deprecated names, and std::coroutine support.
target_compile_definitions(msgtrans_build_flags INTERFACE BOOST_ASIO_NO_DEPRECATED)

if(MSGTRANS_SANITIZE)
  add_compile_options(-fsanitize=${MSGTRANS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${MSGTRANS_SANITIZE})
  # clang 14: UBSan's `function` check cannot compile C++20 coroutines ("Cannot represent
  # a difference across sections"); every other UBSan check stays on.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND MSGTRANS_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize=function)
  endif()
endif()
