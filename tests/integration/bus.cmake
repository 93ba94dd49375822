# Bus integration tests against the Pub/Sub emulator (skipped when PUBSUB_EMULATOR_HOST is unset).
# Included from tests/integration/CMakeLists.txt: include(bus.cmake OPTIONAL)
if(TARGET ch_bus)
  # Kill and restart the shared emulator (bus_emulator_restart_test, topology_test).
  add_library(ch_emulator_control STATIC ${CMAKE_CURRENT_LIST_DIR}/emulator_control.cc)
  target_link_libraries(ch_emulator_control PUBLIC ch_common fmt::fmt)
  target_include_directories(ch_emulator_control PUBLIC ${PROJECT_SOURCE_DIR})

  ch_add_test(bus_dead_letter_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/bus_dead_letter_test.cc
    DEPS ch_bus fmt::fmt LABELS integration pubsub TIMEOUT 300)

  # Kills and restarts the SHARED emulator (it needs CH_PUBSUB_EMULATOR to restart it): it runs
  # alone (RUN_SERIAL) so that no other test sees the emulator vanish.
  ch_add_test(bus_emulator_restart_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/bus_emulator_restart_test.cc
    DEPS ch_bus ch_emulator_control fmt::fmt LABELS "integration;pubsub;slow" TIMEOUT 300)
  set_tests_properties(bus_emulator_restart_test PROPERTIES RUN_SERIAL TRUE)
endif()
