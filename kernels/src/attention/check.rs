//! The argument checks of the attention entry points: every dimension positive, a finite
//! scale, a dropout probability in `[0, 1)`, and each slice's length (the message names it).

use super::dropout::threshold;
use super::{AttnGrads, AttnInputs, AttnSaved, AttnShape};
use crate::dispatch::Isa;

/// The checks of the inputs both passes read.
fn check_inputs(inputs: &AttnInputs<'_>) {
    let AttnInputs {
        shape: s,
        params,
        q,
        k,
        v,
        mask,
    } = inputs;
    assert!(
        s.batch > 0 && s.heads > 0 && s.tq > 0 && s.tk > 0 && s.d > 0,
        "attention: every dimension must be positive, got {s:?}"
    );
    assert!(
        params.scale.is_finite(),
        "attention: scale {} is not finite",
        params.scale
    );
    threshold(params.dropout);
    assert_eq!(
        q.len(),
        s.q_len(),
        "attention: q has {} elements, shape {s:?} needs B·H·Tq·d = {}",
        q.len(),
        s.q_len()
    );
    assert_eq!(
        k.len(),
        s.kv_len(),
        "attention: k has {} elements, shape {s:?} needs B·H·Tk·d = {}",
        k.len(),
        s.kv_len()
    );
    assert_eq!(
        v.len(),
        s.kv_len(),
        "attention: v has {} elements, shape {s:?} needs B·H·Tk·d = {}",
        v.len(),
        s.kv_len()
    );
    if let Some(m) = mask {
        assert_eq!(
            m.len(),
            s.mask_len(),
            "attention: mask has {} elements, shape {s:?} needs B·Tk = {}",
            m.len(),
            s.mask_len()
        );
    }
}

fn check_len(name: &str, got: usize, want: usize, what: &str, shape: &AttnShape) {
    assert_eq!(
        got, want,
        "attention: {name} has {got} elements, shape {shape:?} needs {what} = {want}"
    );
}

/// The checks of a forward call writing `out` and `lse`.
pub(crate) fn check_forward(inputs: &AttnInputs<'_>, out: &[f32], lse: &[f32]) {
    let shape = &inputs.shape;
    check_inputs(inputs);
    check_len("out", out.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("lse", lse.len(), shape.lse_len(), "B·H·Tq", shape);
}

/// The checks of a backward call.
pub(crate) fn check_backward(
    inputs: &AttnInputs<'_>,
    saved: &AttnSaved<'_>,
    grads: &AttnGrads<'_>,
) {
    let shape = &inputs.shape;
    check_forward(inputs, saved.out, saved.lse);
    check_len("dout", saved.dout.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("dq", grads.dq.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("dk", grads.dk.len(), shape.kv_len(), "B·H·Tk·d", shape);
    check_len("dv", grads.dv.len(), shape.kv_len(), "B·H·Tk·d", shape);
}

pub(crate) fn check_isa(isa: Isa) {
    assert!(
        isa.is_supported(),
        "attention: kernel path {isa} is not supported on this CPU"
    );
}
