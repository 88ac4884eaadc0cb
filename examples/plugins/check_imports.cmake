# cmake -DWASM=<file.wasm> -DOBJDUMP=<wasm-objdump> -P check_imports.cmake
# Fails (and deletes WASM, so that the next build retries) when the module imports anything a
# proxy-wasm host does not provide (sluice's own sluice_* extensions aside), or lacks the
# exports every plugin needs.

cmake_minimum_required(VERSION 3.25)

set(allowed_wasi fd_write clock_time_get random_get environ_get environ_sizes_get args_get
                 args_sizes_get proc_exit)
set(required_exports memory _initialize proxy_abi_version_0_2_1 proxy_on_memory_allocate malloc)

execute_process(COMMAND ${OBJDUMP} -x ${WASM} RESULT_VARIABLE rc OUTPUT_VARIABLE dump
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE ${WASM})
  message(FATAL_ERROR "wasm-objdump failed on ${WASM}: ${err}")
endif()

set(problems "")
# Import lines look like: " - func[0] sig=1 <env.proxy_log> <- env.proxy_log"
string(REGEX MATCHALL "<- [^ \n]+" imports "${dump}")
foreach(entry ${imports})
  string(REGEX REPLACE "^<- " "" import "${entry}")
  if(import MATCHES "^env\\.(proxy|sluice)_[a-z0-9_]+$")
    continue()
  endif()
  if(import MATCHES "^wasi_snapshot_preview1\\.(.+)$" AND CMAKE_MATCH_1 IN_LIST allowed_wasi)
    continue()
  endif()
  list(APPEND problems "imports ${import}, which a proxy-wasm host does not provide")
endforeach()
# Export lines look like: " - func[3] <f> -> \"proxy_on_log\""
foreach(name ${required_exports})
  string(FIND "${dump}" "-> \"${name}\"" at)
  if(at EQUAL -1)
    list(APPEND problems "does not export ${name}")
  endif()
endforeach()

if(problems)
  file(REMOVE ${WASM})
  list(JOIN problems "; " text)
  message(FATAL_ERROR "${WASM}: ${text}")
endif()
