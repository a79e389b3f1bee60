// Force-included (-include) into the sources of fuzz_serve_config, before toml++:
// toml++ header-only (so its parser is instrumented), and its internal assertions kept on
// and fatal, except two known precondition checks that the parser's callers break.
//
// toml++ 3.3.0 calls parse_key() on a character that cannot start a key (table headers
// such as "[=" or "[[[1]]]"; fixed upstream by marzer/tomlplusplus PR #301) and
// parse_value() on a value terminator (a trailing comma in an inline table, "{ a = 1,}").
// Both functions assert their precondition, then find the character wrong themselves and
// report the proper parse error. In a release build these assertions become
// __builtin_assume under clang (undefined behaviour) and nothing under gcc: Debian's
// library, which the CLI links, is built with gcc, and the CLI reports the error (checked
// with both inputs). Every other assertion aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

#define TOML_HEADER_ONLY 1

inline void msgtrans_fuzz_toml_assert(bool ok, const char* expr, const char* file, int line) {
  if (ok || std::strcmp(expr, "is_bare_key_character(*cp) || is_string_delimiter(*cp)") == 0 ||
      std::strcmp(expr, "!is_value_terminator(*cp)") == 0)
    return;
  std::fprintf(stderr, "%s:%d: toml++ assertion failed: %s\n", file, line, expr);
  std::abort();
}
#define TOML_ASSERT(expr) msgtrans_fuzz_toml_assert(static_cast<bool>(expr), #expr, __FILE__, __LINE__)
