// Peer: one system that keeps campaign versions, as peers_bench drives it (docs/benchmarks.md,
// "Peers"). Each peer applies the same workload lines, names a moment in its own clock after an
// op, and answers as-of and one campaign's log; peers_bench checks every answer against the
// workload model (testing/workload_model.h), so a fast wrong answer cannot win.
//
// Implementations: the SQL peers (sql_peer.h: PostgreSQL without versioning, with the `periods`
// extension, with an audit trigger; MariaDB without and with system versioning) and
// campaign-history itself (peers_bench.cc).
//
// Thread-safety: a Peer is used by one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "testing/workload_model.h"
#include "workload/workload.h"

namespace ch::peers {

class Peer {
 public:
  Peer() = default;
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  virtual ~Peer() = default;

  // Return the peer's name as the report prints it.
  virtual std::string Name() const = 0;
  // Return true when the peer keeps versions (the baselines without versioning do not, and
  // answer only Apply).
  virtual bool Versioned() const = 0;

  // Apply one workload line in one transaction. Fails when a statement fails or touches another
  // number of rows than the line says.
  virtual Status Apply(const WorkloadLine& line) = 0;

  // Return a moment, in the peer's own clock, after everything applied so far and before
  // anything applied later (opaque text passed back to AsOf).
  virtual Result<std::string> Moment() = 0;
  // Run the as-of query: the customer's campaigns at `moment`. The answer stays in client memory
  // as the system returned it (rows of text, or history records) until Answer(); converting it
  // to the model's form is not part of the query, so peers_bench times this call alone.
  virtual Status AsOf(int64_t customer_id, const std::string& moment) = 0;
  // Run the log query: the campaign's stored versions (not the tombstone of a delete), by
  // version; kept for Answer() like AsOf.
  virtual Status Log(int64_t campaign_id) = 0;
  // Return the last AsOf (by priority) or Log (by version) answer as model campaigns.
  virtual Result<std::vector<testing::ModelCampaign>> Answer() = 0;
  // Return the bytes the peer's data takes on disk, indexes included: its tables (live and
  // versioned), or for campaign-history its history store. peers_bench reports, per version,
  // what versioning adds: this minus the same number of the peer's baseline.
  virtual Result<int64_t> Bytes() = 0;
  // Return the versions the peer captured, counting a deleted campaign's closed last version as
  // its delete (the model's tombstone).
  virtual Result<int64_t> VersionsCaptured() = 0;
};

}  // namespace ch::peers
