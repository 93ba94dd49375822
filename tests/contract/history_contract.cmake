# HistoryStoreContractTest: every HistoryStore implementation against one suite.
# Server-backed stores (PostgreSQL, ClickHouse) skip themselves when their server is not configured.
if(TARGET ch_history)
  ch_add_test(history_store_contract_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/history_store_contract_test.cc
    DEPS ch_history
    LABELS contract)
endif()
