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
/// `lanes`-wide vectors per row (beta == 0: C is not read), then `+ bias` when `bias` is not
/// null (one add per element after the rest, the same rounding as adding the bias to C
/// afterwards). A factor of 1 is skipped (1·x == x exactly), which saves the multiplies of the
/// common alpha = 1, beta ∈ {0, 1} cases without changing any result. `set1`, `load`, `store`,
/// `mul`, `fmadd`, `add` are the ISA's f32 intrinsics.
///
/// Expands to `unsafe` code: the kernel's caller must guarantee `rows` rows of `2·lanes` f32 at
/// `c`, stride `ldc`, writable (and readable when beta ≠ 0), and `2·lanes` f32 readable at a
/// non-null `bias`.
macro_rules! store_rows {
    (
        rows: $rows:expr, lo: $lo:expr, hi: $hi:expr, c: $c:expr, ldc: $ldc:expr,
        alpha: $alpha:expr, beta: $beta:expr, bias: $bias:expr, lanes: $w:expr,
        set1: $set1:ident, load: $load:ident, store: $store:ident, mul: $mul:ident,
        fmadd: $fmadd:ident, add: $add:ident
    ) => {{
        let (alpha, beta, bias) = ($alpha, $beta, $bias);
        let va = $set1(alpha);
        let vb = $set1(beta);
        // SAFETY: a non-null bias holds 2·lanes readable f32 (the kernel's caller).
        let vbias = (!bias.is_null()).then(|| unsafe { ($load(bias), $load(bias.add($w))) });
        for i in 0..$rows {
            // SAFETY: the kernel's caller guarantees `rows` rows of 2·lanes f32 at c, stride
            // ldc, writable, and readable when beta ≠ 0.
            unsafe {
                let r = $c.add(i * $ldc);
                let (mut x0, mut x1) = if beta == 0.0 {
                    if alpha == 1.0 {
                        ($lo[i], $hi[i])
                    } else {
                        ($mul(va, $lo[i]), $mul(va, $hi[i]))
                    }
                } else {
                    let (mut c0, mut c1) = ($load(r), $load(r.add($w)));
                    if beta != 1.0 {
                        c0 = $mul(vb, c0);
                        c1 = $mul(vb, c1);
                    }
                    ($fmadd(va, $lo[i], c0), $fmadd(va, $hi[i], c1))
                };
                if let Some((b0, b1)) = vbias {
                    x0 = $add(x0, b0);
                    x1 = $add(x1, b1);
                }
                $store(r, x0);
                $store(r.add($w), x1);
            }
        }
    }};
}
pub(super) use store_rows;

/// The whole body of a tile kernel `fn(t: &Tile)`: zeroes the `lo`/`hi` accumulators, warms
/// the C tile when `prefetch` is given (those byte offsets of each of the `rows` rows, with
/// `_mm_prefetch`; prefetches never fault), runs the k loop over a packed A panel (`packed`:
/// element (i, p) at `a + p·mr + i` in units of `elem`, constant offsets; B advances by
/// `packed_b_step` per k step, `NR` or the tile's `rsb`) or over A read in place
/// ([`in_place_k_loop`] over `bases`; B advances by `rsb`), then writes the first `rows` rows
/// with [`store_rows`]. Rows `rows..mr` of the accumulators stay zero and are never stored.
///
/// Only the ISA's operations are the kernel's own, written as closure-like expressions:
/// `load_b(p)` loads one B vector at `p` (two per k step, at `b` and `b + lanes`), `bcast(p)`
/// broadcasts the A element at `p: *const elem`, `madd(acc, a, b)` returns `acc + a·b` per
/// lane; `zero` is the zero vector, and `store` passes `set1`, `load`, `store`, `mul`, `fmadd`
/// on to [`store_rows`].
///
/// Expands to `unsafe` code: the kernel's caller must guarantee the contract of
/// [`MicroKernel::tile_strided`](super::driver::MicroKernel::tile_strided) with `rows` rows
/// (packed panels when `packed`), and the kernel's ISA.
macro_rules! tile_body {
    // `packed_b_step: rsb` is the tile's own `rsb`; any other token (`NR`) is taken as is.
    (@b_step rsb, $rsb:ident) => {
        $rsb
    };
    (@b_step $e:tt, $rsb:ident) => {
        $e
    };
    (
        tile: $t:expr, rows: $rows:expr, mr: $mr:expr, packed: $packed:expr, lanes: $w:expr,
        zero: $zero:expr, $(prefetch: [$($off:expr),*],)?
        elem: $elem:ty, packed_b_step: $pbs:tt,
        bases: [$($bases:tt)*],
        load_b: |$bp:ident| $load_b:expr,
        bcast: |$ap:ident| $bcast:expr,
        madd: |$acc:ident, $av:ident, $bv:ident| $madd:expr,
        store: { $($store:tt)* }
    ) => {{
        let $crate::gemm::driver::Tile {
            kc,
            a,
            rsa,
            csa,
            b,
            rsb,
            c,
            ldc,
            alpha,
            beta,
            bias,
            ..
        } = *$t;
        let mut lo = [$zero; $mr];
        let mut hi = [$zero; $mr];
        $(
            for i in 0..$rows {
                let r = c.wrapping_add(i * ldc) as *const i8;
                $(
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        r.wrapping_add($off),
                    );
                )*
            }
        )?
        let mut b = b;
        // One k step of row i (skipped past `rows`): the A element at `ptr` times the two B
        // vectors.
        macro_rules! row {
            ($i:expr, $ptr:expr, ($b0:ident, $b1:ident)) => {
                if $i < $rows {
                    let av = { let $ap = $ptr.cast::<$elem>(); $bcast };
                    lo[$i] = { let ($acc, $av, $bv) = (lo[$i], av, $b0); $madd };
                    hi[$i] = { let ($acc, $av, $bv) = (hi[$i], av, $b1); $madd };
                }
            };
        }
        if $packed {
            let mut a = a.cast::<$elem>();
            for _ in 0..kc {
                // SAFETY: the caller guarantees kc·mr readable elements at a and kc packed B
                // steps at b; each step reads mr of the former and one B step (two vectors of
                // `lanes`) and advances by as much.
                unsafe {
                    let b0 = { let $bp = b; $load_b };
                    let b1 = { let $bp = b.add($w); $load_b };
                    for i in 0..$rows {
                        row!(i, a.add(i), (b0, b1));
                    }
                    a = a.add($mr);
                    b = b.add($crate::gemm::x86_tile::tile_body!(@b_step $pbs, rsb));
                }
            }
        } else {
            $crate::gemm::x86_tile::in_place_k_loop! {
                kc: kc, a: a, rsa: rsa, step: csa,
                bases: [$($bases)*],
                each: {
                    let b0 = { let $bp = b; $load_b };
                    let b1 = { let $bp = b.add($w); $load_b };
                },
                row: row(b0, b1),
                then: { b = b.add(rsb); }
            }
        }
        $crate::gemm::x86_tile::store_rows! {
            rows: $rows, lo: lo, hi: hi, c: c, ldc: ldc, alpha: alpha, beta: beta, bias: bias,
            lanes: $w,
            $($store)*
        }
    }};
}
pub(super) use tile_body;
