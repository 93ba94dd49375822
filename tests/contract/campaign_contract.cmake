# The campaign service contract (campaign/campaign_service.h) over every CampaignStore, plus the
# SQLite log-capture contract (outbox + SqliteOutboxSource).
if(CH_BUILD_TESTS)
  ch_add_test(campaign_service_contract_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/campaign_service_contract_test.cc
    DEPS ch_campaign ch_capture LABELS contract)
endif()
