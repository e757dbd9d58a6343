//! The tape's overhead: a forward+backward of a tiny op chain, recorded, against the same
//! forward with recording off (no backward) and against the bare arithmetic on slices.

use cloze::{Tape, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn chain(t: &mut Tape, x: &Var, w: &Var) -> cloze::Result<Var> {
    let y = t.mul(x, w)?;
    let y = t.add(&y, x)?;
    let y = t.mul(&y, &y)?;
    t.sum(&y)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("tape_overhead");
    for n in [16usize, 1024] {
        let x = Tensor::from_fn(&[n], |i| i as f32 * 0.01);
        let w = Tensor::from_fn(&[n], |i| 1.0 - i as f32 * 0.001);
        g.bench_function(format!("recorded_fwd_bwd_n{n}"), |b| {
            let mut tape = Tape::new();
            b.iter(|| {
                tape.reset();
                let xv = tape.leaf(x.clone());
                let wv = tape.leaf(w.clone());
                let loss = chain(&mut tape, &xv, &wv).unwrap();
                black_box(tape.backward(&loss).unwrap());
            })
        });
        g.bench_function(format!("no_grad_fwd_n{n}"), |b| {
            let mut tape = Tape::new();
            tape.set_grad_enabled(false);
            b.iter(|| {
                let xv = Var::constant(x.clone());
                let wv = Var::constant(w.clone());
                black_box(chain(&mut tape, &xv, &wv).unwrap());
            })
        });
        g.bench_function(format!("plain_slices_fwd_bwd_n{n}"), |b| {
            b.iter(|| {
                // forward: y = (x*w + x)^2, loss = sum(y); backward by hand
                let (xd, wd) = (x.data(), w.data());
                let mut loss = 0.0f64;
                let mut gx = vec![0.0f32; n];
                let mut gw = vec![0.0f32; n];
                for i in 0..n {
                    let u = xd[i] * wd[i] + xd[i];
                    loss += (u * u) as f64;
                    let gu = 2.0 * u;
                    gx[i] = gu * (wd[i] + 1.0);
                    gw[i] = gu * xd[i];
                }
                black_box((loss, gx, gw));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
