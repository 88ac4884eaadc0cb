;; A plugin whose request-headers callback reads outside its linear memory: a trap, the
;; instance is rebuilt, and the failure policy decides the request.
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

  ;; Loads from the last bytes of the 4 GiB address space: far past the 2 pages it has, so
  ;; the access lands in V8's guard region and becomes a trap.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (i64.load (i32.const 0xfffffff8)))
    (i32.const 0))
)
