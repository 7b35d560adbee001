;; A WASI command that never ends on its own: it writes "tick N" to stdout, burns some fuel,
;; grows its memory by one page every 8 ticks (up to 64 pages), and repeats — to watch output
;; stream in while it runs, the memory curve climb, and Cancel (or a limit) end it.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0..7: the iovec {ptr=16, len}; 8: nwritten; 16..: "tick " then the digits and "\n".
  (data (i32.const 16) "tick ")
  (func $line (param $n i32)
    (local $end i32) (local $start i32) (local $t i32) (local $c i32)
    ;; The digits of $n, written backwards from 40, then reversed into 21.. .
    (local.set $end (i32.const 40))
    (loop $digit
      (local.set $end (i32.sub (local.get $end) (i32.const 1)))
      (i32.store8 (local.get $end) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (local.set $t (i32.const 21))
    (loop $copy
      (i32.store8 (local.get $t) (i32.load8_u (local.get $end)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (local.set $end (i32.add (local.get $end) (i32.const 1)))
      (br_if $copy (i32.lt_u (local.get $end) (i32.const 40))))
    (i32.store8 (local.get $t) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.sub (i32.add (local.get $t) (i32.const 1)) (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $n i32) (local $i i32)
    (loop $forever
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (call $line (local.get $n))
      (if (i32.and
            (i32.eqz (i32.rem_u (local.get $n) (i32.const 8)))
            (i32.lt_u (memory.size) (i32.const 64)))
        (then (drop (memory.grow (i32.const 1)))))
      ;; About 12M instructions of work between lines.
      (local.set $i (i32.const 3000000))
      (loop $work
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br_if $work (local.get $i)))
      (br $forever))))
