;; A plugin that hands the host malformed serialized header maps through
;; proxy_set_header_map_pairs: counts and lengths that point past the data or wrap around in
;; 32-bit arithmetic, and pointers outside linear memory. A correct host refuses each with a
;; non-OK status and leaves the headers alone; the callback then continues. If the host accepts
;; any of them, the callback traps (unreachable), which a test sees as a failed call.
(module
  (import "env" "proxy_set_header_map_pairs"
    (func $set_pairs (param i32 i32 i32) (result i32)))
  ;; Exactly one page, never grown here, so "outside memory" is 65536 and beyond.
  (memory (export "memory") 1)

  ;; 1024: count 0xffffffff with nothing after it (size 4).
  (data (i32.const 1024) "\ff\ff\ff\ff")
  ;; 1040: count 1, key length 0x7ffffff0, value length 1 (size 16).
  (data (i32.const 1040) "\01\00\00\00\f0\ff\ff\7f\01\00\00\00a\00b\00")
  ;; 1072: count 1, key length 0xffffffff, value length 2: their 32-bit sum wraps (size 15).
  (data (i32.const 1072) "\01\00\00\00\ff\ff\ff\ff\02\00\00\00a\00\00")
  ;; 1104: count 2 with both length pairs but the bytes of one pair only (size 24).
  (data (i32.const 1104) "\02\00\00\00\01\00\00\00\01\00\00\00\01\00\00\00\01\00\00\00a\00b\00")
  ;; 1136: count 0x20000000: count * 8 wraps to 0 in 32 bits (size 12).
  (data (i32.const 1136) "\00\00\00\20\00\00\00\00\00\00\00\00")

  ;; Traps unless the host refused the map at [ptr, ptr + size).
  (func $expect_refused (param $ptr i32) (param $size i32)
    (if (i32.eqz (call $set_pairs (i32.const 0) (local.get $ptr) (local.get $size)))
      (then (unreachable))))

  (func (export "malloc") (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $expect_refused (i32.const 1024) (i32.const 4))
    (call $expect_refused (i32.const 1040) (i32.const 16))
    (call $expect_refused (i32.const 1072) (i32.const 15))
    (call $expect_refused (i32.const 1104) (i32.const 24))
    (call $expect_refused (i32.const 1136) (i32.const 12))
    ;; Crosses the end of memory.
    (call $expect_refused (i32.const 65528) (i32.const 64))
    ;; Pointer plus size wraps around 2^32.
    (call $expect_refused (i32.const 0xfffffff0) (i32.const 0x20))
    ;; Far larger than memory.
    (call $expect_refused (i32.const 1024) (i32.const 0x7fffffff))
    (i32.const 0))
)
