# pg_writers_bench: N concurrent writers on disjoint customers on PostgreSQL, one lock for the
# database vs per-customer locks, every version captured and checked against the model.
if(TARGET ch_e2e_util AND TARGET ch_publisher)
  add_executable(pg_writers_bench ${CMAKE_CURRENT_LIST_DIR}/pg_writers_bench.cc)
  target_link_libraries(pg_writers_bench PRIVATE ch_campaign ch_capture ch_publisher ch_history
                        ch_e2e_util CLI11::CLI11)
endif()
