#include "campaign/captured_change.h"

#include <fmt/format.h>

namespace ch {

std::string DebugString(const CapturedChange& c) {
  return fmt::format("#{} tx {} c{}@v{} {} p{} by {}", c.seq, c.transaction_id, c.row.id, c.version,
                     ChangeOpName(c.op), c.row.priority, c.actor);
}

}  // namespace ch
