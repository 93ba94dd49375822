# history_bench: SQLite or PostgreSQL (--pg URL) history store under the shape of the large workload (prints numbers).
if(TARGET ch_history)
  add_executable(history_bench ${CMAKE_CURRENT_LIST_DIR}/history_bench.cc)
  target_link_libraries(history_bench PRIVATE ch_history)
endif()
