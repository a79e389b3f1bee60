// Checking that a configuration mistake is refused with a message naming the field.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace msgtrans::test {

/// Expects `make()` to throw std::invalid_argument whose message names `field`.
template <class F>
void expect_invalid_naming(F make, const std::string& field) {
  try {
    make();
    ADD_FAILURE() << "no std::invalid_argument for " << field;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

}  // namespace msgtrans::test
