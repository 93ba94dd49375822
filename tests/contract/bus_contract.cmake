# BusContractTest: every ChangeBus implementation against one suite (InMemory, Embedded SQLite,
# Pub/Sub emulator -- the last skips itself when PUBSUB_EMULATOR_HOST is not set).
if(TARGET ch_bus)
  ch_add_test(bus_contract_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/bus_contract_test.cc
    DEPS ch_bus fmt::fmt
    LABELS contract pubsub
    TIMEOUT 600)
endif()
