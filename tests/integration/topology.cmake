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
    GTest::gtest_main)
  add_dependencies(topology_test campaign-history)

  # name | gtest filter | labels | timeout (s)
  set(_ch_topology_tests
    "topology_bad_input_test|TopologyTest.BadBackends*|integration|120"
    "topology_log_test|TopologyTest.LogCapture*|integration,slow|300"
    "topology_sink_test|TopologyTest.Sink*|integration,slow|300"
    "topology_notify_test|TopologyTest.NotifyCapture*|integration,slow|300"
    "topology_faults_test|TopologyTest.Killed*|integration,slow|400"
    "topology_poison_test|TopologyTest.Poison*:TopologyTest.DeadLetters*|integration,slow|400"
    "topology_outage_test|TopologyTest.Outage*|integration,slow|600"
    "topology_emulator_restart_test|TopologyTest.PipelineRecovers*|integration,slow|400")
  foreach(_entry IN LISTS _ch_topology_tests)
    string(REPLACE "|" ";" _fields "${_entry}")
    list(GET _fields 0 _name)
    list(GET _fields 1 _filter)
    list(GET _fields 2 _labels)
    list(GET _fields 3 _timeout)
    string(REPLACE "," ";" _labels "${_labels}")
    add_test(NAME ${_name} COMMAND topology_test --gtest_filter=${_filter})
    set_tests_properties(${_name} PROPERTIES LABELS "${_labels}" TIMEOUT ${_timeout}
      ENVIRONMENT "CH_BINARY_DIR=${PROJECT_BINARY_DIR};CH_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
  set_tests_properties(topology_emulator_restart_test PROPERTIES RUN_SERIAL TRUE)
endif()
