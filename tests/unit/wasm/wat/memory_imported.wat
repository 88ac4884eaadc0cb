;; Imports its memory: the host creates it with the (capped) limits declared here.
(module
  (import "env" "memory" (memory 1 50))
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0)))
  (func (export "store") (param i32 i32)
    (i32.store (local.get 0) (local.get 1)))
)
