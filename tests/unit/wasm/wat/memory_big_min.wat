;; Needs 20 pages to start: more than a cap of 10 allows.
(module
  (memory (export "memory") 20)
)
