# ch_add_library(name SOURCES ... DEPS ...): one static library per module; include paths start at src/.
function(ch_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# The reference workload generator (gen_workload.py, run with python3) is not part of this
# repository. Tests in suites named Reference* cross-check this project's parser, model and pipeline
# with its output (ch_add_test REFERENCE_TESTS); when it is not found, ctest lists them as Disabled.
# Looked for in -DCH_REFERENCE_GENERATOR=PATH, $CH_SHARED_DIR/workloads/ at configure time, and
# ../shared/workloads/ beside the source tree.
set(_ch_reference_dirs "${PROJECT_SOURCE_DIR}/../shared/workloads")
if(DEFINED ENV{CH_SHARED_DIR})
  list(PREPEND _ch_reference_dirs "$ENV{CH_SHARED_DIR}/workloads")
endif()
foreach(_dir IN LISTS _ch_reference_dirs)
  if(NOT CH_REFERENCE_GENERATOR AND EXISTS "${_dir}/gen_workload.py")
    get_filename_component(CH_REFERENCE_GENERATOR "${_dir}/gen_workload.py" ABSOLUTE)
  endif()
endforeach()
if(CH_BUILD_TESTS)
  if(CH_REFERENCE_GENERATOR)
    message(STATUS "Reference workload generator: ${CH_REFERENCE_GENERATOR}")
  else()
    message(STATUS "Reference workload generator not found (set CH_SHARED_DIR or "
      "-DCH_REFERENCE_GENERATOR=PATH): the *_reference_test entries are Disabled")
  endif()
endif()

# ch_set_test_properties(name LABELS ... [TIMEOUT s]): the properties of every ctest entry of a
# GoogleTest binary. Its main() (testing/test_main.h) exits 77 when a test skipped: ctest reports
# that as Skipped, not Passed.
function(ch_set_test_properties name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    SKIP_RETURN_CODE 77
    ENVIRONMENT "CH_BINARY_DIR=${PROJECT_BINARY_DIR};CH_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# ch_add_test(name SOURCES ... DEPS ... LABELS ... [TIMEOUT s] [REFERENCE_TESTS]): one GoogleTest
# binary registered with ctest, with ch_gtest_main (testing/test_main.h) as its main().
# REFERENCE_TESTS: its Reference* suites need the reference generator; they run as a second entry,
# <name without _test>_reference_test, Disabled when the generator was not found.
function(ch_add_test name)
  cmake_parse_arguments(ARG "REFERENCE_TESTS" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} ch_testing GTest::gmock ch_gtest_main)
  if(NOT ARG_REFERENCE_TESTS)
    add_test(NAME ${name} COMMAND ${name})
    ch_set_test_properties(${name} LABELS ${ARG_LABELS} TIMEOUT ${ARG_TIMEOUT})
    return()
  endif()
  add_test(NAME ${name} COMMAND ${name} --gtest_filter=-Reference*)
  ch_set_test_properties(${name} LABELS ${ARG_LABELS} TIMEOUT ${ARG_TIMEOUT})
  string(REGEX REPLACE "_test$" "" _base ${name})
  add_test(NAME ${_base}_reference_test COMMAND ${name} --gtest_filter=Reference*)
  ch_set_test_properties(${_base}_reference_test LABELS ${ARG_LABELS} TIMEOUT ${ARG_TIMEOUT})
  if(CH_REFERENCE_GENERATOR)
    set_property(TEST ${_base}_reference_test APPEND PROPERTY ENVIRONMENT
      "CH_REFERENCE_GENERATOR=${CH_REFERENCE_GENERATOR}")
  else()
    set_tests_properties(${_base}_reference_test PROPERTIES DISABLED TRUE)
  endif()
endfunction()
