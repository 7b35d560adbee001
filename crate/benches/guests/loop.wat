;; Benchmark guest: a tight integer loop (an LCG), the interpreter's best case: no calls, no memory.
(module
  ;; x = x * 1103515245 + 12345 (mod 2^32), n times, starting from x = 1; returns x.
  (func (export "lcg") (param $n i32) (result i32)
    (local $x i32)
    (local.set $x (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $x
          (i32.add
            (i32.mul (local.get $x) (i32.const 1103515245))
            (i32.const 12345)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $x)))
