;; The demo guest: computes primes below N, reports progress through a granted env.log
;; capability, and has an export that never returns (to show a limit ending it).
(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "counting primes")
  ;; Returns how many primes are below $n (trial division: real work, many fuel slices).
  (func (export "count_primes") (param $n i32) (result i32)
    (local $i i32) (local $d i32) (local $count i32) (local $prime i32)
    (call $log (i32.const 0) (i32.const 15))
    (local.set $i (i32.const 2))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $prime (i32.const 1))
        (local.set $d (i32.const 2))
        (block $composite
          (loop $try
            (br_if $composite (i32.gt_u (i32.mul (local.get $d) (local.get $d)) (local.get $i)))
            (if (i32.eqz (i32.rem_u (local.get $i) (local.get $d)))
              (then (local.set $prime (i32.const 0)) (br $composite)))
            (local.set $d (i32.add (local.get $d) (i32.const 1)))
            (br $try)))
        (local.set $count (i32.add (local.get $count) (local.get $prime)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $count))
  (func (export "spin") (loop $l (br $l))))
