// The Catch2 runner of ssm_tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
