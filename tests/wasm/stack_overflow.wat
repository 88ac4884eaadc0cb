;; A plugin whose request-headers callback recurses without end: a stack overflow is a trap,
;; the instance is rebuilt, and the failure policy decides the request.
(module
  (memory (export "memory") 2)
  ;; Bump allocator for the host's writes into the guest; memory is never freed.
  (global $heap (mut i32) (i32.const 65536))
  (func $malloc (export "malloc") (export "proxy_on_memory_allocate")
    (param $size i32) (result i32)
    (local $p i32) (local $end i64) (local $have i64)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end
      (i64.add (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $size))))
    (if (i64.ge_u (local.get $end) (i64.const 0xffff0000))
      (then (return (i32.const 0))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.wrap_i64 (i64.shr_u
                (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 65535))
                (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (i32.wrap_i64 (local.get $end)))
    (local.get $p))

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))

  ;; Calls itself without end, each frame holding locals: V8 stops it at its stack limit.
  (func $recurse (param $n i64) (result i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local.set $a (i64.add (local.get $n) (i64.const 1)))
    (i64.add (local.get $a) (call $recurse (local.get $a))))

  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $recurse (i64.const 0)))
    (i32.const 0))
)
