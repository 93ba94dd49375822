// SqliteSyncCounter: a test-only SQLite VFS that forwards everything to the default VFS and
// counts the fsyncs (xSync) of WAL files and of main database files, so that a test can tell
// whether something made committed transactions survive a power loss. A real power loss cannot
// be simulated in a test; what can be checked is that the fsync that makes them durable happened,
// and when.
//
// While an instance lives, it is the process's default VFS: every database opened meanwhile goes
// through it. REQUIRES: at most one instance at a time; every connection opened through it is
// closed before it is destroyed.
//
// Thread-safety: the counts may be read from any thread.
#pragma once

#include <cstdint>

namespace ch::testing {

class SqliteSyncCounter {
 public:
  SqliteSyncCounter();
  ~SqliteSyncCounter();
  SqliteSyncCounter(const SqliteSyncCounter&) = delete;
  SqliteSyncCounter& operator=(const SqliteSyncCounter&) = delete;

  // Return how many times a WAL file ("...-wal") was fsynced since construction.
  int64_t wal_syncs() const;
  // Return how many times a main database file was fsynced since construction.
  int64_t db_syncs() const;
};

}  // namespace ch::testing
