// campaign-history itself as a peer (peer.h), driven through the campaign service as `replay`
// drives it, in one of two setups:
//   embedded      SQLite campaign DB + outbox capture + the live publisher -> SQLite history, in
//                 --data DIR (the default setup);
//   PostgreSQL    campaign DB on PostgreSQL, log capture (replication slot) relayed through
//                 Pub/Sub to the publisher -> a PostgreSQL history store (schema of its own in
//                 the same database): the production topology, every role in this process.
// Each setup also runs with capture off (its baseline, not versioned).
//
// Thread-safety: a ChPeer is used by one thread (its runtime runs the roles' threads).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "bench/peers/peer.h"

namespace ch::peers {

struct ChPeerOptions {
  // The peer's name in the report.
  std::string name;
  // Work directory (embedded: the data directory; removed first).
  std::filesystem::path dir;
  // Log capture and the publisher on; off: the baseline without versioning.
  bool capture = false;
  // Empty: the embedded setup. Otherwise the PostgreSQL database (URL) of the campaign DB and
  // the history (schema `history`), and the Pub/Sub project (PUBSUB_EMULATOR_HOST must be set).
  std::string pg_url;
  std::string pubsub_project;
};

class ChPeer : public Peer {
 public:
  // Open the setup (and, with capture on PostgreSQL, create its slot and publication) and start
  // its roles.
  static Result<std::unique_ptr<ChPeer>> Open(const ChPeerOptions& options);
  // Wait until the history holds `versions` records (every committed version), then stop the
  // roles. A no-op with capture off.
  virtual Status Finish(int64_t versions) = 0;
  // Stop the roles and drop the slot and the publication (a slot nobody reads keeps WAL).
  virtual void Close() = 0;
};

}  // namespace ch::peers
