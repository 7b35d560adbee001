;; Benchmark guest: real SHA-256 (FIPS 180-4) over a guest-generated buffer: 32-bit rotates, xors, adds, loads.
(module
  ;; Layout: K table at 0 (64 x u32, little-endian), message schedule W at 256 (64 x u32),
  ;; digest at 512 (32 bytes, big-endian), message buffer (plus padding) at 1024.
  (memory (export "memory") 1)
  (data (i32.const 0)
    "\98\2f\8a\42\91\44\37\71\cf\fb\c0\b5\a5\db\b5\e9"
    "\5b\c2\56\39\f1\11\f1\59\a4\82\3f\92\d5\5e\1c\ab"
    "\98\aa\07\d8\01\5b\83\12\be\85\31\24\c3\7d\0c\55"
    "\74\5d\be\72\fe\b1\de\80\a7\06\dc\9b\74\f1\9b\c1"
    "\c1\69\9b\e4\86\47\be\ef\c6\9d\c1\0f\cc\a1\0c\24"
    "\6f\2c\e9\2d\aa\84\74\4a\dc\a9\b0\5c\da\88\f9\76"
    "\52\51\3e\98\6d\c6\31\a8\c8\27\03\b0\c7\7f\59\bf"
    "\f3\0b\e0\c6\47\91\a7\d5\51\63\ca\06\67\29\29\14"
    "\85\0a\b7\27\38\21\1b\2e\fc\6d\2c\4d\13\0d\38\53"
    "\54\73\0a\65\bb\0a\6a\76\2e\c9\c2\81\85\2c\72\92"
    "\a1\e8\bf\a2\4b\66\1a\a8\70\8b\4b\c2\a3\51\6c\c7"
    "\19\e8\92\d1\24\06\99\d6\85\35\0e\f4\70\a0\6a\10"
    "\16\c1\a4\19\08\6c\37\1e\4c\77\48\27\b5\bc\b0\34"
    "\b3\0c\1c\39\4a\aa\d8\4e\4f\ca\9c\5b\f3\6f\2e\68"
    "\ee\82\8f\74\6f\63\a5\78\14\78\c8\84\08\02\c7\8c"
    "\fa\ff\be\90\eb\6c\50\a4\f7\a3\f9\be\f2\78\71\c6")

  ;; 32-bit byte swap (wasm loads and stores are little-endian; SHA-256 is big-endian).
  (func $bswap (param $x i32) (result i32)
    (i32.or
      (i32.and (i32.rotl (local.get $x) (i32.const 8)) (i32.const 0x00ff00ff))
      (i32.and (i32.rotr (local.get $x) (i32.const 8)) (i32.const 0xff00ff00))))

  ;; Fills `len` bytes at 1024 with byte i = (i*31+7) & 255, pads, hashes, writes the digest
  ;; at 512 and returns 512. Traps (unreachable) if len > 256 MiB or memory won't grow.
  (func $sha256 (export "sha256") (param $len i32) (result i32)
    (local $base i32) (local $total i32) (local $pages i32) (local $i i32)
    (local $blk i32) (local $end i32) (local $t i32) (local $w i32) (local $x i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32)
    (local $e i32) (local $f i32) (local $g i32) (local $h i32)
    (local $h0 i32) (local $h1 i32) (local $h2 i32) (local $h3 i32)
    (local $h4 i32) (local $h5 i32) (local $h6 i32) (local $h7 i32)
    (local $t1 i32) (local $t2 i32)
    (if (i32.gt_u (local.get $len) (i32.const 0x10000000)) (then unreachable))
    (local.set $base (i32.const 1024))
    ;; padded length: len + 1 (0x80) + 8 (bit length), rounded up to 64
    (local.set $total
      (i32.and (i32.add (local.get $len) (i32.const 72)) (i32.const -64)))
    (local.set $end (i32.add (local.get $base) (local.get $total)))
    (local.set $pages
      (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then unreachable))))

    ;; message: byte i = (i*31 + 7) & 255 (store8 keeps the low byte)
    (local.set $i (i32.const 0))
    (block $fill_done
      (loop $fill
        (br_if $fill_done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8
          (i32.add (local.get $base) (local.get $i))
          (i32.add (i32.mul (local.get $i) (i32.const 31)) (i32.const 7)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))

    ;; padding: 0x80, zeros (the buffer may hold an earlier call's bytes), 64-bit bit length
    (i32.store8 (i32.add (local.get $base) (local.get $len)) (i32.const 0x80))
    (local.set $i (i32.add (local.get $len) (i32.const 1)))
    (block $zero_done
      (loop $zero
        (br_if $zero_done
          (i32.ge_u (local.get $i) (i32.sub (local.get $total) (i32.const 8))))
        (i32.store8 (i32.add (local.get $base) (local.get $i)) (i32.const 0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $zero)))
    (i32.store (i32.sub (local.get $end) (i32.const 8))
      (call $bswap (i32.shr_u (local.get $len) (i32.const 29))))
    (i32.store (i32.sub (local.get $end) (i32.const 4))
      (call $bswap (i32.shl (local.get $len) (i32.const 3))))

    ;; initial hash value
    (local.set $h0 (i32.const 0x6a09e667))
    (local.set $h1 (i32.const 0xbb67ae85))
    (local.set $h2 (i32.const 0x3c6ef372))
    (local.set $h3 (i32.const 0xa54ff53a))
    (local.set $h4 (i32.const 0x510e527f))
    (local.set $h5 (i32.const 0x9b05688c))
    (local.set $h6 (i32.const 0x1f83d9ab))
    (local.set $h7 (i32.const 0x5be0cd19))

    (local.set $blk (local.get $base))
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.ge_u (local.get $blk) (local.get $end)))

        ;; W[0..16]: the block's words, big-endian
        (local.set $t (i32.const 0))
        (block $w16_done
          (loop $w16
            (br_if $w16_done (i32.ge_u (local.get $t) (i32.const 64)))
            (i32.store (i32.add (i32.const 256) (local.get $t))
              (call $bswap (i32.load (i32.add (local.get $blk) (local.get $t)))))
            (local.set $t (i32.add (local.get $t) (i32.const 4)))
            (br $w16)))
        ;; W[16..64] ($t is a byte offset: 4 * index)
        (block $w64_done
          (loop $w64
            (br_if $w64_done (i32.ge_u (local.get $t) (i32.const 256)))
            ;; s0 of W[t-15]
            (local.set $w (i32.load (i32.add (i32.const 196) (local.get $t))))
            (local.set $x
              (i32.xor
                (i32.xor (i32.rotr (local.get $w) (i32.const 7))
                         (i32.rotr (local.get $w) (i32.const 18)))
                (i32.shr_u (local.get $w) (i32.const 3))))
            ;; s1 of W[t-2]
            (local.set $w (i32.load (i32.add (i32.const 248) (local.get $t))))
            (local.set $x
              (i32.add (local.get $x)
                (i32.xor
                  (i32.xor (i32.rotr (local.get $w) (i32.const 17))
                           (i32.rotr (local.get $w) (i32.const 19)))
                  (i32.shr_u (local.get $w) (i32.const 10)))))
            ;; W[t] = W[t-16] + s0 + W[t-7] + s1
            (i32.store (i32.add (i32.const 256) (local.get $t))
              (i32.add (local.get $x)
                (i32.add
                  (i32.load (i32.add (i32.const 192) (local.get $t)))
                  (i32.load (i32.add (i32.const 228) (local.get $t))))))
            (local.set $t (i32.add (local.get $t) (i32.const 4)))
            (br $w64)))

        (local.set $a (local.get $h0))
        (local.set $b (local.get $h1))
        (local.set $c (local.get $h2))
        (local.set $d (local.get $h3))
        (local.set $e (local.get $h4))
        (local.set $f (local.get $h5))
        (local.set $g (local.get $h6))
        (local.set $h (local.get $h7))

        ;; 64 rounds
        (local.set $t (i32.const 0))
        (block $rounds_done
          (loop $rounds
            (br_if $rounds_done (i32.ge_u (local.get $t) (i32.const 256)))
            ;; T1 = h + S1(e) + Ch(e,f,g) + K[t] + W[t]
            (local.set $t1
              (i32.add
                (i32.add
                  (i32.add (local.get $h)
                    (i32.xor
                      (i32.xor (i32.rotr (local.get $e) (i32.const 6))
                               (i32.rotr (local.get $e) (i32.const 11)))
                      (i32.rotr (local.get $e) (i32.const 25))))
                  ;; Ch(e,f,g) = g ^ (e & (f ^ g))
                  (i32.xor (local.get $g)
                    (i32.and (local.get $e) (i32.xor (local.get $f) (local.get $g)))))
                (i32.add
                  (i32.load (local.get $t))
                  (i32.load (i32.add (i32.const 256) (local.get $t))))))
            ;; T2 = S0(a) + Maj(a,b,c); Maj = (a & b) | (c & (a | b))
            (local.set $t2
              (i32.add
                (i32.xor
                  (i32.xor (i32.rotr (local.get $a) (i32.const 2))
                           (i32.rotr (local.get $a) (i32.const 13)))
                  (i32.rotr (local.get $a) (i32.const 22)))
                (i32.or
                  (i32.and (local.get $a) (local.get $b))
                  (i32.and (local.get $c) (i32.or (local.get $a) (local.get $b))))))
            (local.set $h (local.get $g))
            (local.set $g (local.get $f))
            (local.set $f (local.get $e))
            (local.set $e (i32.add (local.get $d) (local.get $t1)))
            (local.set $d (local.get $c))
            (local.set $c (local.get $b))
            (local.set $b (local.get $a))
            (local.set $a (i32.add (local.get $t1) (local.get $t2)))
            (local.set $t (i32.add (local.get $t) (i32.const 4)))
            (br $rounds)))

        (local.set $h0 (i32.add (local.get $h0) (local.get $a)))
        (local.set $h1 (i32.add (local.get $h1) (local.get $b)))
        (local.set $h2 (i32.add (local.get $h2) (local.get $c)))
        (local.set $h3 (i32.add (local.get $h3) (local.get $d)))
        (local.set $h4 (i32.add (local.get $h4) (local.get $e)))
        (local.set $h5 (i32.add (local.get $h5) (local.get $f)))
        (local.set $h6 (i32.add (local.get $h6) (local.get $g)))
        (local.set $h7 (i32.add (local.get $h7) (local.get $h)))
        (local.set $blk (i32.add (local.get $blk) (i32.const 64)))
        (br $blocks)))

    ;; digest, big-endian
    (i32.store (i32.const 512) (call $bswap (local.get $h0)))
    (i32.store (i32.const 516) (call $bswap (local.get $h1)))
    (i32.store (i32.const 520) (call $bswap (local.get $h2)))
    (i32.store (i32.const 524) (call $bswap (local.get $h3)))
    (i32.store (i32.const 528) (call $bswap (local.get $h4)))
    (i32.store (i32.const 532) (call $bswap (local.get $h5)))
    (i32.store (i32.const 536) (call $bswap (local.get $h6)))
    (i32.store (i32.const 540) (call $bswap (local.get $h7)))
    (i32.const 512))

  ;; The same hash as one number, for benchmarks that compare engines by a returned value: the
  ;; digest's four 64-bit words (little-endian loads) xor-ed together.
  (func (export "sha256_sum") (param $len i32) (result i64)
    (local $p i32)
    (local.set $p (call $sha256 (local.get $len)))
    (i64.xor
      (i64.xor (i64.load (local.get $p)) (i64.load offset=8 (local.get $p)))
      (i64.xor (i64.load offset=16 (local.get $p)) (i64.load offset=24 (local.get $p))))))
