;; A proxy-wasm module whose memory starts at 1024 pages (64 MiB): over the default cap of
;; 32 MiB, so loading must fail before anything runs.
(module
  (memory (export "memory") 1024)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32)))
