//! The structure shared by the x86 register-tile kernels (AVX-512 f32 12×32, AVX2 f32 6×16,
//! AVX-512 bf16 pairs 12×32): each holds a row of the C tile in two vectors `lo[i]`, `hi[i]`,
//! reads an in-place A through base pointers three rows apart, and writes the tile with
//! `alpha` and `beta`. The macros expand inside each kernel's `#[target_feature]` function,
//! so every intrinsic is compiled for that kernel's ISA; only the ISA-specific operations
//! (loads, broadcasts, the multiply-add) are written per kernel.

/// The k loop over an A panel read in place. Rows are addressed as one of the listed base
/// pointers (`g: i0 i1 i2` is the base of rows i0, i1 = i0 + 1, i2 = i0 + 2, at `a + i0·rsa`;
/// the first is `a` itself) plus 0, 1 or 2 strides `rsa`; the bases advance by `step` per k
/// step. The other bases' offsets go through `black_box` so LLVM cannot rewrite them into one
/// serial chain of pointer additions inside the loop. Per k step: the `each` statements (the B loads), then `row!(i, pointer to
/// row i's element, (args..))` for every listed row (`row: row(args..)` passes the names
/// `each` binds, so the kernel's `row` macro sees them), then the `then` statements (advancing B).
///
/// Expands to `unsafe` code: the kernel's caller must guarantee A element (i, p) readable at
/// `a + i·rsa + p·step` for every listed row i and p < kc, and whatever `each`/`then` read.
macro_rules! in_place_k_loop {
    (
        kc: $kc:expr, a: $a:expr, rsa: $rsa:expr, step: $step:expr,
        bases: [$g0:ident: 0 1 2 $(, $g:ident: $i0:tt $i1:tt $i2:tt)*],
        each: { $($each:tt)* },
        row: $row:ident $args:tt,
        then: { $($then:tt)* }
    ) => {
        let mut $g0 = $a;
        $( let mut $g = $a.wrapping_add(std::hint::black_box($i0 * $rsa)); )*
        for _ in 0..$kc {
            // SAFETY: the kernel's caller guarantees A element (i, p) at a + i·rsa + p·step for
            // the listed rows and p < kc (each step reads one p of each row and advances the
            // bases by one), and the B reads of `each` (see the kernel).
            unsafe {
                $($each)*
                $row!(0, $g0, $args);
                $row!(1, $g0.add($rsa), $args);
                $row!(2, $g0.add(2 * $rsa), $args);
                $(
                    $row!($i0, $g, $args);
                    $row!($i1, $g.add($rsa), $args);
                    $row!($i2, $g.add(2 * $rsa), $args);
                )*
                $g0 = $g0.add($step);
                $( $g = $g.add($step); )*
                $($then)*
            }
        }
    };
}
pub(super) use in_place_k_loop;

/// `C[i] = alpha·(lo[i], hi[i]) + beta·C[i]` for the first `rows` rows of a tile of two
/// `lanes`-wide vectors per row (beta == 0: C is not read). A factor of 1 is skipped (1·x == x
/// exactly), which saves the multiplies of the common alpha = 1, beta ∈ {0, 1} cases without
/// changing any result. `set1`, `load`, `store`, `mul`, `fmadd` are the ISA's f32 intrinsics.
///
/// Expands to `unsafe` code: the kernel's caller must guarantee `rows` rows of `2·lanes` f32 at
/// `c`, stride `ldc`, writable (and readable when beta ≠ 0).
macro_rules! store_rows {
    (
        rows: $rows:expr, lo: $lo:expr, hi: $hi:expr, c: $c:expr, ldc: $ldc:expr,
        alpha: $alpha:expr, beta: $beta:expr, lanes: $w:expr,
        set1: $set1:ident, load: $load:ident, store: $store:ident, mul: $mul:ident,
        fmadd: $fmadd:ident
    ) => {{
        let (alpha, beta) = ($alpha, $beta);
        let va = $set1(alpha);
        let vb = $set1(beta);
        for i in 0..$rows {
            // SAFETY: the kernel's caller guarantees `rows` rows of 2·lanes f32 at c, stride
            // ldc, writable, and readable when beta ≠ 0.
            unsafe {
                let r = $c.add(i * $ldc);
                if beta == 0.0 {
                    let (x0, x1) = if alpha == 1.0 {
                        ($lo[i], $hi[i])
                    } else {
                        ($mul(va, $lo[i]), $mul(va, $hi[i]))
                    };
                    $store(r, x0);
                    $store(r.add($w), x1);
                } else {
                    let (mut c0, mut c1) = ($load(r), $load(r.add($w)));
                    if beta != 1.0 {
                        c0 = $mul(vb, c0);
                        c1 = $mul(vb, c1);
                    }
                    $store(r, $fmadd(va, $lo[i], c0));
                    $store(r.add($w), $fmadd(va, $hi[i], c1));
                }
            }
        }
    }};
}
pub(super) use store_rows;
