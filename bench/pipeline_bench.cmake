# pipeline_bench: replay with capture off vs on, lag, RSS and as-of on the embedded pipeline.
add_executable(pipeline_bench ${CMAKE_CURRENT_LIST_DIR}/pipeline_bench.cc)
target_link_libraries(pipeline_bench PRIVATE ch_app CLI11::CLI11)
