# Every dependency is a Debian package (scripts/setup.sh installs them). Nothing is
# downloaded at build time.
find_package(Threads REQUIRED)
find_package(Boost 1.81...<1.82 REQUIRED CONFIG)   # header-only: Asio and Beast
find_package(PkgConfig REQUIRED)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_package(ZLIB REQUIRED)
pkg_check_modules(NATS REQUIRED libnats)   # the NATS cluster bus (linked by name: nats)
pkg_check_modules(JWT REQUIRED libjwt-gnutls)   # jwt_authenticator (linked by name: jwt-gnutls)
# Header-only: jwt_authenticator reads the claims with it; the conformance test reads the
# JSON fixtures.
find_package(nlohmann_json 3.11 REQUIRED)
if(MSGTRANS_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(MSGTRANS_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
