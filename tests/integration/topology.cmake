# Production-topology tests (PostgreSQL + the Pub/Sub emulator + `serve` child processes):
# topology_test.cc. Skipped when CH_TEST_PG_URL or PUBSUB_EMULATOR_HOST is unset.
# Included from tests/integration/CMakeLists.txt: include(topology.cmake OPTIONAL)
#
# One binary, several ctest entries (gtest filters), so that ctest can run them in parallel and
# label the long ones `slow`; the emulator restart runs alone (RUN_SERIAL): it kills the SHARED
# emulator.
if(TARGET ch_app AND TARGET ch_e2e_util AND TARGET ch_emulator_control)
  add_executable(topology_test
    ${CMAKE_CURRENT_LIST_DIR}/topology_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/topology_util.cc)
  target_link_libraries(topology_test PRIVATE ch_app ch_e2e_util ch_emulator_control fmt::fmt ch_testing GTest::gmock
    ch_gtest_main)
  add_dependencies(topology_test campaign-history)

  # name | gtest filter | labels | timeout (s). A filter that selects no test fails its entry
  # (testing/test_main.h), so a renamed test cannot leave an entry that passes on nothing.
  set(_ch_topology_tests
    "topology_bad_input_test|TopologyTest.BadBackends*|integration,pubsub|120"
    "topology_log_test|TopologyTest.LogCapture*|integration,pubsub,slow|300"
    "topology_sink_test|TopologyTest.Sink*|integration,pubsub,slow|300"
    "topology_notify_test|TopologyTest.NotifyCapture*|integration,pubsub,slow|300"
    "topology_frontier_test|TopologyTest.AsOfNearTheFrontier*|integration,pubsub,slow|400"
    "topology_faults_test|TopologyTest.Killed*|integration,pubsub,slow|400"
    "topology_poison_test|TopologyTest.Poison*:TopologyTest.DeadLetters*|integration,pubsub,slow|400"
    "topology_outage_test|TopologyTest.Outage*|integration,pubsub,slow|600"
    "topology_emulator_restart_test|TopologyTest.PipelineRecovers*|integration,pubsub,slow|400"
    "topology_soak_test|TopologyTest.CrashSoak*|integration,pubsub,slow|900")
  foreach(_entry IN LISTS _ch_topology_tests)
    string(REPLACE "|" ";" _fields "${_entry}")
    list(GET _fields 0 _name)
    list(GET _fields 1 _filter)
    list(GET _fields 2 _labels)
    list(GET _fields 3 _timeout)
    string(REPLACE "," ";" _labels "${_labels}")
    add_test(NAME ${_name} COMMAND topology_test --gtest_filter=${_filter})
    ch_set_test_properties(${_name} LABELS ${_labels} TIMEOUT ${_timeout})
  endforeach()
  set_tests_properties(topology_emulator_restart_test PROPERTIES RUN_SERIAL TRUE)
endif()

# The sink role into a PostgreSQL and into a ClickHouse history (issue 8 item 3):
# sink_stores_test.cc, about a minute per store. Skipped when CH_TEST_PG_URL or
# PUBSUB_EMULATOR_HOST is unset (and the ClickHouse case when CH_TEST_CLICKHOUSE_URL is).
if(TARGET ch_app AND TARGET ch_e2e_util)
  ch_add_test(sink_stores_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/sink_stores_test.cc ${CMAKE_CURRENT_LIST_DIR}/topology_util.cc
    DEPS ch_app ch_e2e_util ch_emulator_control fmt::fmt
    LABELS integration pubsub TIMEOUT 300)
  add_dependencies(sink_stores_test campaign-history)
endif()
