;; Benchmark guest: naive f64 matrix multiply, exercising float arithmetic and memory loads/stores.
(module
  (memory 1)
  ;; Fills A[i][j] = ((i+j) % 7) * 0.5 and B[i][j] = ((i*j) % 5) + 1.0 (n x n, row-major f64),
  ;; computes C = A x B with the naive i-j-k loop and returns the sum of all entries of C.
  ;; Layout: A at 0, B at 8n^2, C at 16n^2. Traps (unreachable) if n > 512 or memory won't grow.
  (func (export "matmul") (param $n i32) (result f64)
    (local $nn8 i32) (local $a i32) (local $b i32) (local $c i32)
    (local $i i32) (local $j i32) (local $k i32)
    (local $acc f64) (local $sum f64) (local $pages i32)
    (if (i32.gt_u (local.get $n) (i32.const 512)) (then unreachable))
    (local.set $nn8 (i32.shl (i32.mul (local.get $n) (local.get $n)) (i32.const 3)))
    (local.set $a (i32.const 0))
    (local.set $b (local.get $nn8))
    (local.set $c (i32.shl (local.get $nn8) (i32.const 1)))
    ;; pages needed for 3 * 8n^2 bytes
    (local.set $pages
      (i32.shr_u
        (i32.add (i32.mul (local.get $nn8) (i32.const 3)) (i32.const 65535))
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable))))
    ;; fill A and B
    (local.set $i (i32.const 0))
    (block $fi_done
      (loop $fi
        (br_if $fi_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $fj_done
          (loop $fj
            (br_if $fj_done (i32.ge_u (local.get $j) (local.get $n)))
            (f64.store
              (i32.add (local.get $a)
                (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))
                  (i32.const 3)))
              (f64.mul
                (f64.convert_i32_u
                  (i32.rem_u (i32.add (local.get $i) (local.get $j)) (i32.const 7)))
                (f64.const 0.5)))
            (f64.store
              (i32.add (local.get $b)
                (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))
                  (i32.const 3)))
              (f64.add
                (f64.convert_i32_u
                  (i32.rem_u (i32.mul (local.get $i) (local.get $j)) (i32.const 5)))
                (f64.const 1.0)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $fj)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fi)))
    ;; C = A x B
    (local.set $i (i32.const 0))
    (block $mi_done
      (loop $mi
        (br_if $mi_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $mj_done
          (loop $mj
            (br_if $mj_done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $acc (f64.const 0))
            (local.set $k (i32.const 0))
            (block $mk_done
              (loop $mk
                (br_if $mk_done (i32.ge_u (local.get $k) (local.get $n)))
                (local.set $acc
                  (f64.add (local.get $acc)
                    (f64.mul
                      (f64.load
                        (i32.add (local.get $a)
                          (i32.shl
                            (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $k))
                            (i32.const 3))))
                      (f64.load
                        (i32.add (local.get $b)
                          (i32.shl
                            (i32.add (i32.mul (local.get $k) (local.get $n)) (local.get $j))
                            (i32.const 3)))))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $mk)))
            (f64.store
              (i32.add (local.get $c)
                (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))
                  (i32.const 3)))
              (local.get $acc))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $mj)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $mi)))
    ;; sum of C, row-major
    (local.set $sum (f64.const 0))
    (local.set $i (i32.const 0))
    (block $s_done
      (loop $s
        (br_if $s_done (i32.ge_u (local.get $i) (i32.mul (local.get $n) (local.get $n))))
        (local.set $sum
          (f64.add (local.get $sum)
            (f64.load (i32.add (local.get $c) (i32.shl (local.get $i) (i32.const 3))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $s)))
    (local.get $sum)))
