;; A proxy-wasm module that imports a host function no host offers: loading must fail and name it.
(module
  (import "env" "proxy_teleport" (func $teleport (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $teleport (i32.const 0)))
    (i32.const 0)))
