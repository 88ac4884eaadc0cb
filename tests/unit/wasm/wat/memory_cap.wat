;; Declares min 2, max 100 pages: the engine caps the maximum before compiling.
(module
  (memory (export "memory") 2 100)
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0)))
  (func (export "size") (result i32)
    (memory.size))
)
