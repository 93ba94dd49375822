// The bus's public headers keep third-party headers out (conventions §6): including all of them
// must not bring in httplib, sqlite3 or nlohmann-json.
#include "bus/bus_consumer.h"
#include "bus/bus_limits.h"
#include "bus/change_bus.h"
#include "bus/embedded_change_bus.h"
#include "bus/flaky_change_bus.h"
#include "bus/in_memory_change_bus.h"
#include "bus/pubsub_change_bus.h"

#ifdef CPPHTTPLIB_VERSION
#error "httplib.h leaked into a public bus header"
#endif
#ifdef SQLITE_OK
#error "sqlite3.h leaked into a public bus header"
#endif
#ifdef NLOHMANN_JSON_VERSION_MAJOR
#error "nlohmann/json.hpp leaked into a public bus header"
#endif

#include <gtest/gtest.h>

TEST(BusHeadersTest, PublicHeadersAreSelfContainedAndClean) { SUCCEED(); }
