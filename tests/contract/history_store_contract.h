// The HistoryStore contract suite's plumbing: what a backend must provide to be tested.
//
// Adding a store to the suite is one line in AllHistoryStoreBackends()
// (history_store_contract_test.cc) plus a function returning its HistoryStoreBackend. A backend
// that needs a server (PostgreSQL, ClickHouse) returns a skip reason when its environment
// variable is not set, and the whole suite is skipped for it with that reason.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"

namespace ch::testing {

// Documented deviations from the reference semantics (InMemoryHistoryStore). Every flag is a
// capability a store HAS; tests that need one are skipped for stores without it, so a deviation
// is visible in the test list, never silent.
struct HistoryStoreCapabilities {
  // Stats().bytes reports the bytes the store occupies (false: it is always 0).
  bool reports_bytes = false;
  // Data survives closing and reopening the store on the same location.
  bool persistent = false;
};

struct HistoryStoreBackend {
  // Test name suffix, e.g. "InMemory", "Sqlite". Letters and digits only.
  std::string name;
  HistoryStoreCapabilities caps;
  // Return "" when the backend can run here, else why not (e.g. "CH_TEST_PG_URL is not set").
  std::function<std::string()> skip_reason = [] { return std::string(); };
  // Open a store at `location` (a fresh, empty, per-test directory; server backends derive a
  // fresh database or schema name from it), stamping ingested_at from `clock`. Called again
  // with the same location to reopen when caps.persistent.
  std::function<Result<std::unique_ptr<HistoryStore>>(const Clock& clock,
                                                      const std::string& location)>
      open;
};

}  // namespace ch::testing
