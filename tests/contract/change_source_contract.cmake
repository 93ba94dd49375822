# ChangeSourceContractTest: every ChangeSource (in memory, whole and in parts; SQLite outbox;
# PostgreSQL logical slot -- the last skips itself when CH_TEST_PG_URL is not set).
if(CH_BUILD_TESTS)
  ch_add_test(change_source_contract_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/change_source_contract_test.cc
    DEPS ch_capture ch_campaign
    LABELS contract)
endif()
