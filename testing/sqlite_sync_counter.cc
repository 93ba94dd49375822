#include "testing/sqlite_sync_counter.h"

#include <sqlite3.h>

#include <atomic>
#include <cstdlib>

namespace ch::testing {
namespace {

enum class Kind { kOther, kWal, kMainDb };

std::atomic<int64_t> wal_count{0};
std::atomic<int64_t> db_count{0};
sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs counting_vfs;

// Our file object: the real VFS's file follows it in the same allocation (szOsFile).
struct CountingFile {
  sqlite3_file base;
  sqlite3_file* real;
  Kind kind;
};

sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<CountingFile*>(f)->real; }
const sqlite3_io_methods* M(sqlite3_file* f) { return Real(f)->pMethods; }

int Sync(sqlite3_file* f, int flags) {
  int rc = M(f)->xSync(Real(f), flags);
  if (rc == SQLITE_OK) {
    Kind k = reinterpret_cast<CountingFile*>(f)->kind;
    if (k == Kind::kWal) ++wal_count;
    if (k == Kind::kMainDb) ++db_count;
  }
  return rc;
}

const sqlite3_io_methods kMethods = {
    3,
    [](sqlite3_file* f) { return M(f)->xClose(Real(f)); },
    [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) { return M(f)->xRead(Real(f), b, n, o); },
    [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
      return M(f)->xWrite(Real(f), b, n, o);
    },
    [](sqlite3_file* f, sqlite3_int64 n) { return M(f)->xTruncate(Real(f), n); },
    Sync,
    [](sqlite3_file* f, sqlite3_int64* n) { return M(f)->xFileSize(Real(f), n); },
    [](sqlite3_file* f, int l) { return M(f)->xLock(Real(f), l); },
    [](sqlite3_file* f, int l) { return M(f)->xUnlock(Real(f), l); },
    [](sqlite3_file* f, int* r) { return M(f)->xCheckReservedLock(Real(f), r); },
    [](sqlite3_file* f, int op, void* a) { return M(f)->xFileControl(Real(f), op, a); },
    [](sqlite3_file* f) { return M(f)->xSectorSize(Real(f)); },
    [](sqlite3_file* f) { return M(f)->xDeviceCharacteristics(Real(f)); },
    [](sqlite3_file* f, int pg, int sz, int extend, void volatile** p) {
      return M(f)->xShmMap(Real(f), pg, sz, extend, p);
    },
    [](sqlite3_file* f, int off, int n, int flags) {
      return M(f)->xShmLock(Real(f), off, n, flags);
    },
    [](sqlite3_file* f) { M(f)->xShmBarrier(Real(f)); },
    [](sqlite3_file* f, int del) { return M(f)->xShmUnmap(Real(f), del); },
    [](sqlite3_file* f, sqlite3_int64 o, int n, void** p) {
      return M(f)->xFetch(Real(f), o, n, p);
    },
    [](sqlite3_file* f, sqlite3_int64 o, void* p) { return M(f)->xUnfetch(Real(f), o, p); },
};

int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* f = reinterpret_cast<CountingFile*>(file);
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  f->kind = (flags & SQLITE_OPEN_WAL)       ? Kind::kWal
            : (flags & SQLITE_OPEN_MAIN_DB) ? Kind::kMainDb
                                            : Kind::kOther;
  int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  // SQLite calls xClose only on a file whose pMethods is set.
  f->base.pMethods = f->real->pMethods != nullptr ? &kMethods : nullptr;
  return rc;
}

}  // namespace

SqliteSyncCounter::SqliteSyncCounter() {
  real_vfs = sqlite3_vfs_find(nullptr);
  if (real_vfs == nullptr || real_vfs->iVersion < 3) std::abort();
  counting_vfs = *real_vfs;
  counting_vfs.zName = "ch_sync_counter";
  counting_vfs.szOsFile = static_cast<int>(sizeof(CountingFile)) + real_vfs->szOsFile;
  counting_vfs.xOpen = Open;
  wal_count = 0;
  db_count = 0;
  if (sqlite3_vfs_register(&counting_vfs, /*makeDflt=*/1) != SQLITE_OK) std::abort();
}

SqliteSyncCounter::~SqliteSyncCounter() {
  sqlite3_vfs_unregister(&counting_vfs);
  sqlite3_vfs_register(real_vfs, /*makeDflt=*/1);
}

int64_t SqliteSyncCounter::wal_syncs() const { return wal_count.load(); }
int64_t SqliteSyncCounter::db_syncs() const { return db_count.load(); }

}  // namespace ch::testing
