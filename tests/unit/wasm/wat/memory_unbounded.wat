;; Declares no maximum: the cap becomes its maximum.
(module
  (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0)))
)
