// Helpers shared by the files of the campaign module. Never include from outside src/campaign/.
#pragma once

#include "campaign/campaign.h"
#include "common/status.h"

namespace ch::campaign_internal {

// ValidateCampaign, optionally without parsing `content` again: for callers that have just
// canonicalized it (CanonicalContent checks everything ValidateCampaign would) or that did not
// change it since it was stored. Content is checked on every write that sets it.
Status ValidateCampaign(const Campaign& c, bool check_content);

}  // namespace ch::campaign_internal
