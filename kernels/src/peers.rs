//! Safe wrappers around the peer GEMMs the benches race against (`matrixmultiply` and the `gemm`
//! crate), so that their raw-pointer `unsafe fn` APIs are called from this crate only. Built
//! with the `bench` feature (a dev-dependency feature of the root crate's benches).

/// (row stride, column stride) of op(X) for a row-major stored X of `rows`×`cols` as stored.
fn strides(trans: bool, stored_cols: usize) -> (isize, isize) {
    if trans {
        (1, stored_cols as isize)
    } else {
        (stored_cols as isize, 1)
    }
}

fn check(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    assert!(
        a.len() >= m * k,
        "peer gemm: A has {} elements, needs {}",
        a.len(),
        m * k
    );
    assert!(
        b.len() >= k * n,
        "peer gemm: B has {} elements, needs {}",
        b.len(),
        k * n
    );
    assert!(
        c.len() >= m * n,
        "peer gemm: C has {} elements, needs {}",
        c.len(),
        m * n
    );
}

/// `C = op(A)·op(B)` (contiguous row-major operands) by `matrixmultiply::sgemm`.
#[allow(clippy::too_many_arguments)]
pub fn matrixmultiply_sgemm(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    check(m, n, k, a, b, c);
    let (rsa, csa) = strides(ta, if ta { m } else { k });
    let (rsb, csb) = strides(tb, if tb { k } else { n });
    // SAFETY: a holds m·k, b k·n and c m·n f32 (checked above), addressed with the strides of
    // their stored row-major layouts; c does not alias a or b (distinct borrows).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `C = op(A)·op(B)` by the `gemm` crate on `threads` rayon threads (1 = no parallelism).
#[allow(clippy::too_many_arguments)]
pub fn gemm_crate(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    check(m, n, k, a, b, c);
    let (rsa, csa) = strides(ta, if ta { m } else { k });
    let (rsb, csb) = strides(tb, if tb { k } else { n });
    let par = if threads <= 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: as in `matrixmultiply_sgemm`; read_dst = false, so C is overwritten with 1·A·B
    // and never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
