;; Exports like a proxy-wasm module: an ABI version marker, a memory, a table and a global.
(module
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2 16)
  (table (export "table") 1 funcref)
  (global (export "counter") (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
)
