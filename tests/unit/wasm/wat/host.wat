;; Calls host functions: string transformation through guest memory, traps raised by the
;; host, re-entry into the guest from a host function, and a cheap import for benchmarks.
(module
  (import "env" "transform" (func $transform (param i32 i32 i32) (result i32)))
  (import "env" "fail" (func $fail (param i32)))
  (import "env" "nop" (func $nop))
  (import "env" "reenter" (func $reenter (param i32) (result i32)))
  (import "env" "wide" (func $wide (param i64 f32 f64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, wasm")

  ;; Asks the host to upper-case the 11 bytes at 16 into 64; returns what the host returned.
  (func (export "run_transform") (result i32)
    (call $transform (i32.const 16) (i32.const 11) (i32.const 64)))
  (func (export "call_fail") (result i32)
    (call $fail (i32.const 7))
    (i32.const 42))
  (func (export "call_nop") (param $n i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (call $nop)
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again))))
  (func (export "call_reenter") (param i32) (result i32)
    (call $reenter (local.get 0)))
  (func (export "call_wide") (param i64 f32 f64) (result i64)
    (call $wide (local.get 0) (local.get 1) (local.get 2)))
  ;; For the host to call while it runs inside call_reenter.
  (func (export "double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2)))
  (func (export "spin")
    (loop $again (br $again)))
)
