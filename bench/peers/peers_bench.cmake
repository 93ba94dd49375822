# peers_bench: campaign-history next to PostgreSQL + periods, a PostgreSQL audit trigger and MariaDB
# system versioning, on one workload, every answer checked against the workload model (which is a
# test library: the bench needs CH_BUILD_TESTS). bench/peers/run.sh starts MariaDB for it.
# The MariaDB client is optional (Debian libmariadb-dev): without it, or with
# -DCH_PEERS_MARIADB=OFF, the bench builds and reports its MariaDB peers as skipped.
option(CH_PEERS_MARIADB "peers_bench: use the MariaDB client library when it is installed" ON)
if(TARGET ch_app AND TARGET ch_workload_model)
  add_executable(peers_bench ${CMAKE_CURRENT_LIST_DIR}/peers_bench.cc
                 ${CMAKE_CURRENT_LIST_DIR}/ch_peer.cc ${CMAKE_CURRENT_LIST_DIR}/sql_peer.cc
                 ${CMAKE_CURRENT_LIST_DIR}/sql_conn.cc)
  target_link_libraries(peers_bench PRIVATE ch_app ch_workload_model CLI11::CLI11
                        PostgreSQL::PostgreSQL)
  if(CH_PEERS_MARIADB)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
      pkg_check_modules(PEERS_MARIADB QUIET IMPORTED_TARGET libmariadb)
    endif()
  endif()
  if(CH_PEERS_MARIADB AND PEERS_MARIADB_FOUND)
    target_link_libraries(peers_bench PRIVATE PkgConfig::PEERS_MARIADB)
    target_compile_definitions(peers_bench PRIVATE CH_PEERS_WITH_MARIADB)
  elseif(CH_PEERS_MARIADB)
    message(STATUS "peers_bench: no MariaDB client library (libmariadb), so its MariaDB peers "
                   "are skipped; to include them: apt-get install -y libmariadb-dev, re-run cmake")
  else()
    message(STATUS "peers_bench: CH_PEERS_MARIADB=OFF, so its MariaDB peers are skipped")
  endif()
endif()
