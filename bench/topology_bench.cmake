# topology_bench: the production topology (PostgreSQL + Pub/Sub emulator) measured: write-path cost
# of capture none/notify/log, end-to-end throughput and lag through Pub/Sub with 1 and 2
# publishers, peak RSS per role process, notify vs log completeness (prints numbers).
if(TARGET ch_app AND TARGET campaign-history)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(TOPOLOGY_BENCH_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
  add_executable(topology_bench ${CMAKE_CURRENT_LIST_DIR}/topology_bench.cc)
  target_link_libraries(topology_bench PRIVATE ch_app ch_api CLI11::CLI11
                        PkgConfig::TOPOLOGY_BENCH_HTTPLIB)
  # The role processes it starts: the binary of this build unless --binary says otherwise.
  target_compile_definitions(topology_bench
                             PRIVATE CH_BINARY_DEFAULT="$<TARGET_FILE:campaign-history>")
  add_dependencies(topology_bench campaign-history)
endif()
