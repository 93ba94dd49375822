#include <fmt/format.h>

#include "campaign/sqlite_schema_internal.h"

namespace ch::sqlite_schema {

Result<Campaign> ReadCampaignColumns(const SqliteStmt& st, int first) {
  Campaign c;
  int i = first;
  c.id = st.ColumnInt64(i++);
  c.customer_id = st.ColumnInt64(i++);
  c.name = st.ColumnString(i++);
  std::string_view status = st.ColumnText(i++);
  auto parsed = ParseCampaignStatus(status);
  if (!parsed.ok()) {
    return DataLossError(
        fmt::format("campaign {} has an unknown status '{}' in the database", c.id, status));
  }
  c.status = *parsed;
  c.priority = st.ColumnInt64(i++);
  c.trigger_event = st.ColumnString(i++);
  c.audience_segment = st.ColumnString(i++);
  if (auto v = st.ColumnOptInt64(i++)) c.start_at = FromUnixMicros(*v);
  if (auto v = st.ColumnOptInt64(i++)) c.end_at = FromUnixMicros(*v);
  c.frequency_cap = st.ColumnInt64(i++);
  c.content = st.ColumnString(i++);
  c.version = st.ColumnInt64(i++);
  c.created_at = FromUnixMicros(st.ColumnInt64(i++));
  c.updated_at = FromUnixMicros(st.ColumnInt64(i++));
  c.updated_by = st.ColumnString(i++);
  return c;
}

void BindCampaignColumns(SqliteStmt& st, int first, const Campaign& c) {
  int i = first;
  st.Bind(i++, c.id);
  st.Bind(i++, c.customer_id);
  st.Bind(i++, c.name);
  st.Bind(i++, CampaignStatusName(c.status));
  st.Bind(i++, c.priority);
  st.Bind(i++, c.trigger_event);
  st.Bind(i++, c.audience_segment);
  if (c.start_at) {
    st.Bind(i++, ToUnixMicros(*c.start_at));
  } else {
    st.BindNull(i++);
  }
  if (c.end_at) {
    st.Bind(i++, ToUnixMicros(*c.end_at));
  } else {
    st.BindNull(i++);
  }
  st.Bind(i++, c.frequency_cap);
  st.Bind(i++, c.content);
  st.Bind(i++, c.version);
  st.Bind(i++, ToUnixMicros(c.created_at));
  st.Bind(i++, ToUnixMicros(c.updated_at));
  st.Bind(i++, c.updated_by);
}

}  // namespace ch::sqlite_schema
